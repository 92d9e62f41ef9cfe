"""The console's blueprint and what every page shares: who is calling, access rules, CSRF, rendering."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from gateway.config import Settings
from gateway.delivery.views import store_for
from gateway.linkage.chronology import record_read
from gateway.model import english
from gateway.model.systems import parse_agency_uri
from gateway.routing import Directory
from gateway.store.engine import read_only
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY
from gateway.web.assets import STATIC_DIR, WEB_DIR
from gateway.web.console import csrf

blueprint = Blueprint("console", __name__, template_folder=str(WEB_DIR / "templates"),
                      static_folder=str(STATIC_DIR), static_url_path="/assets")

SERVICE_NAME = "Safeguarding gateway"
KIND_NAMES = {"la": "Children's services", "school": "School", "police": "Police force", "gateway": "Operators"}
#: Where each kind of agency lands, and its navigation: (endpoint, label).
NAVIGATION = {
    "la": (("console.inbox", "Inbox"), ("console.matches", "Matches and duplicates"), ("console.alerts", "Alerts")),
    "school": (("console.school_home", "Notifications and referrals"),),
    "police": (("console.police_home", "Notices and figures"),),
    "gateway": (("console.operator_home", "Delivery health"),),
}
# Pages show personal data: no caching, no framing, no inline script, forms post only to the console.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
#: The tag colour of each risk level (GOV.UK Frontend's tag modifiers); others are grey.
RISK_COLOURS = {"high": "red", "medium": "orange", "standard": "grey", "low": "grey"}
blueprint.add_app_template_global(RISK_COLOURS, "risk_colours")
_SECRET_EXTENSION = "gateway.console.csrf_secret"
_PENDING_READS = "console_pending_reads"  # on flask.g: the reads recorded by this request, committing


def now() -> dt.datetime:
    """The gateway's clock (a replay clock in the demo, an injected one in tests)."""
    clock = current_app.config.get(CLOCK_KEY)
    return clock() if clock is not None else dt.datetime.now(dt.timezone.utc)


def settings() -> Settings:
    return current_app.config["GATEWAY_SETTINGS"]


def store():
    """The app's store (shared with the delivery and linkage endpoints)."""
    return store_for(current_app)


@contextlib.contextmanager
def reading() -> Iterator[Connection]:
    """A read-only transaction for a page's reads: on SQLite it runs beside writers instead of queueing for the
    write lock, so pages do not wait for each other. Record the read with :func:`record` once access is granted."""
    with read_only(store().engine) as connection:
        yield connection


def record(agency: str, what: str, subject: str | None, at: dt.datetime, *, also: tuple[str, ...] = ()) -> None:
    """Record that ``agency`` read personal data (``what`` about ``subject``), durably, before the page that
    shows it is sent: a short write transaction of its own (on SQLite, committed together with other threads'
    work), started here and committed while the page reads and renders its data; the page waits for it
    (:func:`_records_committed`) and is not sent if it failed. Views call it once access is granted: after
    the checks that refuse (a 400, 403 or 404 records nothing), before the data is read. A page of several
    kinds of data names the others in ``also``: recorded in the same transaction, in that order."""
    def work(unit) -> None:
        for each in (what, *also):
            record_read(unit.session.connection(), agency, each, subject, at)
    pending = store().submit(work)
    g.setdefault(_PENDING_READS, []).append(pending)


def agency_names(bind, uris=()) -> Callable[[str | None], str]:
    """Return ``name(uri)``: an agency's name from the directory (its URI when unknown), looked up in the
    transaction of ``bind`` (a connection, or a unit of work). Call it before the transaction ends; templates
    get names, never the lookup. The names of ``uris`` (those a page knows it shows) are read at once, in one
    look-up; others one by one when asked for."""
    session = getattr(bind, "session", None)
    directory = Directory(session if session is not None else Session(bind=bind))
    wanted = {uri for uri in uris if uri}
    found = directory.agencies_by_uri(wanted)
    cache: dict[str, str] = {uri: found[uri].name if uri in found else uri for uri in wanted}

    def name(uri: str | None) -> str:
        if not uri:
            return ""
        if uri not in cache:
            agency = directory.agency(uri)
            cache[uri] = agency.name if agency is not None else uri
        return cache[uri]
    return name


def caller() -> tuple[str, str]:
    """Return the calling agency's URI and kind, from the verified client certificate; else abort 401/403."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        abort(401, "No verified agency certificate. Connect with your agency's certificate, issued by the "
                   "deployment's certificate authority.")
    parsed = parse_agency_uri(agency)
    if parsed is None:
        abort(403, f"The client certificate names no agency ({agency}).")
    return agency, parsed[0]


def for_kind(kind: str, description: str) -> Callable:
    """A view decorator: only agencies of ``kind`` may open the page (others get 403); the view gets the agency."""
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            agency, agency_kind = caller()
            if agency_kind != kind:
                abort(403, f"Only {description} can open this page. Your certificate is "
                           f"{KIND_NAMES.get(agency_kind, agency_kind).lower()}'s ({agency}).")
            return view(agency, *args, **kwargs)
        return wrapped
    return decorate


def csrf_secret() -> bytes:
    secret = current_app.extensions.get(_SECRET_EXTENSION)
    if secret is None:
        try:
            secret = current_app.extensions[_SECRET_EXTENSION] = csrf.secret_for(settings())
        except csrf.CsrfError as exc:
            current_app.logger.error("%s", exc)
            abort(503, "The console cannot accept forms at the moment (it has no secret to protect them with).")
    return secret


def check_csrf(agency: str) -> None:
    """Abort 400 unless the form carries the agency's CSRF token."""
    if not csrf.valid(csrf_secret(), agency, request.form.get(csrf.FIELD), now()):
        abort(400, "This form has expired or did not come from the console. Go back, reload the page and "
                   "send it again.")


