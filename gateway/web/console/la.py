"""Children's services pages: inbox, referral, decision, chronology, possible matches, alerts."""

from __future__ import annotations

from typing import NamedTuple

import orjson
from flask import abort, current_app, redirect, request, url_for
from sqlalchemy import select

from gateway.linkage.chronology import (
    chronology,
    decide_duplicate,
    duplicate_view,
    open_duplicates,
    person,
)
from gateway.linkage.index import PersonIndex, ReviewError, match_view, open_matches
from gateway.linkage.models import PossibleDuplicateRow, PossibleMatchRow
from gateway.linkage.views import linkage_for
from gateway.routing.codes import REFERRAL_DECISIONS
from gateway.routing.messages import build_outcome_message
from gateway.signing import pki
from gateway.signing.signatures import TrustAnchor, UntrustedMessage, verify_message
from gateway.transport.views import intake_for
from gateway.web.console import pictures, queries
from gateway.web.console.common import (
    RISK_COLOURS,
    agency_names,
    blueprint,
    check_csrf,
    for_kind,
    format_due,
    format_when,
    links,
    local_zone,
    now,
    reading,
    record,
    render,
    store,
)

LA = "children's services of a local authority"
_MATCH = PossibleMatchRow.__table__
_DUPLICATE = PossibleDuplicateRow.__table__
REASON_MAX = 2000


@blueprint.get("/la/inbox")
@for_kind("la", LA)
def inbox(agency: str):
    """The messages delivered to this LA: sortable and filterable with query parameters."""
    try:
        query = queries.InboxQuery.parse(request.args)
    except queries.BadQuery as exc:
        abort(400, exc.text)
    at = now()
    record(agency, "console-inbox", None, at)
    with reading() as connection:
        page = queries.inbox(connection, agency, query, now=at)
        choices = queries.inbox_filters()
        name = agency_names(connection, (row["sender"] for row in page["rows"]))
        link = links("console.referral", "message_id")
        rows = [_inbox_row(row, name(row["sender"]), link(row["message_id"])) for row in page["rows"]]
    return render("console/inbox.html", agency, "Inbox", page=page, rows=rows, query=query, choices=choices,
                  sorts=queries.INBOX_SORTS, statuses=queries.INBOX_STATUSES)


class InboxRow(NamedTuple):
    """One row of the inbox's table, as shown (built here, as the chronology's rows are: 50 rows of filters and
    tests in the template were most of the page's rendering)."""

    due: str
    overdue: bool
    done: bool
    received: str
    href: str
    kind_display: str
    categories: str
    child: str
    sender: str
    risk: str | None
    risk_colour: str
    completeness: str
    flags: list[str]


def _inbox_row(row: dict, sender_name: str, href: str) -> InboxRow:
    return InboxRow(
        # A deadline always has a due time, and one met is not overdue (queries.inbox).
        due=format_due(row["due_at"]) if row["due_at"] else "", overdue=row["overdue"],
        done=row["met_at"] is not None, received=format_when(row["received_at"]),
        href=href, kind_display=row["kind_display"],
        categories=", ".join(row["categories"]).replace("-", " "), child=row["child"],
        sender=f"The gateway, about a message from {sender_name}" if row["gateway_made"] else sender_name,
        risk=row["risk"], risk_colour=RISK_COLOURS.get(row["risk"], "grey"),
        completeness=f"{row['completeness']}%" if row["completeness"] is not None else "", flags=row["flags"])


def _readable_message(connection, agency: str, message_id: str, *, to_decide: bool = False):
    """The accepted message if ``agency`` may read it (to decide on it: only if it was delivered to them), and
    whether it was delivered to them to decide on."""
    readable, delivered = queries.access(connection, agency, message_id)
    if to_decide and not delivered:
        abort(404, f"No message {message_id} was delivered to you to decide on.")
    if not readable:
        abort(404, f"No message {message_id} was delivered to you or is about a child of yours.")
    row = queries.accepted_message(connection, message_id)
    if row is None:  # pragma: no cover - a delivery always has its accepted message (foreign key)
        abort(404, f"No message {message_id}.")
    return row, delivered


