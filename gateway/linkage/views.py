"""HTTP API of the person index, chronology and figures, all under mutual TLS.

* ``GET /people/matches``: possible matches awaiting review;
  ``POST /people/matches/<id>/$confirm`` and ``/$reject`` (JSON body
  ``{"reason": "...", "user": "..."}``): a person decides. Children's
  services of the child's home LA only.
* ``GET /fhir/Patient/<person-id>/$chronology``: the child's and household's
  events as a FHIR Bundle. Children's services of the child's home LA only;
  every read is recorded.
* ``GET /stats``: the figures per agency (an agency sees its own row; the
  gateway's operators every row).

Anyone else gets 403 with an OperationOutcome saying why; an unknown id 404.
"""

from __future__ import annotations

import datetime as dt
import threading

from flask import Blueprint, Flask, Response, current_app, json, request

from gateway.config import Settings
from gateway.delivery.views import store_for
from gateway.linkage.chronology import (
    chronology,
    chronology_bundle,
    decide_duplicate,
    figures,
    open_duplicates,
    person,
    record_read,
)
from gateway.linkage.index import PersonIndex, ReviewError, match_view, open_matches
from gateway.linkage.models import PossibleMatchRow
from gateway.linkage.services import Linkage
from gateway.model.systems import parse_agency_uri
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, intake_for
from gateway.web import fhir_response, operation_outcome

blueprint = Blueprint("linkage", __name__)

LINKAGE_EXTENSION = "gateway.linkage"
_LOCK = threading.Lock()


def linkage_for(app: Flask) -> Linkage:
    """Return the app's :class:`Linkage` (the match model and rules loaded once), built on first use."""
    linkage = app.extensions.get(LINKAGE_EXTENSION)
    if linkage is None:
        with _LOCK:
            linkage = app.extensions.get(LINKAGE_EXTENSION)
            if linkage is None:
                settings: Settings = app.config["GATEWAY_SETTINGS"]
                linkage = app.extensions[LINKAGE_EXTENSION] = Linkage(
                    settings=settings, signer=lambda: intake_for(app).signer())
    return linkage


def linkage_step(app: Flask):
    """Return the accept step that links each message the app accepts (:meth:`Linkage.accept_step`)."""

    def link_accepted_message(unit, accepted, bundle) -> None:
        linkage_for(app).accept_step(unit, accepted, bundle)

    return link_accepted_message


def _now() -> dt.datetime:
    clock = current_app.config.get(CLOCK_KEY)
    return clock() if clock is not None else dt.datetime.now(dt.timezone.utc)


def _refuse(status: int, code: str, text: str) -> Response:
    return fhir_response(operation_outcome("error", code, text), status)


def _children_services() -> str | Response:
    """The calling agency when it is a local authority's children's services, else the refusal to answer."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        return _refuse(401, "login", "no verified agency certificate: connect with mutual TLS using a certificate "
                       "issued by the deployment CA")
    parsed = parse_agency_uri(agency)
    if parsed is None or parsed[0] != "la":
        return _refuse(403, "forbidden", f"only children's services of the child's home local authority may use "
                       f"this; the client certificate is {agency}'s")
    return agency


@blueprint.get("/people/matches")
def list_matches() -> Response:
    """Possible matches awaiting review for the calling LA's children, oldest first (JSON)."""
    agency = _children_services()
    if isinstance(agency, Response):
        return agency
    with store_for(current_app).transaction() as unit:
        connection = unit.session.connection()
        matches = open_matches(connection, home_la=agency)
        record_read(connection, agency, "possible-matches", None, _now())
    return Response(json.dumps({"matches": matches, "total": len(matches)}), mimetype="application/json")


def _decided_by(agency: str, body: object) -> str:
    """Who decides: the calling agency, with the user it names in the JSON body when it names one."""
    user = body.get("user") if isinstance(body, dict) and isinstance(body.get("user"), str) else None
    return f"{agency} ({user.strip()[:100]})" if user and user.strip() else agency


def _review_refusal(exc: ReviewError) -> Response:
    code = {404: "not-found", 403: "forbidden", 409: "conflict"}.get(exc.status, "invalid")
    return _refuse(exc.status, code, exc.text)