def render(template: str, agency: str, title: str, status: int = 200, **context) -> Response:
    """Render a console page for ``agency`` (navigation, CSRF token, times in the gateway's timezone)."""
    kind = (parse_agency_uri(agency) or ("", ""))[0]
    body = render_template(template, agency=agency, agency_kind=kind, agency_kind_name=KIND_NAMES.get(kind, ""),
                           navigation=NAVIGATION.get(kind, ()), title=title, service_name=SERVICE_NAME,
                           csrf_token=csrf.token(csrf_secret(), agency, now()), csrf_field=csrf.FIELD,
                           active=request.endpoint, **context)
    return Response(body, status=status, mimetype="text/html")


_zone = functools.lru_cache(maxsize=8)(ZoneInfo)


def local_zone() -> dt.tzinfo:
    """The gateway's timezone (``GATEWAY_TIMEZONE``), in which the console writes times, days and months."""
    return _zone(settings().timezone)


@blueprint.app_template_filter("when")
def format_when(value, with_time: bool = True) -> str:
    """A time as people read it in the gateway's timezone: 'Fri 7 Jun 2019, 10:35'. Text that is no time, or a
    time the zone cannot hold (the calendar's first or last hours), is written as it is."""
    if value is None or value == "":
        return ""
    moment = _moment(value)
    if isinstance(moment, dt.datetime):
        # English whatever the host's locale (gateway.model.english), as the gateway writes times everywhere.
        zone = local_zone()
        try:
            return english.when(moment, zone) if with_time else english.day(english.local(moment, zone))
        except OverflowError:  # the year 0 or 10000 in this zone
            return str(value)
    if isinstance(moment, dt.date):
        return f"{moment.day} {english.MONTHS[moment.month - 1]} {moment.year}"
    return str(value)


def _moment(value):
    """``value`` as a datetime when it is ISO 8601 text ('Z' for UTC), else ``value`` itself."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


@blueprint.app_template_filter("due")
def format_due(value) -> str:
    """A deadline as people read it. One at midnight in the gateway's timezone is the end of the day before
    ('end of Mon 1 Oct 2018': a deadline of working days ends at the midnight that ends the last one,
    gateway.linkage.deadlines), not the start of the next ('Tue 2 Oct 2018, 00:00', read as a day more);
    any other as :func:`format_when` writes it."""
    moment = _moment(value)
    if isinstance(moment, dt.datetime):
        try:
            local = english.local(moment, local_zone())
            if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
                return f"end of {english.day(local - dt.timedelta(days=1))}"
        except OverflowError:  # the calendar's ends: written as they are
            pass
    return format_when(value)


#: What a URL path segment keeps unquoted (the WHATWG path-segment set, as werkzeug's converters quote).
_SEGMENT_SAFE = "!$&'()*+,/:;=@"


def links(endpoint: str, field: str) -> Callable[[str], str]:
    """Return ``link(value)``: ``url_for(endpoint, **{field: value})`` for a page of many links, at the cost of
    one ``url_for`` (a table of 200 events spent more time building its links than reading its events)."""
    marker = "__value__"
    template = url_for(endpoint, **{field: marker})
    head, tail = template.split(marker)
    return lambda value: head + quote(str(value), safe=_SEGMENT_SAFE) + tail


@blueprint.after_request
def _records_committed(response: Response) -> Response:
    """Send nothing until the reads the page recorded have committed; a page whose read could not be recorded
    is replaced by an error page (503, with the security headers) that shows no personal data."""
    failed = None
    for pending in g.pop(_PENDING_READS, ()):
        try:
            pending.result()
        except Exception as exc:  # every pending read is waited for, whichever fails
            failed = exc
    if failed is not None:
        current_app.logger.error("the console could not record a read of personal data: %s", failed)
        return _error_page(ServiceUnavailable("The gateway could not record that you opened this page, so it is not "
                                              "shown. Try again in a moment; if it keeps happening, tell the "
                                              "gateway's operators."))
    return response


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint == "console.static":
        response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@blueprint.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> Response:
    """Console errors are pages (the API's stay OperationOutcomes)."""
    titles = {400: "There is a problem with this form", 401: "Connect with your agency's certificate",
              403: "You cannot open this page", 404: "Page not found", 409: "This has already been decided"}
    agency = request.environ.get(AGENCY_KEY) or ""
    kind = (parse_agency_uri(agency) or ("", ""))[0] if agency else ""
    body = render_template("console/error.html", title=titles.get(exc.code, exc.name), message=exc.description,
                           status=exc.code, agency=agency, agency_kind=kind,
                           agency_kind_name=KIND_NAMES.get(kind, ""), navigation=NAVIGATION.get(kind, ()),
                           service_name=SERVICE_NAME, active=None)
    response = Response(body, status=exc.code or 500, mimetype="text/html")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