def _signature(bundle: dict, at) -> dict:
    """Verify the stored message's signatures with the deployment's trust anchor: who signed, or why not."""
    try:
        trust: TrustAnchor = intake_for(current_app).trust()
        verified = verify_message(bundle, trust, now=at)
    except UntrustedMessage as exc:
        return {"verified": False, "problem": str(exc)}
    except (pki.PKIError, OSError) as exc:  # no certificates: said on the page, never a traceback
        current_app.logger.error("cannot verify signatures for the console: %s", exc)
        return {"verified": False, "problem": "the gateway's certificates are not available to check it"}
    sender = verified.sender_signature
    return {"verified": True, "gateway": verified.signature.agency, "gateway_when": verified.signature.when,
            "sender": sender.agency if sender else None, "sender_when": sender.when if sender else None}


@blueprint.get("/la/messages/<message_id>")
@for_kind("la", LA)
def referral(agency: str, message_id: str):
    """One delivered message, as a person reads it."""
    at = now()
    with reading() as connection:
        row, delivered = _readable_message(connection, agency, message_id)
        record(agency, "console-message", message_id, at)
        bundle = orjson.loads(row.signed_message)
        view = queries.read_message(bundle)
        event = queries.event_of(connection, message_id)
        signature = _signature(bundle, at)
        outcomes = queries.outcomes_of(connection, message_id)
        # Names are looked up here, in the transaction: the template gets data, never the database.
        shown = {row.sender_agency, signature.get("sender"), signature.get("gateway"), *(o["agency"] for o in outcomes)}
        name = agency_names(connection, shown)
        names = {uri: name(uri) for uri in shown if uri}
        context = dict(
            message=view, message_id=message_id, received_at=row.received_at, sender=row.sender_agency,
            sender_name=names[row.sender_agency], feedback=queries.feedback(row.response_body),
            signature=signature, versions=queries.versions(connection, message_id), outcomes=outcomes,
            deadlines=queries.deadlines_of(connection, message_id),
            event=event, person_id=event.child_person_id if event is not None else None,
            decided=request.args.get("decided") == "1", names=names,
            can_decide=delivered)
    return render("console/referral.html", agency, view["event_display"], **context)


def _decision_form(agency: str, message_id: str, errors: dict, values: dict, status: int = 200):
    at = now()
    with reading() as connection:
        row, _ = _readable_message(connection, agency, message_id, to_decide=True)
        record(agency, "console-decision", message_id, at)
        view = queries.read_message(orjson.loads(row.signed_message))
    return render("console/decision.html", agency, "Record the decision", status=status, message=view,
                  message_id=message_id,
                  decisions=[(code, label) for code, (label, _) in REFERRAL_DECISIONS.items()], errors=errors,
                  values=values)


@blueprint.get("/la/messages/<message_id>/decision")
@for_kind("la", LA)
def decision(agency: str, message_id: str):
    """The decision form: an outcome and a reason."""
    return _decision_form(agency, message_id, {}, {})


