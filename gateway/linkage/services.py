"""One child, one picture: the accept step that links each message, and what reads the links.

:class:`Linkage` is built once per app (``create_app``) and registered as an
accept step: in the transaction that accepts a message it

1. writes a person-index record for every Patient and RelatedPerson and
   links each to a person (:class:`~gateway.linkage.index.PersonIndex`), and
   relates the child to the adults named with them (the household);
2. records the message's event for the chronology, as a new version when the
   same sender sent the same source record before (the change kept);
3. flags near-identical content from the same sender about the same child
   within :attr:`Settings.duplicate_window_hours` as a possible duplicate
   (both delivered; a person decides);
4. sets deadlines (a referral's decision, an assessment, an Operation
   Encompass notification) and meets them when the answer arrives;
5. evaluates the escalation rules over the child's and household's events
   and, when one fires, records it once, raises a FHIR Flag and sends an
   alert to the home LA (and to the child's school where it already knows).

Nothing here ever refuses a message: linking is about what was accepted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence

from rapidfuzz.distance import Indel
from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from gateway.config import Settings
from gateway.delivery import inbox
from gateway.delivery.models import DeliveryRow
from gateway.delivery.outbox import enqueue_built
from gateway.linkage import deadlines as D
from gateway.linkage import escalation as E
from gateway.linkage.events import Event, event_from_bundle
from gateway.linkage.index import PersonIndex, household
from gateway.linkage.matching import MatchModel, PersonRecord
from gateway.linkage.models import (
    OPEN,
    DeadlineRow,
    EscalationRow,
    MessageEventRow,
    PersonRow,
    PossibleDuplicateRow,
    PossibleMatchRow,
)
from gateway.linkage.records import RECORD_FIELDS, kind_of, people_of
from gateway.model import systems as S
from gateway.routing import bundles as B
from gateway.routing.codes import (
    ENCOMPASS_RULES,
    RULE_ENCOMPASS_SCHOOL,
    RULE_POLICE_NOTICE,
    RULE_REFERRAL,
    RULE_SCHOOL_REFERRAL,
    deadline_rule,
    escalation_rule,
)
from gateway.routing.messages import build_alert_message, build_overdue_message
from gateway.signing.signatures import Signer
from gateway.store.interfaces import AcceptedMessage, UnitOfWork
from gateway.store.models import AcceptedMessageRow, MessagePersonRow

log = logging.getLogger(__name__)

_MP = MessagePersonRow.__table__
_EVENT = MessageEventRow.__table__
_DUP = PossibleDuplicateRow.__table__
_DEADLINE = DeadlineRow.__table__
_ESC = EscalationRow.__table__
_PERSON = PersonRow.__table__
_DELIVERY = DeliveryRow.__table__
_ACCEPTED = AcceptedMessageRow.__table__
_MATCH = PossibleMatchRow.__table__

HOME_LA_RULES = (RULE_SCHOOL_REFERRAL, RULE_POLICE_NOTICE, RULE_REFERRAL)
ACCEPTED_FOR_ASSESSMENT = "accepted-for-assessment"
_ROUTED = select(_DELIVERY.c.destination, _DELIVERY.c.rule, _DELIVERY.c.due_at).where(
    _DELIVERY.c.message_id == bindparam("message_id"))
#: How alike two narratives must be to flag a possible duplicate: :func:`narrative_similarity`, 0-1.
DUPLICATE_SIMILARITY = 0.9
#: Parts of a Bundle that change with every sending, not with the content: left out of version diffs.
_VOLATILE = {"timestamp", "signature", "meta", "id", "identifier", "fullUrl", "authoredOn"}


@dataclasses.dataclass
class Linkage:
    """The person index, chronology, escalation and deadlines of one gateway; see the module docstring."""

    settings: Settings
    signer: Callable[[], Signer]
    model: MatchModel = dataclasses.field(default_factory=MatchModel.load)
    rules: Sequence = dataclasses.field(default_factory=lambda: E.load_rules())

    @property
    def max_age(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.delivery_max_age_seconds)

    # -- the accept step ------------------------------------------------------------------------------------

    def accept_step(self, unit: UnitOfWork, accepted: AcceptedMessage, bundle: dict) -> None:
        """Link ``bundle`` (accepted as ``accepted``) in its accepting transaction; see the module docstring."""
        connection = unit.session.connection()
        now = accepted.received_at
        mid = accepted.message_id
        header = B.message_header(bundle) or {}
        kind = B.event_code(header) or ""
        deliveries = connection.execute(_ROUTED, {"message_id": mid}).all()  # what routing planned, just now
        home_la = self._home_la(unit.session, deliveries, bundle)
        index = PersonIndex(connection, self.model)

        child_person = None
        known = False  # whether any person of this message was linked to someone the index already held
        adults: list[tuple[str, str]] = []
        for values in people_of(bundle):
            role = values["role"]
            is_child = role == "child"
            person_kind = kind_of(role)
            linked = index.add(dict(values, message_id=mid, source=accepted.sender_agency,
                                    source_record=values["record_id"]), PersonRecord(**{f: values[f] for f in RECORD_FIELDS}),
                               kind=person_kind, now=now, home_la=home_la if person_kind == "child" else None)
            known = known or linked.decision == "linked"
            if is_child and child_person is None:
                child_person = linked.person_id
            else:
                adults.append((linked.person_id, role))
        if child_person is not None:
            for adult, role in adults:
                index.relate(child_person, adult, role, mid)

        event = event_from_bundle(bundle, person_id=child_person or "", received_at=now)
        answers = _answers(bundle) if kind == S.EVENT_OUTCOME else None
        source_record = _source_record(bundle)
        previous = self._previous_version(connection, accepted.sender_agency, source_record)
        changes = None
        if previous is not None:
            changes = json.dumps(_changes(_bundle_of(connection, previous.message_id), bundle))
        connection.execute(insert(_EVENT), {
            "message_id": mid, "sender_agency": accepted.sender_agency, "kind": kind or "unknown",
            "child_person_id": child_person, "occurred_at": event.occurred_at, "recorded_at": event.recorded_at,
            "received_at": now, "categories": json.dumps(list(event.categories)), "notice_type": event.notice_type,
            "risk": event.risk, "outcome": event.outcome, "disclosure": event.disclosure,
            "referral": event.referral, "late_days": D.late_submission_days(event), "summary": event.summary,
            "source_record": source_record, "version": previous.version + 1 if previous is not None else 1,
            "previous_message_id": previous.message_id if previous is not None else None, "changes": changes,
            "answers_message_id": answers})

        if child_person is not None and event.is_concern and previous is None:
            self._flag_duplicates(connection, mid, accepted.sender_agency, child_person, source_record, bundle,
                                  now, home_la)
        self._set_deadlines(connection, deliveries, mid, accepted.sender_agency, kind, event, answers, now)
        # A message whose people are all new to the index has no earlier event to make a pattern with.
        if child_person is not None and event.is_concern and known:
            self._escalate(unit, connection, mid, child_person, event, bundle, now, home_la)
        # The inbox entries of its deliveries (made by routing before its event and deadlines were), and of the
        # referral's whose decision deadline it met: built once, as the transaction ends.
        inbox.refresh_at_commit(unit.session, message_ids=[mid, answers] if answers else [mid])

    # -- home LA, versions, duplicates ------------------------------------------------------------------------

    def _home_la(self, session, deliveries: Sequence, bundle: dict) -> str | None:
        """The child's home LA: where routing sent the referral, else the LA of the child's postcode or school."""
        routed = next((d.destination for d in deliveries if d.rule in HOME_LA_RULES), None)
        if routed:
            return routed
        from gateway.routing import Directory

        directory = Directory(session)
        patient = B.child(bundle)
        if patient is None:
            return None
        code = None
        postcode = B.home_postcode(patient)
        if postcode:
            code = directory.la_for_postcode(postcode)
        if code is None:
            school = B.child_school(bundle, patient)
            urn = B.identifier_value(school, S.SCHOOL_URN) if school is not None else None
            sender = S.parse_agency_uri(B.source_endpoint(B.message_header(bundle) or {}) or "")
            if urn is None and sender and sender[0] == "school":
                urn = sender[1]
            code = directory.la_of_school(urn) if urn else None
        la = directory.agency_by_code("la", code) if code else None
        return la.uri if la is not None else None

    def _previous_version(self, connection: Connection, sender: str, source_record: str | None):
        if source_record is None:
            return None
        return connection.execute(select(_EVENT.c.message_id, _EVENT.c.version).where(
            _EVENT.c.sender_agency == sender, _EVENT.c.source_record == source_record)
            .order_by(_EVENT.c.version.desc()).limit(1)).first()

    def _flag_duplicates(self, connection: Connection, mid: str, sender: str, child: str, source_record: str | None,
                         bundle: dict, now: dt.datetime, home_la: str | None) -> None:
        window = dt.timedelta(hours=self.settings.duplicate_window_hours)
        earlier = connection.execute(select(_EVENT.c.message_id, _EVENT.c.categories).where(
            _EVENT.c.sender_agency == sender, _EVENT.c.child_person_id == child, _EVENT.c.message_id != mid,
            _EVENT.c.received_at >= now - window,
            or_(_EVENT.c.source_record.is_(None), _EVENT.c.source_record != (source_record or ""))).limit(20)).all()
        if not earlier:
            return
        categories = _categories(bundle)
        earlier = [row for row in earlier if sorted(json.loads(row.categories)) == categories]
        text = _narrative(bundle) if earlier else ""
        for row in earlier:  # only messages with the same categories have their narratives compared
            similarity = narrative_similarity(text, _narrative(_bundle_of(connection, row.message_id)))
            if similarity >= DUPLICATE_SIMILARITY:
                reason = (f"same sender and child within {self.settings.duplicate_window_hours} h, same "
                          f"categories, narratives {similarity:.0%} alike; both delivered: a person decides")
                connection.execute(insert(_DUP), {
                    "message_id": mid, "duplicate_of": row.message_id, "similarity": round(similarity, 4),
                    "reason": reason, "status": OPEN, "home_la": home_la, "created_at": now})

    # -- deadlines --------------------------------------------------------------------------------------------

    def _set_deadlines(self, connection: Connection, deliveries: Sequence, mid: str, sender: str, kind: str,
                       event: Event, answers: str | None, now: dt.datetime) -> None:
        tz = self.settings.timezone
        for row in deliveries:
            if row.rule in HOME_LA_RULES:
                self._deadline(connection, mid, row.destination, D.DEADLINE_DECISION,
                               D.decision_due(now, timezone=tz), now)
            elif row.rule in ENCOMPASS_RULES and row.due_at is not None:
                self._deadline(connection, mid, row.destination, D.DEADLINE_ENCOMPASS, row.due_at, now)
        if kind == S.EVENT_OUTCOME and answers:
            met = {"met_at": now, "met_by_message_id": mid}
            connection.execute(update(_DEADLINE).where(
                _DEADLINE.c.message_id == answers, _DEADLINE.c.agency == sender,
                _DEADLINE.c.kind == D.DEADLINE_DECISION, _DEADLINE.c.met_at.is_(None)).values(met))
            if event.outcome == ACCEPTED_FOR_ASSESSMENT:
                # Working Together 2023: 45 working days from the point of referral (when the gateway received it).
                referred = connection.execute(select(_ACCEPTED.c.received_at).where(
                    _ACCEPTED.c.message_id == answers)).scalar() or now
                self._deadline(connection, answers, sender, D.DEADLINE_ASSESSMENT,
                               D.assessment_due(referred, timezone=tz), now)
            else:  # a later outcome (after an assessment) completes it
                connection.execute(update(_DEADLINE).where(
                    _DEADLINE.c.message_id == answers, _DEADLINE.c.agency == sender,
                    _DEADLINE.c.kind == D.DEADLINE_ASSESSMENT, _DEADLINE.c.met_at.is_(None)).values(met))

    @staticmethod
    def _deadline(connection: Connection, mid: str, agency: str, kind: str, due: dt.datetime,
                  now: dt.datetime) -> None:
        exists = connection.execute(select(_DEADLINE.c.id).where(
            _DEADLINE.c.message_id == mid, _DEADLINE.c.agency == agency, _DEADLINE.c.kind == kind)).first()
        if exists is None and connection.execute(select(_ACCEPTED.c.message_id).where(
                _ACCEPTED.c.message_id == mid)).first() is not None:
            connection.execute(insert(_DEADLINE), {"message_id": mid, "agency": agency, "kind": kind, "due_at": due,
                                                   "created_at": now})

    def check_deadlines(self, unit: UnitOfWork, now: dt.datetime) -> list[D.Action]:
        """Send what is due about overdue deadlines (alert, then escalation contact); return the actions taken.

        An Operation Encompass notification counts as read when its delivery
        was acknowledged. Each reminder is a signed ``deadline-overdue``
        message through the outbox, in ``unit``'s transaction.
        """
        connection = unit.session.connection()
        from gateway.routing import Directory

        directory = Directory(unit.session)
        # An acknowledged Encompass notification is a met deadline.
        met = []
        for row in connection.execute(select(_DEADLINE.c.id, _DEADLINE.c.message_id, _DELIVERY.c.acknowledged_at).join(
                _DELIVERY, and_(_DELIVERY.c.message_id == _DEADLINE.c.message_id,
                                _DELIVERY.c.destination == _DEADLINE.c.agency,
                                _DELIVERY.c.rule.in_(ENCOMPASS_RULES))).where(
                _DEADLINE.c.kind == D.DEADLINE_ENCOMPASS, _DEADLINE.c.met_at.is_(None),
                _DELIVERY.c.acknowledged_at.is_not(None))).all():
            connection.execute(update(_DEADLINE).where(_DEADLINE.c.id == row.id).values(met_at=row.acknowledged_at))
            met.append(row.message_id)
        inbox.refresh(connection, message_ids=met)
        rows = connection.execute(select(_DEADLINE).where(_DEADLINE.c.met_at.is_(None), _DEADLINE.c.due_at < now,
                                                          _DEADLINE.c.escalated_at.is_(None))).all()
        deadlines = [D.Deadline(id=str(r.id), message_id=r.message_id, agency=r.agency, kind=r.kind,
                                due_at=r.due_at, alerted_at=r.alerted_at) for r in rows]
        actions = D.overdue_actions(deadlines, now, timezone=self.settings.timezone)
        gateway_agency = self.signer().agency
        for action in actions:
            escalating = action.action == D.ALERT_ESCALATION_CONTACT
            agency = directory.agency(action.agency)
            target = agency
            if escalating:
                target = _escalation_contact(directory, agency) or agency
            if target is None:
                log.error("deadline %s: agency %s is not in the directory; nobody to alert", action.deadline_id,
                          action.agency)
                continue
            text = action.reason if not escalating else f"ESCALATION for {action.agency}: {action.reason}"
            message = build_overdue_message(target, deadline_id=action.deadline_id,
                                            about_message_id=action.message_id, text=text, escalation=escalating,
                                            now=now, gateway_agency=gateway_agency)
            enqueue_built(unit, _Plan(target.uri, message, deadline_rule(action.action), text), about=action.message_id,
                          sender=gateway_agency, now=now, signer=self.signer, max_age=self.max_age)
            stamp = {"escalated_at": now} if escalating else {"alerted_at": now}
            connection.execute(update(_DEADLINE).where(_DEADLINE.c.id == int(action.deadline_id)).values(stamp))
        return actions

    # -- escalation -------------------------------------------------------------------------------------------

    def _escalate(self, unit: UnitOfWork, connection: Connection, mid: str, child: str, event: Event, bundle: dict,
                  now: dt.datetime, home_la: str | None) -> None:
        people = household(connection, child)
        events = events_of(connection, people)
        from gateway.routing import Directory

        directory = Directory(unit.session)
        names = {}
        for uri in {e.agency for e in events}:
            agency = directory.agency(uri)
            if agency is not None:
                names[uri] = agency.name
        firings = E.evaluate(self.rules, events, event, now=now, agency_names=names)
        if not firings:
            return
        home = home_la or connection.execute(select(_PERSON.c.home_la).where(_PERSON.c.id == child)).scalar()
        patient = B.child(bundle) or {}
        summaries = {e.message_id: e.summary for e in events}
        gateway_agency = self.signer().agency
        for firing in firings:
            triggers = list(firing.message_ids)
            key = hashlib.sha256("\n".join(sorted(triggers)).encode()).hexdigest()
            if connection.execute(select(_ESC.c.id).where(_ESC.c.rule_id == firing.rule_id,
                                                          _ESC.c.person_id == child,
                                                          _ESC.c.trigger_key == key)).first():
                continue
            la = directory.agency(home) if home else None
            pairs = [(m, summaries.get(m, "")) for m in triggers]
            alert = None
            if la is not None:
                alert = build_alert_message(patient, la, rule_id=firing.rule_id, title=firing.title,
                                            reason=firing.reason, triggers=pairs, now=now,
                                            gateway_agency=gateway_agency)
                enqueue_built(unit, _Plan(la.uri, alert, escalation_rule(firing.rule_id), firing.reason), about=mid,
                              sender=gateway_agency, now=now, signer=self.signer, max_age=self.max_age)
            else:
                log.error("escalation %s about person %s: no home LA is known to alert", firing.rule_id, child)
            for school in self._schools_that_know(connection, people, directory):
                message = build_alert_message(patient, school, rule_id=firing.rule_id, title=firing.title,
                                              reason=f"{firing.title}. The child's home local authority has been "
                                              "alerted; please make sure your designated safeguarding lead knows.",
                                              triggers=pairs, now=now, gateway_agency=gateway_agency,
                                              share_triggers=False)
                enqueue_built(unit, _Plan(school.uri, message, escalation_rule(firing.rule_id), firing.reason),
                              about=mid, sender=gateway_agency, now=now, signer=self.signer, max_age=self.max_age)
            flag = next((e["resource"] for e in (alert or {}).get("entry", ())
                         if e["resource"]["resourceType"] == "Flag"), None) or {
                "resourceType": "Flag", "status": "active", "code": {"text": firing.title},
                "subject": {"reference": f"Patient/{child}"}, "period": {"start": now.isoformat()}}
            connection.execute(insert(_ESC), {
                "rule_id": firing.rule_id, "person_id": child, "message_id": mid, "trigger_key": key,
                "triggers": json.dumps(triggers), "reason": firing.reason, "home_la": home,
                "flag": json.dumps(flag), "raised_at": now})
            log.warning("ESCALATION %s about person %s (home LA %s): %s", firing.rule_id, child, home, firing.reason)

    @staticmethod
    def _schools_that_know(connection: Connection, people: Sequence[str], directory) -> list:
        """Connected schools that already know about the child or household: they sent a message about one of
        them, or received its Operation Encompass notification."""
        messages = select(_MP.c.message_id).where(_MP.c.person_id.in_(list(people)))
        uris = set(connection.execute(select(_EVENT.c.sender_agency).where(
            _EVENT.c.message_id.in_(messages), _EVENT.c.sender_agency.like("urn:x-safeguarding:agency:school:%")))
            .scalars())
        uris |= set(connection.execute(select(_DELIVERY.c.destination).where(
            _DELIVERY.c.message_id.in_(messages), _DELIVERY.c.rule == RULE_ENCOMPASS_SCHOOL)).scalars())
        return [a for a in (directory.agency(uri) for uri in sorted(uris)) if a is not None]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A planned delivery of a message the gateway built (the shape routing's PlannedDelivery has)."""

    destination: str
    message: dict
    rule: str
    reason: str
    due: dt.datetime | None = None



