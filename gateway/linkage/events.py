"""Events: one thing an agency recorded or sent about a child, as the
chronology and the escalation rules see it.

The chronology builds an :class:`Event` from every stored message about a
child or their household (:func:`event_from_bundle` reads a translated FHIR
message Bundle); :mod:`gateway.linkage.escalation` reasons over them and
:mod:`gateway.linkage.deadlines` counts late police notices from them.
Reading a Bundle never raises: a part that is missing or of the wrong shape
gives ``None`` or an empty value, so a malformed message still has its place
in the chronology.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from gateway.linkage import deadlines
from gateway.model import systems as S
from gateway.model.terminology import CONCERN_CATEGORIES, MESSAGE_EVENTS
from gateway.routing import bundles as B
from gateway.routing.codes import REFERRAL_DECISION, REFERRAL_DECISIONS
from gateway.validation.checks import MessageView, first_value, instant_bounds

#: The message events an agency sends about a child's welfare (a police notice is a referral).
CONCERN_EVENTS = (S.EVENT_REFERRAL, S.EVENT_CONCERN)
#: DASH levels as :attr:`Event.risk` carries them (the PPN's ``Standard``/``Medium``/``High``, lower case).
DASH_LEVELS = ("standard", "medium", "high")

_AGENCY_LABEL = {"school": "School", "police": "Police", "la": "Local authority", "gateway": "Gateway"}
_EXTRA_EVENT_LABEL = {S.EVENT_ALERT: "Safeguarding alert", S.EVENT_OVERDUE: "Deadline overdue"}


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing an agency recorded or sent about a child, as the chronology and the rules see it."""

    message_id: str
    person_id: str               # the person (child or household member) this event is about
    agency: str                  # sender agency URI (urn:x-safeguarding:agency:<kind>:<code>)
    agency_kind: str             # "school" | "police" | "la" | "gateway" | ...
    kind: str                    # message event code (gateway.model.systems EVENT_*)
    occurred_at: dt.datetime | None   # when it happened (aware)
    recorded_at: dt.datetime | None   # when the source recorded it
    received_at: dt.datetime          # when the gateway received it
    categories: tuple[str, ...] = ()  # concern-category codes (e.g. "domestic-abuse", "neglect")
    notice_type: str | None = None    # police PPN notice type ("DomesticAbuse", "ChildConcern", ...), None otherwise
    risk: str | None = None           # DASH level "standard"/"medium"/"high", or a school risk rating code
    outcome: str | None = None        # referral-outcome decision (gateway.routing.codes.REFERRAL_DECISIONS)
    disclosure: bool = False          # the child disclosed (school records)
    referral: bool = False            # a referral (not just a recorded concern)
    summary: str = ""

    @property
    def when(self) -> dt.datetime:
        """The time the rules reason about: ``occurred_at``, else ``recorded_at``, else ``received_at``."""
        return self.occurred_at or self.recorded_at or self.received_at

    @property
    def is_concern(self) -> bool:
        """True for a referral or a concern an agency sent (police notices included), not for the
        gateway's own messages (Encompass notifications, alerts) or outcomes."""
        return self.kind in CONCERN_EVENTS


# Reading a Bundle ------------------------------------------------------------------------------
#: The instants an event keeps: a day inside the calendar's ends, so that any time zone can write them (the year
#: 1's first hour at +14:00 is the year 0 in UTC, which neither Python nor the store can hold).
_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc)


def _instant(value) -> dt.datetime | None:
    """The earliest instant a FHIR date/dateTime can mean (a date alone: 00:00 UK time), or ``None`` (also for one
    at the calendar's very ends: the message keeps it as sent, the event does not)."""
    try:
        bounds = instant_bounds(value)
        if not bounds or not _EARLIEST <= bounds[0] <= _LATEST:
            return None
    except (ValueError, OverflowError):  # a date at the end of the calendar
        return None
    return bounds[0]