@blueprint.post("/la/messages/<message_id>/decision")
@for_kind("la", LA)
def record_decision(agency: str, message_id: str):
    """Send the referral-outcome message through the gateway's own intake, as this LA."""
    check_csrf(agency)
    values = {"decision": request.form.get("decision", ""), "reason": request.form.get("reason", "").strip()}
    errors = {}
    if values["decision"] not in REFERRAL_DECISIONS:
        errors["decision"] = "Select the decision"
    if not values["reason"]:
        errors["reason"] = "Enter the reason for the decision, for the referrer to read"
    elif len(values["reason"]) > REASON_MAX:
        errors["reason"] = f"The reason must be {REASON_MAX} characters or fewer"
    if errors:
        return _decision_form(agency, message_id, errors, values, status=400)
    at = now()
    with store().transaction() as unit:
        row, _ = _readable_message(unit.session.connection(), agency, message_id, to_decide=True)
        event = queries.event_of(unit.session.connection(), message_id)
        name = agency_names(unit)(agency)
        original = orjson.loads(row.signed_message)
    if event is None or not event.referral:
        abort(400, "Only a referral can be given a decision.")
    outcome = build_outcome_message(original, values["decision"], values["reason"], agency, at,
                                    decided_by_name=name)
    answer = intake_for(current_app).process(orjson.dumps(outcome), agency, now=at)
    if answer.status != 200:
        current_app.logger.warning("the console's decision on %s was refused (%s): %s", message_id, answer.status,
                                   answer.body)
        errors["decision"] = "The gateway did not accept the decision: " + _refusal_text(answer.body)
        return _decision_form(agency, message_id, errors, values, status=422)
    return redirect(url_for("console.referral", message_id=message_id, decided=1), code=303)


def _refusal_text(body: str) -> str:
    try:
        issues = orjson.loads(body).get("issue") or []
    except orjson.JSONDecodeError:
        return body[:300]
    return "; ".join((i.get("details") or {}).get("text") or i.get("diagnostics") or "" for i in issues)[:600]


def _own_child(connection, agency: str, person_id: str):
    subject = person(connection, person_id)
    if subject is None:
        abort(404, f"The gateway knows no child {person_id}: the link may be mistyped, or the child's records "
                   "were joined to another child's or deleted at the end of retention. Find the child from your "
                   "inbox or alerts.")
    if subject.home_la != agency:
        abort(403, "Only children's services of the child's home local authority can read the chronology.")
    return subject


@blueprint.get("/la/people/<person_id>/chronology")
@for_kind("la", LA)
def chronology_page(agency: str, person_id: str):
    """The child's and household's events from every agency: a timeline picture and a table, of every event or
    of those the filter keeps (one agency's, about the child or the household)."""
    try:
        shown = queries.ChronologyFilter.parse(request.args)
    except queries.BadQuery as exc:
        abort(400, exc.text)
    at = now()
    with reading() as connection:
        subject = _own_child(connection, agency, person_id)
        if subject.merged_into is not None:
            # Found to be one with another child: the chronology is theirs (this page would be empty), and says so.
            return redirect(url_for("console.chronology_page", person_id=subject.merged_into, joined=person_id,
                                    **{k: v for k, v in request.args.items() if k in ("agency", "about")}), code=303)
        joined = _joined(connection, request.args.get("joined"), person_id)
        record(agency, "chronology", person_id, at)
        # The page shows the child's names and birth dates, not their identifiers, and of each event what the
        # timeline and the table show.
        view = chronology(connection, person_id, iso_times=False, identifiers=False, brief=True, subject=subject)
        name = agency_names(connection, (event["agency"] for event in view["events"]))
        for event in view["events"]:
            event["agency_name"] = name(event["agency"])
    # The filter offers every agency of the chronology, by name; the timeline and the table show what it keeps.
    agencies = dict(sorted({e["agency"]: e["agency_name"] for e in view["events"]}.items(), key=lambda a: a[1]))
    events = [event for event in view["events"] if shown.keeps(event)] if shown.active else view["events"]
    layout = pictures.timeline(events, view["escalations"], agencies, zone=local_zone())
    link = links("console.referral", "message_id")
    return render("console/chronology.html", agency, "Chronology", view=view, layout=layout, person_id=person_id,
                  shown=shown, agencies=agencies, about=queries.CHRONOLOGY_ABOUT, joined=joined,
                  rows=[_chronology_row(event, link) for event in events])


def _joined(connection, joined_id: str | None, person_id: str):
    """The person row of ``joined_id`` when it was merged into ``person_id`` (a link to them led here), else
    None: the page then says why it shows another child than the link named."""
    if not joined_id or len(joined_id) > 36:
        return None
    row = person(connection, joined_id)
    return row if row is not None and row.merged_into == person_id else None