def _escalation_contact(directory, agency):
    if agency is None:
        return None
    contact = getattr(agency, "escalation_contact", None)
    if contact:
        return directory.agency(contact)
    if agency.kind == "school":  # a school's LA hears when the school is late
        code = directory.la_of_school(agency.code)
        return directory.agency_by_code("la", code) if code else None
    return None


def events_of(connection: Connection, people: Sequence[str]) -> list[Event]:
    """Return the events of every message naming one of ``people`` (once each), in chronological order."""
    messages = select(_MP.c.message_id).where(_MP.c.person_id.in_(list(people)), _MP.c.message_id.is_not(None))
    rows = connection.execute(select(_EVENT).where(_EVENT.c.message_id.in_(messages))).all()
    events = [event_of_row(row) for row in rows]
    events.sort(key=lambda e: (e.when, e.recorded_at or e.received_at, e.message_id))
    return events


def event_of_row(row) -> Event:
    """Return the :class:`Event` a ``message_event`` row stores."""
    parsed = S.parse_agency_uri(row.sender_agency)
    return Event(message_id=row.message_id, person_id=row.child_person_id or "", agency=row.sender_agency,
                 agency_kind=parsed[0] if parsed else "", kind=row.kind, occurred_at=row.occurred_at,
                 recorded_at=row.recorded_at, received_at=row.received_at,
                 categories=tuple(json.loads(row.categories or "[]")), notice_type=row.notice_type, risk=row.risk,
                 outcome=row.outcome, disclosure=bool(row.disclosure), referral=bool(row.referral),
                 summary=row.summary or "")