def _codings(concept) -> list[dict]:
    coding = concept.get("coding") if isinstance(concept, dict) else None
    return [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []


def _codes(concepts, system: str) -> list[str]:
    concepts = concepts if isinstance(concepts, list) else [concepts]
    out: list[str] = []
    for concept in concepts:
        for c in _codings(concept):
            code = c.get("code")
            if c.get("system") == system and isinstance(code, str) and code and code not in out:
                out.append(code)
    return out


def _risk(view: MessageView) -> tuple[str | None, bool]:
    """Return (the DASH level, else the school's rating, else ``None``; whether a DASH record is present)."""
    dash = view.observations(S.RISK_KIND, "dash")
    for _, obs in dash:
        levels = _codes(obs.get("valueCodeableConcept"), S.DASH_LEVEL)
        if levels:
            return levels[0].lower(), True
    for _, obs in view.observations(S.RISK_KIND, "school-rating"):
        ratings = _codes(obs.get("valueCodeableConcept"), S.RISK_RATING)
        if ratings:
            return ratings[0], bool(dash)
    return None, bool(dash)


def _focus(view: MessageView, resource_type: str) -> dict:
    header = view.header[1] if view.header else {}
    focus = header.get("focus")
    for ref in focus if isinstance(focus, list) else ():
        found = view.resolve(ref, resource_type)
        if found:
            return found[1]
    found = view.by_type.get(resource_type) or []
    return found[0][1] if found else {}


def _label(code: str) -> str:
    """``DomesticAbuse`` -> ``domestic abuse``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code).lower()


def event_from_bundle(bundle: dict, *, person_id: str, received_at: dt.datetime) -> Event:
    """Return the :class:`Event` a translated FHIR message Bundle records about ``person_id``.

    Reads the MessageHeader's event code and sender (``source.endpoint``);
    for a referral or concern, the focus ServiceRequest's concern categories,
    PPN notice type, event-occurred extension (``occurred_at``), authoredOn
    (``recorded_at``), disclosure (the extension, or the ``disclosure``
    concern-context category) and the DASH level (an Observation coded
    risk-kind ``dash``; else the school's own rating); for a referral
    outcome, the focus Task's businessStatus and authoredOn; for other
    messages, the focus resource's ``sent``/``authoredOn``, else
    ``Bundle.timestamp``. ``summary`` is one line for the chronology.
    Never raises on a malformed Bundle: a missing or mis-shaped part gives
    ``None`` or an empty value (``message_id``, ``agency``, ``kind`` ``""``).
    """
    bundle = bundle if isinstance(bundle, dict) else {}
    view = MessageView(bundle, now=received_at)
    header = view.header[1] if view.header else {}
    kind = B.event_code(header) or ""
    agency = B.source_endpoint(header) or ""
    parsed = S.parse_agency_uri(agency)
    agency_kind = parsed[0] if parsed else (view.sender_kind or "")
    fields: dict = {"message_id": B.message_id(bundle) or "", "person_id": person_id, "agency": agency,
                    "agency_kind": agency_kind, "kind": kind, "received_at": received_at,
                    "occurred_at": None, "recorded_at": None}
    dash_recorded = False
    if kind == S.EVENT_OUTCOME:
        task = _focus(view, "Task")
        decisions = _codes(task.get("businessStatus"), REFERRAL_DECISION)
        fields["outcome"] = decisions[0] if decisions else None
        fields["recorded_at"] = _instant(task.get("authoredOn")) or _instant(task.get("lastModified"))
    elif kind in CONCERN_EVENTS or (view.service_request and kind not in MESSAGE_EVENTS):
        sr = view.sr
        categories = sr.get("category")
        notice_types = _codes(categories, S.NOTICE_TYPE)
        fields.update(
            occurred_at=_instant(first_value(view.sr_ext, S.EXT_OCCURRED)),
            recorded_at=_instant(sr.get("authoredOn")),
            categories=tuple(_codes(categories, S.CONCERN_CATEGORY)),
            notice_type=notice_types[0] if notice_types else None,
            disclosure=first_value(view.sr_ext, S.EXT_DISCLOSURE) is True
            or "disclosure" in _codes(categories, S.CONCERN_CONTEXT),
            referral=kind == S.EVENT_REFERRAL,
        )
        fields["risk"], dash_recorded = _risk(view)
    else:
        focus = _focus(view, "Communication") or _focus(view, "Task")
        fields["recorded_at"] = _instant(focus.get("sent")) or _instant(focus.get("authoredOn"))
    if fields["recorded_at"] is None and kind not in CONCERN_EVENTS:
        fields["recorded_at"] = _instant(bundle.get("timestamp"))
    event = Event(**fields)
    return dataclasses.replace(event, summary=_summary(event, dash_recorded))


def _summary(event: Event, dash_recorded: bool) -> str:
    """One line for the chronology, e.g. ``Police notice (domestic abuse), DASH not completed,
    submitted 21 days after the incident`` or ``School concern: disclosure (domestic abuse)``."""
    if event.kind == S.EVENT_OUTCOME:
        display = REFERRAL_DECISIONS.get(event.outcome or "", (None,))[0]
        return f"Referral outcome: {display.lower()}" if display else "Referral outcome (decision not readable)"
    if not event.is_concern:
        return _EXTRA_EVENT_LABEL.get(event.kind) or MESSAGE_EVENTS.get(event.kind, (None,))[0] \
            or f"Message ({event.kind or 'event not readable'})"
    categories = ", ".join(CONCERN_CATEGORIES[c][0].lower() if c in CONCERN_CATEGORIES else c
                           for c in event.categories)
    about = f" ({categories})" if categories else ""
    head = f"{_AGENCY_LABEL.get(event.agency_kind, 'Agency')} {'referral' if event.referral else 'concern'}"
    if event.agency_kind == "police":
        parts = [f"Police notice ({_label(event.notice_type)})" if event.notice_type else head + about]
        if event.risk in DASH_LEVELS:
            parts.append(f"DASH {event.risk}")
        elif dash_recorded:
            parts.append("DASH not completed")
        elif event.notice_type == "DomesticAbuse":
            parts.append("no DASH")
        late = deadlines.late_submission_days(event)
        if late is not None:
            parts.append(f"submitted {late} day{'s' if late != 1 else ''} after the incident")
        return ", ".join(parts)
    if event.disclosure:
        return f"{head}: disclosure{about}"
    return head + about