class ChronologyRow(NamedTuple):
    """One event of the chronology's table, as shown (built here: a page of hundreds of events spends its time
    in the template otherwise)."""

    when: str
    agency_name: str
    href: str
    kind_display: str
    summary: str
    about: str
    risk: str | None
    risk_colour: str
    flags: list[tuple[str, str]]


def _chronology_row(event: dict, link) -> ChronologyRow:
    flags = []
    if event["late_days"]:
        flags.append((f"Sent {event['late_days']} days late", "red"))
    flags += [(f"{d['kind'].replace('-', ' ').capitalize()} late", "red") for d in event["deadlines"] if d["late"]]
    if event["version"] > 1:
        flags.append((f"Version {event['version']}", "yellow"))
    if event["possible_duplicates"]:
        flags.append(("Possible duplicate", "yellow"))
    return ChronologyRow(
        when=format_when(event["occurred_at"] or event["recorded_at"] or event["received_at"]),
        agency_name=event["agency_name"], href=link(event["message_id"]),
        kind_display=event["kind_display"], summary=event["summary"],
        about="The child" if event["about"] == "child" else "Household", risk=event["risk"],
        risk_colour=RISK_COLOURS.get(event["risk"], "grey"), flags=flags)


@blueprint.get("/la/matches")
@for_kind("la", LA)
def matches(agency: str):
    """Possible matches and possible duplicates waiting for this LA's decision."""
    at = now()
    record(agency, "possible-matches", None, at, also=("possible-duplicates",))
    with reading() as connection:
        waiting = open_matches(connection, home_la=agency)
        duplicates = open_duplicates(connection, home_la=agency)
        name = agency_names(connection, [m["record"].get("source") for m in waiting if m.get("record")]
                            + [flag["message"].get("agency") for flag in duplicates])
        for m in waiting:
            m["source_name"] = name(m["record"].get("source")) if m.get("record") else ""
        for flag in duplicates:
            flag["sender_name"] = name(flag["message"].get("agency"))
    return render("console/matches.html", agency, "Matches and duplicates", matches=waiting, duplicates=duplicates)


def _duplicate(connection, agency: str, flag_id: int):
    row = connection.execute(select(_DUPLICATE).where(_DUPLICATE.c.id == flag_id)).first()
    if row is None:
        abort(404, f"No possible duplicate {flag_id}.")
    if row.home_la != agency:
        abort(403, "This possible duplicate is about another local authority's child.")
    return row


def _duplicate_page(agency: str, flag_id: int, errors: dict, values: dict, status: int = 200):
    at = now()
    with reading() as connection:
        flag = _duplicate(connection, agency, flag_id)
        record(agency, "possible-duplicate", str(flag_id), at)
        view = duplicate_view(connection, flag)
        name = agency_names(connection)
        sides = []
        for side in (view["duplicate_of"], view["message"]):
            row = queries.accepted_message(connection, side["message_id"])
            sides.append({**side, "sender_name": name(side.get("agency")),
                          "read": queries.read_message(orjson.loads(row.signed_message)) if row else None})
    return render("console/duplicate.html", agency, "Possible duplicate", status=status, flag=view, sides=sides,
                  errors=errors, values=values)


@blueprint.get("/la/duplicates/<int:flag_id>")
@for_kind("la", LA)
def duplicate(agency: str, flag_id: int):
    """A possible duplicate: the two messages side by side."""
    return _duplicate_page(agency, flag_id, {}, {})


@blueprint.post("/la/duplicates/<int:flag_id>")
@for_kind("la", LA)
def decide_duplicate_flag(agency: str, flag_id: int):
    """Confirm (one event sent twice) or dismiss (two events) a possible duplicate, with a reason."""
    check_csrf(agency)
    values = {"action": request.form.get("action", ""), "reason": request.form.get("reason", "").strip()}
    errors = {}
    if values["action"] not in ("confirm", "dismiss"):
        errors["action"] = "Select whether these messages are about the same event"
    if not values["reason"]:
        errors["reason"] = "Enter the reason for your decision"
    elif len(values["reason"]) > REASON_MAX:
        errors["reason"] = f"The reason must be {REASON_MAX} characters or fewer"
    if errors:
        return _duplicate_page(agency, flag_id, errors, values, status=400)
    try:
        with store().transaction() as unit:
            decide_duplicate(unit.session.connection(), flag_id, values["action"], by=f"{agency} (console)",
                             reason=values["reason"], now=now(), home_la=agency)
    except ReviewError as exc:
        abort(exc.status, exc.text)
    return redirect(url_for("console.matches"), code=303)