def _bundle_of(connection: Connection, message_id: str) -> dict:
    raw = connection.execute(select(_ACCEPTED.c.raw_message).where(_ACCEPTED.c.message_id == message_id)).scalar()
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _answers(bundle: dict) -> str | None:
    """The referral a referral outcome answers: its Task's input naming the referral message id."""
    for entry in bundle.get("entry") or ():
        resource = (entry or {}).get("resource") or {}
        if resource.get("resourceType") != "Task":
            continue
        for item in resource.get("input") or ():
            ident = (item or {}).get("valueIdentifier") or {}
            if ident.get("system") == S.MESSAGE_ID and ident.get("value"):
                return str(ident["value"])
    return None


def _source_record(bundle: dict) -> str | None:
    """The sender's record this message carries (its ServiceRequest id: the same for every version)."""
    request = B.focus_request(bundle)
    rid = request.get("id") if request is not None else None
    return str(rid)[:255] if rid else None


def narrative_similarity(one: str, other: str) -> float:
    """How alike two narratives are, 0-1: twice their longest common subsequence over their total length
    (rapidfuzz's normalised Indel similarity), or 0 when below :data:`DUPLICATE_SIMILARITY`.

    It is the measure difflib's ``ratio`` estimates (difflib finds at most the common subsequence, so this is
    never lower: a pair it flagged is flagged). difflib took time growing with the square of the narratives'
    length on the accept path (8,000 characters of a hostile pattern: 9 s a comparison, and up to 20 comparisons a
    message); rapidfuzz's bit-parallel algorithm stops below the threshold and took 0.1 s for two 100,000-character
    narratives (the longest a field may be) of the same pattern."""
    return Indel.normalized_similarity(one, other, score_cutoff=DUPLICATE_SIMILARITY)