def _decide(match_id: int, action: str) -> Response:
    agency = _children_services()
    if isinstance(agency, Response):
        return agency
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("reason"), str) or not body["reason"].strip():
        return _refuse(400, "required", 'send JSON {"reason": "why", "user": "who decided"}: a decision on a possible '
                       "match needs a reason")
    by = _decided_by(agency, body)
    now = _now()
    model = linkage_for(current_app).model
    try:
        with store_for(current_app).transaction() as unit:
            connection = unit.session.connection()
            row = connection.execute(PossibleMatchRow.__table__.select().where(
                PossibleMatchRow.__table__.c.id == match_id)).first()
            if row is None:
                raise ReviewError(404, f"no possible match {match_id}")
            if row.home_la != agency:
                raise ReviewError(403, f"possible match {match_id} is for another local authority's child")
            index = PersonIndex(connection, model)
            if action == "confirm":
                index.confirm(match_id, by=by, reason=body["reason"], now=now)
            else:
                index.reject(match_id, by=by, reason=body["reason"], now=now)
            decided = match_view(connection, connection.execute(PossibleMatchRow.__table__.select().where(
                PossibleMatchRow.__table__.c.id == match_id)).first())
    except ReviewError as exc:
        return _review_refusal(exc)
    return Response(json.dumps(decided), mimetype="application/json")


@blueprint.post("/people/matches/<int:match_id>/$confirm")
def confirm_match(match_id: int) -> Response:
    """A person confirms a possible match: the two records are one person."""
    return _decide(match_id, "confirm")


@blueprint.post("/people/matches/<int:match_id>/$reject")
def reject_match(match_id: int) -> Response:
    """A person rejects a possible match: never proposed again."""
    return _decide(match_id, "reject")


@blueprint.get("/people/duplicates")
def list_duplicates() -> Response:
    """Possible duplicates about the calling LA's children awaiting a person, both messages side by side (JSON)."""
    agency = _children_services()
    if isinstance(agency, Response):
        return agency
    with store_for(current_app).transaction() as unit:
        connection = unit.session.connection()
        flags = open_duplicates(connection, home_la=agency)
        record_read(connection, agency, "possible-duplicates", None, _now())
    return Response(json.dumps({"duplicates": flags, "total": len(flags)}), mimetype="application/json")


@blueprint.post("/people/duplicates/<int:flag_id>/$<action>")
def decide_duplicate_flag(flag_id: int, action: str) -> Response:
    """A person decides a possible duplicate: ``$confirm`` (one event sent twice) or ``$dismiss`` (two events)."""
    agency = _children_services()
    if isinstance(agency, Response):
        return agency
    body = request.get_json(silent=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    by = _decided_by(agency, body)
    try:
        with store_for(current_app).transaction() as unit:
            decided = decide_duplicate(unit.session.connection(), flag_id, action, by=by, reason=reason or "",
                                       now=_now(), home_la=agency)
    except ReviewError as exc:
        return _review_refusal(exc)
    return Response(json.dumps(decided), mimetype="application/json")


@blueprint.get("/fhir/Patient/<person_id>/$chronology")
def patient_chronology(person_id: str) -> Response:
    """The child's and household's events from every agency, in order, as a FHIR Bundle."""
    agency = _children_services()
    if isinstance(agency, Response):
        return agency
    now = _now()
    with store_for(current_app).transaction() as unit:
        connection = unit.session.connection()
        subject = person(connection, person_id)
        if subject is None:
            return _refuse(404, "not-found", f"Patient {person_id} is not found")
        if subject.home_la != agency:
            return _refuse(403, "forbidden", "only children's services of the child's home local authority may "
                           "read the chronology")
        if subject.merged_into is not None:
            # One child with another, kept: theirs is the chronology (this id's would be empty). For good: 308.
            kept = subject.merged_into
            when = subject.merged_at.isoformat() if subject.merged_at else "unknown"
            answer = fhir_response(operation_outcome(
                "information", "informational", f"Patient {person_id} was found to be one child with Patient "
                f"{kept} (at {when}): read their chronology at Patient/{kept}/$chronology"), 308)
            answer.headers["Location"] = f"{request.host_url}fhir/Patient/{kept}/$chronology"
            return answer
        view = chronology(connection, person_id)
        record_read(connection, agency, "chronology", person_id, now)
    return fhir_response(chronology_bundle(view, now=now, base_url=request.host_url + "fhir/"))


@blueprint.get("/stats")
def stats() -> Response:
    """The figures per agency (JSON): the caller's own row, or every row for the gateway's operators."""
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        return _refuse(401, "login", "no verified agency certificate")
    parsed = parse_agency_uri(agency)
    if parsed is None:
        return _refuse(403, "forbidden", f"the client certificate names no agency ({agency!r})")
    with store_for(current_app).transaction() as unit:
        rows = figures(unit.session.connection(), now=_now(), agency=None if parsed[0] == "gateway" else agency)
    return Response(json.dumps({"agencies": rows, "generated_at": _now().isoformat()}), mimetype="application/json")
