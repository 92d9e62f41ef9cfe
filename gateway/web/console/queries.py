"""What the console's pages show, read from the store in the caller's transaction.

Every function takes a SQLAlchemy ``Connection`` (or ``Session``) and the
calling agency, and returns plain dicts and lists that the templates render;
none of them decides who may call it (the views do) or writes anything
except :func:`gateway.linkage.chronology.record_read`, which the views call.
Times are aware datetimes; ``now`` is passed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

import orjson
from sqlalchemy import Connection, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias

from gateway.delivery.inbox import RISK_ORDER, risk_rank
from gateway.delivery.models import (
    DEAD_LETTERED,
    INBOX_DECIDED,
    INBOX_OPEN,
    KIND_MESSAGE,
    OPEN_STATES,
    DeliveryRow,
    InboxCountRow,
    InboxEntryRow,
    UnroutableRow,
)
from gateway.linkage import deadlines as D
from gateway.linkage.models import (
    OPEN,
    DeadlineRow,
    EscalationRow,
    MessageEventRow,
    PersonRow,
    PossibleDuplicateRow,
)
from gateway.model import systems as S
from gateway.model.terminology import MESSAGE_EVENTS
from gateway.routing import bundles as B
from gateway.routing.codes import ENCOMPASS_RULES, ESCALATION_RULE_PREFIX, REFERRAL_DECISIONS
from gateway.signing.messages import message_header
from gateway.store.engine import among
from gateway.store.models import AcceptedMessageRow, MessagePersonRow
from gateway.validation import codelists, completeness
from gateway.web.console.pictures import month_name

_D = DeliveryRow.__table__
_E = MessageEventRow.__table__
_DL = DeadlineRow.__table__
_A = AcceptedMessageRow.__table__
_MP = MessagePersonRow.__table__
_DUP = PossibleDuplicateRow.__table__
_ESC = EscalationRow.__table__
_U = UnroutableRow.__table__
_PERSON = PersonRow.__table__

PAGE_SIZE = 50


class BadQuery(ValueError):
    """A query parameter the page cannot use: ``parameter`` and what to give instead."""

    def __init__(self, parameter: str, text: str):
        super().__init__(text)
        self.parameter = parameter
        self.text = text


# The children's services inbox --------------------------------------------------------------------------

#: Sort keys of the inbox: the column each orders by.
INBOX_SORTS = {"due": "Due", "received": "Received", "risk": "Risk", "kind": "What", "sender": "From"}
INBOX_STATUSES = {"": "All", "open": "Waiting for a decision", "overdue": "Overdue", "decided": "Decided"}


@dataclasses.dataclass(frozen=True)
class InboxQuery:
    """The inbox's sorting, filters and page, from the query string (see :meth:`parse`)."""

    sort: str = "due"
    order: str = "asc"
    status: str = ""
    kind: str = ""
    risk: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args) -> "InboxQuery":
        """Return the query of ``args`` (a mapping of query parameters). Raises :class:`BadQuery`."""
        sort = args.get("sort", "due")
        if sort not in INBOX_SORTS:
            raise BadQuery("sort", f"sort={sort!r}: sort by one of {', '.join(INBOX_SORTS)}")
        order = args.get("order", "asc")
        if order not in ("asc", "desc"):
            raise BadQuery("order", f"order={order!r}: give asc or desc")
        status = args.get("status", "")
        if status not in INBOX_STATUSES:
            raise BadQuery("status", f"status={status!r}: give one of {', '.join(s for s in INBOX_STATUSES if s)}")
        kind = args.get("kind", "")
        if kind and kind not in MESSAGE_EVENTS:
            raise BadQuery("kind", f"kind={kind!r}: give a message event code ({', '.join(MESSAGE_EVENTS)})")
        risk = args.get("risk", "")
        if len(risk) > 64:
            raise BadQuery("risk", "risk: give a risk level such as high, medium or standard")
        raw_page = args.get("page", "1")
        if not raw_page.isdigit() or int(raw_page) < 1 or int(raw_page) > 100_000:
            raise BadQuery("page", f"page={raw_page!r}: give a page number from 1")
        return cls(sort, order, status, kind, risk, int(raw_page))

    def args(self, **changes) -> dict:
        """The query string of this query with ``changes`` (defaults left out). (Not ``dataclasses.asdict``,
        which deep-copies every value: a page makes a few dozen of these links.)"""
        if not changes.keys() <= set(_INBOX_FIELDS):
            raise TypeError(f"not a field of the inbox's query: {', '.join(sorted(changes.keys() - set(_INBOX_FIELDS)))}")
        values = {name: changes.get(name, getattr(self, name)) for name in _INBOX_FIELDS}
        return {k: v for k, v in values.items() if v != _INBOX_DEFAULTS[k]}