def _match(connection, agency: str, match_id: int):
    row = connection.execute(select(_MATCH).where(_MATCH.c.id == match_id)).first()
    if row is None:
        abort(404, f"No possible match {match_id}.")
    if row.home_la != agency:
        abort(403, "This possible match is for another local authority's child.")
    return row


#: The fields compared side by side: (field of the records, label, field of the score).
COMPARED = (("given", "Given names", "given"), ("family", "Family name", "family"),
            ("birth_date", "Date of birth", "birth_date"), ("sex", "Sex", "sex"),
            ("postcode", "Postcode", "postcode"), ("nhs_number", "NHS number", "nhs_number"),
            ("upn", "Unique pupil number", "upn"), ("school_urn", "School", "school"))


def _match_page(agency: str, match_id: int, errors: dict, values: dict, status: int = 200):
    at = now()
    with reading() as connection:
        row = _match(connection, agency, match_id)
        record(agency, "possible-match", str(match_id), at)
        view = match_view(connection, row)
        source = (view.get("record") or {}).get("source")
        source_name = agency_names(connection, [source])(source)
    fields = {}
    for item in ((view.get("explanation") or {}).get("score") or {}).get("fields") or ():
        if isinstance(item, dict) and item.get("field"):
            fields[item["field"]] = item
    return render("console/match.html", agency, "Possible match", status=status, match=view, compared=COMPARED,
                  fields=fields, errors=errors, values=values, source_name=source_name)


@blueprint.get("/la/matches/<int:match_id>")
@for_kind("la", LA)
def match(agency: str, match_id: int):
    """One possible match: both records side by side, field by field, with the weights."""
    return _match_page(agency, match_id, {}, {})


@blueprint.post("/la/matches/<int:match_id>")
@for_kind("la", LA)
def decide_match(agency: str, match_id: int):
    """Confirm or reject a possible match, with a reason."""
    check_csrf(agency)
    values = {"action": request.form.get("action", ""), "reason": request.form.get("reason", "").strip()}
    errors = {}
    if values["action"] not in ("confirm", "reject"):
        errors["action"] = "Select whether these records are the same person"
    if not values["reason"]:
        errors["reason"] = "Enter the reason for your decision"
    elif len(values["reason"]) > REASON_MAX:
        errors["reason"] = f"The reason must be {REASON_MAX} characters or fewer"
    if errors:
        return _match_page(agency, match_id, errors, values, status=400)
    model = linkage_for(current_app).model
    try:
        with store().transaction() as unit:
            connection = unit.session.connection()
            _match(connection, agency, match_id)
            index = PersonIndex(connection, model)
            if values["action"] == "confirm":
                kept = index.confirm(match_id, by=f"{agency} (console)", reason=values["reason"], now=now())
            else:
                index.reject(match_id, by=f"{agency} (console)", reason=values["reason"], now=now())
                kept = None
    except ReviewError as exc:
        abort(exc.status, exc.text)
    if kept:
        return redirect(url_for("console.chronology_page", person_id=kept), code=303)
    return redirect(url_for("console.matches"), code=303)


@blueprint.get("/la/alerts")
@for_kind("la", LA)
def alerts(agency: str):
    """Escalation alerts raised about this LA's children, newest first."""
    at = now()
    record(agency, "console-alerts", None, at)
    with reading() as connection:
        raised = queries.escalations_for(connection, agency)
    return render("console/alerts.html", agency, "Alerts", alerts=raised)
