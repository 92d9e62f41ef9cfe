"""Deadlines: when each message must have been acted on, what to do when it
has not, and which police notices arrived late.

Pure functions: times are passed in (``now=``), nothing is read from a
clock or stored here; the caller persists deadlines and sends the alerts.
``docs/escalation.md`` ("Deadlines") explains each rule and its source.

Working days are Monday to Friday except bank holidays in England and Wales:
the calendar of :func:`gateway.routing.schoolday.is_school_day` (one copy of
the bank holidays, from the data ``govuk-bank-holidays`` ships), counted in
UK local time.

Working time runs only on working days. A deadline of *n* working days from
an instant on a working day falls at the same local time on the *n*-th
working day after it (received Monday 10:35, one working day: Tuesday
10:35). From an instant on a day that is not a working day, the clock starts
when the next working day starts, so the deadline is the end of the *n*-th
working day counting that one as the first (received Sunday 17:05, one
working day: the end of Monday, returned as the midnight that ends it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.routing.schoolday import LOCAL_TIMEZONE, is_school_day, next_school_day_start
from gateway.validation.checks import DAY, describe_delay

if TYPE_CHECKING:
    from gateway.linkage.events import Event

#: Working Together to Safeguard Children 2023, chapter 3: a local authority decides on a referral
#: within one working day.
DECISION_WORKING_DAYS = 1
#: Working Together to Safeguard Children 2023, chapter 3: an assessment concludes within 45 working
#: days of the referral.
ASSESSMENT_WORKING_DAYS = 45
#: How long a deadline may stay open after the receiving agency was alerted before its escalation
#: contact is told (the default of :func:`overdue_actions`; the deployment's setting overrides it).
ESCALATE_AFTER_WORKING_DAYS = 1

# Deadline kinds (Deadline.kind)
DEADLINE_DECISION = "referral-decision"
DEADLINE_ASSESSMENT = "assessment"
DEADLINE_ENCOMPASS = "operation-encompass"
DEADLINE_LABELS = {
    DEADLINE_DECISION: "Decision on the referral",
    DEADLINE_ASSESSMENT: "Assessment",
    DEADLINE_ENCOMPASS: "Operation Encompass notification",
}

# Action kinds (Action.action)
ALERT_AGENCY = "alert-agency"
ALERT_ESCALATION_CONTACT = "alert-escalation-contact"

#: A police notice submitted more than this after the incident is late: the national standard's
#: threshold for "ppn-submitted-late" (gateway/validation/standard.yaml), defined once in its check.
LATE_AFTER = DAY


def _aware(value: dt.datetime, name: str) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {value!r}")


def is_working_day(day: dt.date) -> bool:
    """Return whether ``day`` is a working day: Monday to Friday and not a bank holiday in England and Wales."""
    return is_school_day(day)


def add_working_days(start: dt.datetime, days: int, *, timezone: str = LOCAL_TIMEZONE) -> dt.datetime:
    """Return the instant ``days`` working days after ``start``, aware, in ``timezone``.

    From a working day: the same local time on the ``days``-th working day
    after it. From any other day: the end of the ``days``-th working day
    counting the next working day as the first (the midnight that ends it).
    Raises :class:`ValueError` for a naive ``start`` or ``days`` < 1.
    """
    _aware(start, "start")
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a whole number of working days, at least 1, not {days!r}")
    zone = ZoneInfo(timezone)
    local = start.astimezone(zone)
    day = local.date()
    if is_working_day(day):
        for _ in range(days):
            day += dt.timedelta(days=1)
            while not is_working_day(day):
                day += dt.timedelta(days=1)
        return dt.datetime.combine(day, local.time(), tzinfo=zone)
    remaining = days
    while True:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
            if remaining == 0:
                return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)


def decision_due(received_at: dt.datetime, *, timezone: str = LOCAL_TIMEZONE) -> dt.datetime:
    """Return when the local authority must have decided on a referral received at ``received_at``.

    Working Together to Safeguard Children 2023: within one working day of
    the referral being received. Received on a working day: the same time
    on the next working day (Friday 10:35: Monday 10:35). Received on a
    weekend or bank holiday: by the end of the next working day (the
    authority has the whole of that day). Raises :class:`ValueError` for a
    naive ``received_at``.
    """
    return add_working_days(received_at, DECISION_WORKING_DAYS, timezone=timezone)


def assessment_due(referred_at: dt.datetime, *, timezone: str = LOCAL_TIMEZONE) -> dt.datetime:
    """Return when an assessment must have concluded: 45 working days after ``referred_at``.

    Working Together to Safeguard Children 2023 counts the 45 working days
    from the point of referral, so pass when the referral was received;
    passing when it was accepted gives the later date some authorities
    track. Raises :class:`ValueError` for a naive ``referred_at``.
    """
    return add_working_days(referred_at, ASSESSMENT_WORKING_DAYS, timezone=timezone)


def encompass_due(received_at: dt.datetime, *, timezone: str = LOCAL_TIMEZONE) -> dt.datetime:
    """Return when an Operation Encompass notification must have been read: the start of the next
    school day after ``received_at`` (routing's rule, :func:`gateway.routing.schoolday.next_school_day_start`).
    Raises :class:`ValueError` for a naive ``received_at``."""
    return next_school_day_start(received_at, timezone=timezone)


# Overdue deadlines ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Deadline:
    """An open or met deadline on one message, for one receiving agency.

    ``met_at`` is when it was met (``None``: open); ``alerted_at`` when the
    agency was told it is overdue; ``escalated_at`` when its escalation
    contact was told.
    """

    id: str
    message_id: str
    agency: str                  # the receiving agency that must act (agency URI)
    kind: str                    # DEADLINE_DECISION, DEADLINE_ASSESSMENT, DEADLINE_ENCOMPASS
    due_at: dt.datetime
    met_at: dt.datetime | None = None
    alerted_at: dt.datetime | None = None
    escalated_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Action:
    """What to do now about an overdue deadline: alert the agency, or its escalation contact."""

    deadline_id: str
    message_id: str
    agency: str                  # the agency that has not acted (its escalation contact, for an escalation)
    action: str                  # ALERT_AGENCY or ALERT_ESCALATION_CONTACT
    deadline_kind: str
    due_at: dt.datetime
    overdue_by: dt.timedelta
    reason: str                  # one line the recipient reads


def overdue_actions(deadlines: Iterable[Deadline], now: dt.datetime, *,
                    escalate_after: int = ESCALATE_AFTER_WORKING_DAYS,
                    timezone: str = LOCAL_TIMEZONE) -> list[Action]:
    """Return what to do now about ``deadlines``, in their order.

    A deadline that is met does nothing. One still open after ``due_at`` and
    never alerted gives :data:`ALERT_AGENCY`; one alerted, still open
    ``escalate_after`` working days after that alert and never escalated
    gives :data:`ALERT_ESCALATION_CONTACT`. At most one action per deadline:
    escalation waits for the alert to have been sent (``alerted_at``), so
    the agency always hears first. Raises :class:`ValueError` for a naive
    time or ``escalate_after`` < 1.
    """
    _aware(now, "now")
    out: list[Action] = []
    for deadline in deadlines:
        _aware(deadline.due_at, f"deadline {deadline.id} due_at")
        if deadline.met_at is not None or now <= deadline.due_at:
            continue
        label = DEADLINE_LABELS.get(deadline.kind, deadline.kind)
        due_local = deadline.due_at.astimezone(ZoneInfo(timezone))
        overdue_by = now - deadline.due_at
        due_text = f"{label} on message {deadline.message_id} was due {due_local:%a %d %b %Y %H:%M}"
        if deadline.alerted_at is None:
            out.append(Action(deadline.id, deadline.message_id, deadline.agency, ALERT_AGENCY, deadline.kind,
                              deadline.due_at, overdue_by, f"{due_text}; it is {describe_delay(overdue_by)} overdue."))
            continue
        _aware(deadline.alerted_at, f"deadline {deadline.id} alerted_at")
        if deadline.escalated_at is None and now >= add_working_days(deadline.alerted_at, escalate_after,
                                                                      timezone=timezone):
            alerted = deadline.alerted_at.astimezone(ZoneInfo(timezone))
            out.append(Action(deadline.id, deadline.message_id, deadline.agency, ALERT_ESCALATION_CONTACT,
                              deadline.kind, deadline.due_at, overdue_by,
                              f"{due_text}; it is {describe_delay(overdue_by)} overdue and still open since "
                              f"{deadline.agency} was alerted on {alerted:%a %d %b %Y %H:%M}."))
    return out


# Late police notices ------------------------------------------------------------------------------
def late_submission(event: Event) -> dt.timedelta | None:
    """Return how long after the incident a police notice reached the gateway, when that is late.

    Late is more than :data:`LATE_AFTER` (24 hours, the national standard's
    ``ppn-submitted-late``) from ``occurred_at`` to ``received_at`` (the
    gateway's own time of receipt, which a sender cannot misstate). Returns
    ``None`` for a notice on time, for an event that is not a police
    referral or concern, and when the incident time is unknown.
    """
    if event.agency_kind != "police" or not event.is_concern or event.occurred_at is None:
        return None
    delay = event.received_at - event.occurred_at
    return delay if delay > LATE_AFTER else None


def late_submission_days(event: Event) -> int | None:
    """Return the whole days after the incident a late police notice arrived (21 for Family A's), or
    ``None`` when it is not late (see :func:`late_submission`)."""
    delay = late_submission(event)
    return delay.days if delay is not None else None


@dataclasses.dataclass(frozen=True)
class LateSubmissions:
    """One sender's police notices: how many, how many late, the longest delay in days (0 when none late)."""

    agency: str
    notices: int
    late: int
    longest_days: int


def late_submissions_by_sender(events: Sequence[Event]) -> dict[str, LateSubmissions]:
    """Return the police notices in ``events`` counted per sending agency, in order of first appearance.

    Each message counts once (a chronology may list a message for each
    child it is about). Notices whose incident time is unknown count as
    notices but never as late.
    """
    seen: set[str] = set()
    counts: dict[str, list[int]] = {}
    for event in events:
        key = event.message_id or str(id(event))
        if event.agency_kind != "police" or not event.is_concern or key in seen:
            continue
        seen.add(key)
        row = counts.setdefault(event.agency, [0, 0, 0])
        row[0] += 1
        days = late_submission_days(event)
        if days is not None:
            row[1] += 1
            row[2] = max(row[2], days)
    return {agency: LateSubmissions(agency, *row) for agency, row in counts.items()}