_INBOX_FIELDS = tuple(field.name for field in dataclasses.fields(InboxQuery))
_INBOX_DEFAULTS = {name: getattr(InboxQuery(), name) for name in _INBOX_FIELDS}


def inbox(connection: Connection, agency: str, query: InboxQuery, *, now: dt.datetime,
          page_size: int = PAGE_SIZE) -> dict:
    """Return one page of the messages delivered to ``agency`` (any state): ``total``, ``rows``, ``pages``.

    Each row: delivery id, message id, received, state, what (the event), from, child, risk, categories,
    due and met (the decision deadline), overdue, completeness (the standard's score), flags (possible
    duplicate, new version, sent late, escalation alert).

    Read from the inbox's read model (``inbox_entry``, :mod:`gateway.delivery.inbox`): the count is a few rows
    of the counts kept beside it (:func:`_inbox_total`) and the page one walk of one index that stops at the
    page's end (:func:`_inbox_page`), so a page costs about the same at 100 messages as at 100,000 in any
    order; then only the page's children's names and possible duplicates are read.
    """
    total = _inbox_total(connection, agency, query, now)
    pages = max(1, -(-total // page_size))
    page = _inbox_page(connection, agency, query, now, offset=(query.page - 1) * page_size, limit=page_size)
    ids = list({r["message_id"]: None for r in page})
    duplicates = set()
    children: dict[str, str] = {}
    if ids:
        for d in connection.execute(select(_DUP.c.message_id, _DUP.c.duplicate_of).where(
                _DUP.c.status == OPEN, or_(among(connection, _DUP.c.message_id, ids),
                                           among(connection, _DUP.c.duplicate_of, ids)))):
            duplicates.update((d.message_id, d.duplicate_of))
        for mp in connection.execute(select(_MP.c.message_id, _MP.c.given, _MP.c.family).where(
                among(connection, _MP.c.message_id, ids), _MP.c.role == "child").order_by(_MP.c.id)):
            children.setdefault(mp.message_id, _folded_name(mp.given, mp.family))
    # A message accepted before revision 0007 has no stored score: read from its response (only those).
    legacy = list({r["message_id"]: None for r in page if r["completeness"] is None and r["has_event"]})
    scores = {m.message_id: _completeness(m.response_body) for m in connection.execute(
        select(_A.c.message_id, _A.c.response_body).where(_A.c.message_id.in_(legacy)))} if legacy else {}
    out = []
    for r in page:
        kind = r["kind"]
        gateway_made = kind in (S.EVENT_ALERT, S.EVENT_OVERDUE)
        flags = []
        if not gateway_made and r["has_event"]:  # the flags of the message itself, not of one about it
            if r["message_id"] in duplicates:
                flags.append("Possible duplicate")
            if r["version"] and r["version"] > 1:
                flags.append(f"Version {r['version']}")
            if r["late_days"]:
                flags.append(f"Sent {r['late_days']} days late")
        out.append({
            "delivery_id": r["delivery_id"], "message_id": r["message_id"], "received_at": r["received_at"],
            "state": r["state"], "kind": kind, "kind_display": MESSAGE_EVENTS.get(kind, (kind or "Message", ""))[0],
            "sender": r["sender"], "risk": r["risk"], "categories": json.loads(r["categories"] or "[]"),
            "child": children.get(r["message_id"], ""), "person_id": r["child_person_id"],
            "due_at": r["due_at"], "met_at": r["met_at"],
            "overdue": r["due_at"] is not None and r["met_at"] is None and r["due_at"] < now,
            "gateway_made": gateway_made,
            "completeness": None if gateway_made else scores.get(r["message_id"], r["completeness"]),
            "flags": flags,
        })
    return {"total": total, "rows": out, "pages": pages}


_IE = InboxEntryRow.__table__
_IC = InboxCountRow.__table__
#: The entry's columns a page shows.
_INBOX_COLUMNS = [c.name for c in _IE.c if c.name not in ("agency", "received_rev", "risk_rank", "deadline_id",
                                                          "status")]
#: Per sort: the sort column and the indexes walked ascending and descending (the column, then ties newest
#: first, then by id). Ascending ones order ties by received_rev (newest first) walked forwards; descending ones
#: by received_at, walked backwards (ties of one received_at, rare, are sorted by id as they are read). Due
#: times seldom tie: descending, the one index is walked backwards and the ties of a due time sorted.
_INBOX_ORDERS = {
    "due": ("due_at", "ix_inbox_entry_due", "ix_inbox_entry_due"),
    "risk": ("risk_rank", "ix_inbox_entry_risk", "ix_inbox_entry_risk_desc"),
    "kind": ("kind", "ix_inbox_entry_kind", "ix_inbox_entry_kind_desc"),
    "sender": ("sender", "ix_inbox_entry_sender", "ix_inbox_entry_sender_desc"),
}


class _Walk(Alias):
    """``inbox_entry`` read through one of its indexes, named ``index``: SQLite, which plans without
    statistics, is told the index (``INDEXED BY``); PostgreSQL chooses it from its statistics."""

    inherit_cache = True


@compiles(_Walk, "sqlite")
def _indexed_by(element, compiler, **kw):
    text = compiler.visit_alias(element, **kw)
    return f"{text} INDEXED BY {element.name}" if kw.get("asfrom") else text


@functools.cache
def _walk(index: str) -> _Walk:
    """The :class:`_Walk` of ``index``, built once (building an alias's columns costs about a millisecond)."""
    return _Walk._construct(_IE, name=index)


def _inbox_where(entry, agency: str, query: InboxQuery, now: dt.datetime) -> list:
    """The inbox's entries (``entry``: a :func:`_walk`) under the query's filters. Overdue is an open deadline
    due before ``now`` (the clock moves: it is not stored)."""
    where = [entry.c.agency == agency]
    if query.kind:
        where.append(entry.c.kind == query.kind)
    if query.risk:  # the rank too: one range of the risk indexes
        where += [entry.c.risk_rank == risk_rank(query.risk), entry.c.risk == query.risk]
    if query.status in ("open", "overdue"):
        where.append(entry.c.status == INBOX_OPEN)
    elif query.status == "decided":
        where.append(entry.c.status == INBOX_DECIDED)
    if query.status == "overdue":
        where.append(entry.c.due_at < now)
    return where


def _inbox_total(connection: Connection, agency: str, query: InboxQuery, now: dt.datetime) -> int:
    """How many entries the inbox of ``query`` has: ``count(*)`` of :func:`_inbox_where`'s, read from the counts
    the database keeps per agency, status, kind and risk (``inbox_count``, revision 0009), a few rows whatever
    the inbox's size. Those filters apply to the counts as they are (the same columns).

    The overdue (open, due before ``now``: the clock moves, so they are not counted) are the open ones less
    those not due yet: the open entries due at or after ``now``, and any without a due time (none, as an open
    deadline has one), each one range of the index of status and due time, which holds only what is to come.
    (Two ranges, not ``due_at >= now OR due_at IS NULL``, which SQLite reads as every open entry of the agency;
    one statement, each range a scalar subquery, so one round trip.)
    """
    counted = dataclasses.replace(query, status=INBOX_OPEN) if query.status == "overdue" else query
    total = select(func.coalesce(func.sum(_IC.c.n), 0)).where(*_inbox_where(_IC, agency, counted, now))
    if query.status != "overdue":
        return connection.execute(total).scalar_one()
    entry = _walk("ix_inbox_entry_status_due")
    not_yet_due = [select(func.count()).select_from(entry).where(*_inbox_where(entry, agency, counted, now), when)
                   .scalar_subquery() for when in (entry.c.due_at >= now, entry.c.due_at.is_(None))]
    return connection.execute(select(total.scalar_subquery() - not_yet_due[0] - not_yet_due[1])).scalar_one()


def _inbox_page(connection: Connection, agency: str, query: InboxQuery, now: dt.datetime, *, offset: int,
                limit: int) -> list:
    """Return the page's entries in the query's order.

    Ties, and rows without a due time (or a what or sender), which come last whichever way the column is
    sorted, are in order of receipt, newest first, then by delivery id. Each order walks one index of
    ``inbox_entry`` (:data:`_INBOX_ORDERS`; sorted by due time under a status filter, the index of status and
    due time) and stops at the page's last row, the filters read from the index; the rows without a value are
    that index's range of NULL, walked in order of receipt when the page reaches them.
    """
    def walk(index: str, *conditions, order):
        entry = _walk(index)
        return (select(*(entry.c[name] for name in _INBOX_COLUMNS))
                .where(*_inbox_where(entry, agency, query, now), *(c(entry) for c in conditions))
                .order_by(*order(entry)))

    if query.sort == "received":
        return connection.execute(walk("ix_inbox_entry_received", order=lambda e: (
            e.c.received_at.desc() if query.order == "desc" else e.c.received_at.asc(), e.c.delivery_id))
            .limit(limit).offset(offset)).mappings().all()
    name, ascending, descending = _INBOX_ORDERS[query.sort]
    if query.sort == "due" and query.status:
        ascending = descending = "ix_inbox_entry_status_due"
    desc = query.order == "desc"

    def order(e):  # ties newest first, as the index walked gives them (received_rev = -received_at)
        if not desc:
            return e.c[name].asc(), e.c.received_rev, e.c.delivery_id
        return e.c[name].desc(), (e.c.received_rev if name == "due_at" else e.c.received_at.desc()), e.c.delivery_id

    if name == "risk_rank":  # never NULL: none (or another value) has the last rank
        return connection.execute(walk(descending if desc else ascending, order=order)
                                  .limit(limit).offset(offset)).mappings().all()
    valued = connection.execute(walk(descending if desc else ascending, lambda e: e.c[name].is_not(None),
                                     order=order).limit(limit).offset(offset)).mappings().all()
    if len(valued) == limit or (name == "due_at" and query.status) or (name == "kind" and query.kind):
        return valued  # the page is full, or the filter leaves no row without a value (a status has a due time)
    if valued:
        skip = 0
    else:  # the page starts past the rows with a value: how many there are
        counted = _walk(ascending)
        skip = offset - connection.execute(select(func.count()).select_from(counted).where(
            *_inbox_where(counted, agency, query, now), counted.c[name].is_not(None))).scalar_one()
    return valued + connection.execute(walk(ascending, lambda e: e.c[name].is_(None),
                                            order=lambda e: (e.c.received_rev, e.c.delivery_id))
                                       .limit(limit - len(valued)).offset(skip)).mappings().all()


def _folded_name(given: str | None, family: str | None) -> str:
    """A display name from the index's folded (lower-case, unaccented) name: shown only where the message
    itself is not read (lists); the referral page shows the name as sent."""
    return " ".join(p for p in (given, family) if p).title()


def _completeness(response_body: str | None) -> int | None:
    outcome = _response_outcome(response_body)
    return completeness(outcome) if outcome else None


def _response_outcome(response_body: str | None) -> dict | None:
    """The OperationOutcome (the standard's feedback) in a stored response message, or None."""
    if not response_body:
        return None
    try:
        response = orjson.loads(response_body)
    except orjson.JSONDecodeError:
        return None
    for entry in response.get("entry") or ():
        resource = (entry or {}).get("resource") or {}
        if resource.get("resourceType") == "OperationOutcome":
            return resource
    return None


def inbox_filters() -> dict:
    """Return the choices of the inbox's filter: every message event and every risk level (a fixed list:
    reading which ones are present would cost a pass over the whole inbox on every page)."""
    return {"kinds": {code: display for code, (display, _) in MESSAGE_EVENTS.items()},
            "risks": {risk: risk.capitalize() for risk in RISK_ORDER}}


# A child's chronology -----------------------------------------------------------------------------------

#: Whom an event of a chronology is about (:func:`gateway.linkage.chronology.chronology`'s ``about``), as the
#: chronology's filter offers it.
CHRONOLOGY_ABOUT = {"": "Everyone", "child": "The child", "household": "The household"}


@dataclasses.dataclass(frozen=True)
class ChronologyFilter:
    """Which of a chronology's events its page shows: those of one agency, about the child or the household
    (``?agency=<agency URI>&about=child``); none given, all of them."""

    agency: str = ""
    about: str = ""

    @classmethod
    def parse(cls, args) -> "ChronologyFilter":
        """Return the filter of ``args`` (a mapping of query parameters). Raises :class:`BadQuery`."""
        agency = args.get("agency", "")
        if agency and (len(agency) > 255 or S.parse_agency_uri(agency) is None):
            raise BadQuery("agency", "agency: give an agency's URI (urn:x-safeguarding:agency:<kind>:<code>), one "
                                     "of those the filter lists")
        about = args.get("about", "")
        if about not in CHRONOLOGY_ABOUT:
            raise BadQuery("about", f"about={about[:40]!r}: give child or household")
        return cls(agency, about)

    @property
    def active(self) -> bool:
        return bool(self.agency or self.about)

    def keeps(self, event: dict) -> bool:
        """Whether the page shows ``event`` (one of the chronology's)."""
        return (not self.agency or event["agency"] == self.agency) and (not self.about or event["about"] == self.about)


# One message, as a person reads it ------------------------------------------------------------------------

def _delivered_kinds(connection: Connection, agency: str, message_id: str) -> set[str]:
    """The kinds of delivery of ``message_id`` to ``agency``: the message itself, an alert or reminder about it."""
    return set(connection.execute(select(_D.c.kind).where(_D.c.message_id == message_id, _D.c.destination == agency)
                                  .distinct()).scalars())


def access(connection: Connection, agency: str, message_id: str) -> tuple[bool, bool]:
    """Return whether children's services ``agency`` may read a message, and whether the message itself (not
    only an alert or reminder about it) was delivered, or is being delivered, to them to decide on.

    They may read it when it, or an alert or reminder about it, was delivered to them, they sent it, or it is
    in the chronology of a child whose home LA they are (who may read that chronology). One read of the
    deliveries answers both, and is all a delivered message costs."""
    kinds = _delivered_kinds(connection, agency, message_id)
    if kinds:
        return True, KIND_MESSAGE in kinds
    if connection.execute(select(_A.c.message_id).where(_A.c.message_id == message_id,
                                                        _A.c.sender_agency == agency)).first() is not None:
        return True, False
    people = select(_MP.c.person_id).where(_MP.c.message_id == message_id, _MP.c.person_id.is_not(None))
    return connection.execute(select(_PERSON.c.id).where(_PERSON.c.id.in_(people), _PERSON.c.home_la == agency)
                              .limit(1)).first() is not None, False


#: What the console shows of an accepted message (not what the sender sent as it came, which it never shows
#: and need not decrypt).
_SHOWN = (_A.c.message_id, _A.c.sender_agency, _A.c.received_at, _A.c.signed_message, _A.c.response_body)


def accepted_message(connection: Connection, message_id: str):
    """Return the ``accepted_message`` row's id, sender, receipt time, signed message and response, or None."""
    return connection.execute(select(*_SHOWN).where(_A.c.message_id == message_id)).first()


def _ext(resource: dict, url: str):
    return B.extension_value(resource, url)


def _name(resource: dict | None) -> str:
    for name in (resource or {}).get("name") or ():
        if not isinstance(name, dict):
            continue
        if name.get("text"):
            return name["text"]
        return " ".join([*(name.get("given") or ()), name.get("family") or ""]).strip()
    return ""


def _codes(concepts) -> list[str]:
    """The concepts as words: each one's first coding's display (else the display its code system publishes,
    else the concept's text, else the code), each said once (a police notice's category and its notice type
    are both "Domestic abuse")."""
    out: dict[str, str] = {}
    for concept in concepts or ():
        if not isinstance(concept, dict):
            continue
        coding = next(iter(concept.get("coding") or ()), {})
        coding = coding if isinstance(coding, dict) else {}
        words = (coding.get("display") or codelists.display(coding.get("system"), coding.get("code"))
                 or concept.get("text") or coding.get("code"))
        if isinstance(words, str) and words:
            out.setdefault(words.casefold(), words)
    return list(out.values())


def read_message(bundle: dict) -> dict:
    """Return a message Bundle as the referral page shows it: event, child, concern (narratives as written),
    child's voice, people, referrer, sender, where it came from. Missing parts are None or empty."""
    header = message_header(bundle) or {}
    event = (header.get("eventCoding") or {}).get("code")
    child = B.child(bundle)
    request = B.focus_request(bundle) or {}
    sender_org = B.resolve(bundle, header.get("sender")) or {}
    people = []
    for person in B.resources(bundle, "RelatedPerson"):
        people.append({
            "name": _name(person), "relationship": ", ".join(_codes(person.get("relationship"))),
            "parental_responsibility": _ext(person, S.EXT_PARENTAL_RESPONSIBILITY),
            "lives_with_child": _ext(person, S.EXT_LIVES_WITH_CHILD),
            "alleged_harm": _ext(person, S.EXT_ALLEGED_HARM),
            "phone": next((t.get("value") for t in person.get("telecom") or () if isinstance(t, dict)), None),
        })
    referrer = None
    role = B.resolve(bundle, request.get("requester")) or B.resolve(bundle, header.get("author"))
    if role:
        practitioner = B.resolve(bundle, role.get("practitioner")) if role.get("resourceType") == \
            "PractitionerRole" else role
        referrer = {"name": _name(practitioner), "role": ", ".join(_codes(role.get("code"))),
                    "phone": next((t.get("value") for t in (role.get("telecom") or (practitioner or {}).get(
                        "telecom") or ()) if isinstance(t, dict)), None)}
    provenance = next(iter(B.resources(bundle, "Provenance")), None)
    source = None
    if provenance:
        entity = next(iter(provenance.get("entity") or ()), {})
        source = {"what": ((entity.get("what") or {}).get("display")),
                  "mapping": _ext(provenance, S.EXT_MAPPING_VERSION),
                  "signed_at_source": _ext(provenance, S.EXT_SIGNATURE_PRESENT)}
    observations = [o.get("valueString") for o in B.resources(bundle, "Observation") if o.get("valueString")]
    task = next(iter(B.resources(bundle, "Task")), None)
    communication = next(iter(B.resources(bundle, "Communication")), None)
    return {
        "event": event, "event_display": MESSAGE_EVENTS.get(event, (event or "message", ""))[0],
        "child": None if child is None else {
            "name": _name(child), "birth_date": child.get("birthDate"), "gender": child.get("gender"),
            "nhs_number": B.identifier_value(child, S.NHS_NUMBER), "upn": B.identifier_value(child, S.UPN),
            "postcode": B.home_postcode(child), "year_group": _ext(child, S.EXT_YEAR_GROUP)},
        "categories": _codes(request.get("category")),
        "narratives": [n.get("text") for n in request.get("note") or () if isinstance(n, dict) and n.get("text")]
        + observations,
        "occurred_at": _ext(request, S.EXT_OCCURRED), "authored_on": request.get("authoredOn"),
        "childs_voice": _ext(request, S.EXT_CHILDS_VOICE), "child_spoken_to": _ext(request, S.EXT_CHILD_SPOKEN_TO),
        "parents_informed": _ext(request, S.EXT_PARENTS_INFORMED),
        "requested_action": _ext(request, S.EXT_REQUESTED_ACTION),
        "immediate_risk": _ext(request, S.EXT_IMMEDIATE_RISK),
        "people": people, "referrer": referrer, "sender_name": sender_org.get("name"),
        "source_endpoint": (header.get("source") or {}).get("endpoint"), "source": source,
        "outcome": None if task is None else {
            "decision": ((task.get("businessStatus") or {}).get("text")),
            "reason": (task.get("statusReason") or {}).get("text")},
        "notification": None if communication is None else {
            "text": " ".join(p.get("contentString", "") for p in communication.get("payload") or ()
                             if isinstance(p, dict)),
            "due_by": _ext(communication, S.extension_url("due-by"))},
    }


def feedback(response_body: str | None) -> dict:
    """The national standard's feedback on a message: ``completeness`` and its ``issues`` (severity, text,
    where), from the stored response."""
    outcome = _response_outcome(response_body) or {}
    issues = []
    for issue in outcome.get("issue") or ():
        if not isinstance(issue, dict) or issue.get("severity") == "information":
            continue
        issues.append({"severity": issue.get("severity"),
                       "text": (issue.get("details") or {}).get("text") or issue.get("diagnostics") or "",
                       "where": ", ".join(issue.get("expression") or ())})
    return {"completeness": completeness(outcome) if outcome else None, "issues": issues}


def versions(connection: Connection, message_id: str) -> list[dict]:
    """Return the earlier versions of a message, newest first: message id, version, received, what changed."""
    out = []
    current = connection.execute(select(_E).where(_E.c.message_id == message_id)).first()
    seen = {message_id}
    while current is not None and current.previous_message_id and current.previous_message_id not in seen:
        seen.add(current.previous_message_id)
        changes = json.loads(current.changes) if current.changes else []
        previous = connection.execute(select(_E).where(_E.c.message_id == current.previous_message_id)).first()
        if previous is None:
            break
        out.append({"message_id": previous.message_id, "version": previous.version,
                    "received_at": previous.received_at, "changes_after": changes})
        current = previous
    return out


def event_of(connection: Connection, message_id: str):
    """Return the message's ``message_event`` row, or None."""
    return connection.execute(select(_E).where(_E.c.message_id == message_id)).first()


def outcomes_of(connection: Connection, message_id: str) -> list[dict]:
    """Return the referral outcomes answering ``message_id``, oldest first: who, when, decision, reason."""
    rows = connection.execute(select(_E.c.message_id, _E.c.sender_agency, _E.c.received_at, _E.c.outcome,
                                     _A.c.signed_message)
                              .join(_A, _A.c.message_id == _E.c.message_id)
                              .where(_E.c.answers_message_id == message_id, _E.c.kind == S.EVENT_OUTCOME)
                              .order_by(_E.c.received_at)).all()
    out = []
    for r in rows:
        task = read_message(orjson.loads(r.signed_message))["outcome"] or {}
        out.append({"message_id": r.message_id, "agency": r.sender_agency, "received_at": r.received_at,
                    "decision": task.get("decision") or REFERRAL_DECISIONS.get(r.outcome, (r.outcome,))[0],
                    "reason": task.get("reason")})
    return out


def deadlines_of(connection: Connection, message_id: str) -> list[dict]:
    """Return the deadlines set by a message: kind (as people say it), agency, due, met, overdue."""
    return [{"kind": D.DEADLINE_LABELS.get(r.kind, r.kind), "agency": r.agency, "due_at": r.due_at,
             "met_at": r.met_at} for r in connection.execute(
                select(_DL).where(_DL.c.message_id == message_id).order_by(_DL.c.due_at)).all()]


def escalations_for(connection: Connection, home_la: str, *, limit: int = 200) -> list[dict]:
    """Return the escalations raised about ``home_la``'s children, newest first, each with the child's name as
    the message that raised it gives it (``child``; empty when that record is gone)."""
    raised = connection.execute(select(_ESC).where(_ESC.c.home_la == home_la)
                                .order_by(_ESC.c.raised_at.desc(), _ESC.c.id.desc()).limit(limit)).all()
    ids = list({e.message_id: None for e in raised if e.message_id})
    names: dict[tuple[str, str], str] = {}
    if ids:
        # The raising message's record of the person the alert is about (the child, or one of a household's).
        for mp in connection.execute(select(_MP.c.message_id, _MP.c.person_id, _MP.c.given, _MP.c.family).where(
                among(connection, _MP.c.message_id, ids)).order_by(_MP.c.id)):
            names.setdefault((mp.message_id, mp.person_id), _folded_name(mp.given, mp.family))
    # A record relinked since (a confirmed match, a merge): the person's latest record names them instead.
    missing = list({e.person_id: None for e in raised if (e.message_id, e.person_id) not in names})
    if missing:
        latest = {}
        for mp in connection.execute(select(_MP.c.person_id, _MP.c.given, _MP.c.family).where(
                among(connection, _MP.c.person_id, missing)).order_by(_MP.c.id.desc())):
            latest.setdefault(mp.person_id, _folded_name(mp.given, mp.family))
        for e in raised:
            if e.person_id in latest:
                names.setdefault((e.message_id, e.person_id), latest[e.person_id])
    return [{"rule_id": e.rule_id, "person_id": e.person_id, "raised_at": e.raised_at, "reason": e.reason,
             "message_id": e.message_id, "title": (json.loads(e.flag).get("code") or {}).get("text"),
             "child": names.get((e.message_id, e.person_id), "")}
            for e in raised]


# Schools and police -------------------------------------------------------------------------------------

def notifications(connection: Connection, agency: str, *, limit: int = 200) -> list[dict]:
    """Return the Operation Encompass notifications delivered to ``agency`` (a school), open ones first:
    delivery id, state, received, due, acknowledged, the notification's text and child."""
    rows = connection.execute(
        select(_D).where(_D.c.destination == agency, _D.c.kind == KIND_MESSAGE,
                         _D.c.rule.in_(ENCOMPASS_RULES))
        .order_by(case((_D.c.state.in_(OPEN_STATES), 0), else_=1), _D.c.due_at, _D.c.created_at.desc())
        .limit(limit)).all()
    out = []
    for r in rows:
        view = read_message(orjson.loads(r.payload))
        out.append({"delivery_id": r.id, "state": r.state, "received_at": r.created_at, "due_at": r.due_at,
                    "acknowledged_at": r.acknowledged_at, "mode": r.mode,
                    "child": (view["child"] or {}).get("name", ""),
                    "text": (view["notification"] or {}).get("text", "")})
    return out


def sent_messages(connection: Connection, agency: str, *, kinds: tuple[str, ...] | None = None,
                  limit: int = 200) -> list[dict]:
    """Return the messages ``agency`` sent, newest first, each with its deliveries (destination, state,
    when), its outcomes, late days and the standard's completeness score."""
    query = (select(_A.c.message_id, _A.c.received_at, _A.c.response_body, _E.c.kind, _E.c.summary,
                    _E.c.late_days, _E.c.notice_type, _E.c.risk)
             .join(_E, _E.c.message_id == _A.c.message_id)
             .where(_A.c.sender_agency == agency).order_by(_A.c.received_at.desc()).limit(limit))
    if kinds:
        query = query.where(_E.c.kind.in_(kinds))
    rows = connection.execute(query).all()
    ids = [r.message_id for r in rows]
    deliveries: dict[str, list[dict]] = {}
    children: dict[str, str] = {}
    if ids:
        for d in connection.execute(select(_D.c.message_id, _D.c.destination, _D.c.state, _D.c.updated_at,
                                           _D.c.acknowledged_at, _D.c.kind)
                                    .where(among(connection, _D.c.message_id, ids), _D.c.kind == KIND_MESSAGE,
                                           or_(_D.c.rule.is_(None), ~_D.c.rule.startswith(ESCALATION_RULE_PREFIX, autoescape=True)))
                                    .order_by(_D.c.created_at)):
            deliveries.setdefault(d.message_id, []).append(
                {"destination": d.destination, "state": d.state, "updated_at": d.updated_at,
                 "acknowledged_at": d.acknowledged_at})
        for mp in connection.execute(select(_MP.c.message_id, _MP.c.given, _MP.c.family).where(
                among(connection, _MP.c.message_id, ids), _MP.c.role == "child").order_by(_MP.c.id)):
            children.setdefault(mp.message_id, _folded_name(mp.given, mp.family))
    out = []
    for r in rows:
        out.append({"message_id": r.message_id, "received_at": r.received_at, "kind": r.kind,
                    "kind_display": MESSAGE_EVENTS.get(r.kind, (r.kind, ""))[0], "summary": r.summary,
                    "late_days": r.late_days, "notice_type": r.notice_type,
                    "notice_type_display": codelists.display(S.NOTICE_TYPE, r.notice_type) or r.notice_type,
                    "risk": r.risk,
                    "child": children.get(r.message_id, ""), "deliveries": deliveries.get(r.message_id, []),
                    "outcomes": outcomes_of(connection, r.message_id) if r.kind == S.EVENT_REFERRAL else [],
                    "feedback": feedback(r.response_body) if r.kind in (S.EVENT_REFERRAL, S.EVENT_CONCERN)
                    else None})
    return out


def late_by_month(connection: Connection, agency: str, zone: dt.tzinfo = dt.timezone.utc) -> list[dict]:
    """Return ``agency``'s messages per month received in ``zone`` (the gateway's timezone, as the console writes
    times), oldest first: ``month`` (YYYY-MM), ``name`` (September 2018), ``sent``, ``late``."""
    rows = connection.execute(select(_E.c.received_at, _E.c.late_days).where(_E.c.sender_agency == agency)).all()
    months: dict[str, dict] = {}
    for received_at, late_days in rows:
        key = f"{received_at.astimezone(zone):%Y-%m}"
        month = months.setdefault(key, {"month": key, "name": month_name(key), "sent": 0, "late": 0})
        month["sent"] += 1
        month["late"] += 1 if late_days is not None else 0
    return [months[m] for m in sorted(months)]


# Operators ------------------------------------------------------------------------------------------------

def dead_letters(connection: Connection, *, limit: int = 200) -> list[dict]:
    """Return dead-lettered deliveries, most recent first: id, message, destination, when, last error."""
    return [{"id": r.id, "message_id": r.message_id, "destination": r.destination, "kind": r.kind,
             "dead_lettered_at": r.dead_lettered_at, "attempts": r.attempts, "last_error": r.last_error}
            for r in connection.execute(select(_D).where(_D.c.state == DEAD_LETTERED)
                                        .order_by(_D.c.dead_lettered_at.desc(), _D.c.id).limit(limit))]


def delivery_health(connection: Connection, *, now: dt.datetime) -> dict:
    """Return deliveries per state, open deliveries past their due time, the oldest open delivery and
    open deliveries per destination with attempts (the busiest first)."""
    states = dict(connection.execute(select(_D.c.state, func.count()).group_by(_D.c.state)).all())
    overdue = connection.execute(select(func.count()).select_from(_D).where(
        _D.c.state.in_(OPEN_STATES), _D.c.due_at < now)).scalar_one()
    oldest = connection.execute(select(func.min(_D.c.created_at)).where(_D.c.state.in_(OPEN_STATES))).scalar()
    by_destination = [{"destination": d, "open": n, "attempts": int(a or 0), "retrying": int(r or 0)}
                      for d, n, a, r in connection.execute(
                          select(_D.c.destination, func.count(), func.sum(_D.c.attempts),
                                 func.sum(case((_D.c.last_error.is_not(None), 1), else_=0)))
                          .where(_D.c.state.in_(OPEN_STATES)).group_by(_D.c.destination)
                          .order_by(func.count().desc(), _D.c.destination).limit(50))]
    return {"states": states, "overdue": overdue, "oldest_open": oldest, "by_destination": by_destination}


def unroutable(connection: Connection, *, limit: int = 200) -> list[dict]:
    """Return the open unroutable entries, oldest first."""
    return [{"id": u.id, "message_id": u.message_id, "sender": u.sender_agency, "rule": u.rule, "reason": u.reason,
             "created_at": u.created_at}
            for u in connection.execute(select(_U).where(_U.c.resolved.is_(False))
                                        .order_by(_U.c.created_at, _U.c.id).limit(limit))]