def _narrative(bundle: dict) -> str:
    request = B.focus_request(bundle) or {}
    notes = [n.get("text") for n in request.get("note") or () if isinstance(n, dict) and n.get("text")]
    return " ".join(" ".join(str(n).split()) for n in notes).casefold()


def _categories(bundle: dict) -> list[str]:
    request = B.focus_request(bundle) or {}
    return sorted({c.get("code") for concept in request.get("category") or () if isinstance(concept, dict)
                   for c in concept.get("coding") or () if isinstance(c, dict)
                   and c.get("system") == S.CONCERN_CATEGORY and c.get("code")})


def _flatten(value, path: str, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _VOLATILE:
                _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _flatten(item, f"{path}[{n}]", out)
    else:
        out[path] = value


def _content(bundle: dict) -> dict:
    """The Bundle's content by resource type and position, without what changes on every sending."""
    out: dict = {}
    counters: dict[str, int] = {}
    for entry in bundle.get("entry") or ():
        resource = (entry or {}).get("resource") or {}
        rtype = resource.get("resourceType") or "?"
        if rtype in ("MessageHeader", "Provenance"):
            continue
        n = counters[rtype] = counters.get(rtype, -1) + 1
        _flatten(resource, f"{rtype}[{n}]", out)
    return out


def _changes(before: dict, after: dict, *, limit: int = 50) -> list[dict]:
    """What changed between two versions of one record: ``path``, ``before``, ``after`` for each (at most ``limit``)."""
    old, new = _content(before), _content(after)
    out = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            out.append({"path": path, "before": old.get(path), "after": new.get(path)})
            if len(out) >= limit:
                break
    return out


def open_counts(connection: Connection) -> dict:
    """Return the open possible matches and duplicates per home LA (for the figures)."""
    matches = dict(connection.execute(select(_MATCH.c.home_la, func.count()).where(_MATCH.c.status == OPEN)
                                      .group_by(_MATCH.c.home_la)).all())
    duplicates = dict(connection.execute(select(_DUP.c.home_la, func.count()).where(_DUP.c.status == OPEN)
                                         .group_by(_DUP.c.home_la)).all())
    return {"matches": matches, "duplicates": duplicates}
