"""Deadlines in working days (England and Wales bank holidays), overdue alerts and late police notices.

Expected dates are counted by hand on the calendar, with the count in the comment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.linkage.deadlines import (
    ALERT_AGENCY,
    ALERT_ESCALATION_CONTACT,
    DEADLINE_DECISION,
    DEADLINE_ENCOMPASS,
    Deadline,
    add_working_days,
    assessment_due,
    decision_due,
    encompass_due,
    is_working_day,
    late_submission,
    late_submission_days,
    late_submissions_by_sender,
    overdue_actions,
)
from gateway.linkage.events import Event
from gateway.model import systems as S

UK = ZoneInfo("Europe/London")
UTC = dt.timezone.utc
HAMPSHIRE = "urn:x-safeguarding:agency:la:850"
DORSET = "urn:x-safeguarding:agency:police:DOR"
HAMPSHIRE_POLICE = "urn:x-safeguarding:agency:police:HAM"


def uk(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UK)


# Working days ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("day, working", [
    (dt.date(2018, 12, 24), True),    # Christmas Eve: a Monday, not a bank holiday
    (dt.date(2018, 12, 25), False),   # Christmas Day
    (dt.date(2018, 12, 26), False),   # Boxing Day
    (dt.date(2019, 1, 1), False),     # New Year's Day
    (dt.date(2019, 4, 19), False),    # Good Friday
    (dt.date(2019, 4, 22), False),    # Easter Monday
    (dt.date(2019, 4, 23), True),
    (dt.date(2018, 9, 30), False),    # a Sunday
])
def test_working_days(day, working):
    assert is_working_day(day) is working


def test_decision_due_same_time_next_working_day():
    assert decision_due(uk(2018, 10, 1, 10, 35)) == uk(2018, 10, 2, 10, 35)


def test_decision_due_friday_over_the_weekend():
    assert decision_due(uk(2018, 10, 5, 10, 35)) == uk(2018, 10, 8, 10, 35)


def test_decision_due_sunday_receipt_is_end_of_monday():
    # Family A: Dorset Police's notices reach the gateway on Sunday 30 September 2018, 17:05 BST.
    due = decision_due(dt.datetime(2018, 9, 30, 16, 5, tzinfo=UTC))
    assert due == uk(2018, 10, 2, 0, 0)  # the midnight that ends Monday 1 October
    assert due.astimezone(UTC) == dt.datetime(2018, 10, 1, 23, 0, tzinfo=UTC)


def test_decision_due_saturday_before_bank_holiday_monday():
    # Saturday 20 April 2019 (Easter): Sunday and Easter Monday are not working days; Tuesday is.
    assert decision_due(uk(2019, 4, 20, 11, 0)) == uk(2019, 4, 24, 0, 0)


def test_decision_due_over_christmas():
    # Monday 24 December 2018 is a working day; 25 and 26 are bank holidays.
    assert decision_due(uk(2018, 12, 24, 10, 35)) == uk(2018, 12, 27, 10, 35)
    # Received on Christmas Day: the whole of Thursday 27 December.
    assert decision_due(uk(2018, 12, 25, 9, 0)) == uk(2018, 12, 28, 0, 0)


def test_decision_due_over_easter():
    # Thursday 18 April 2019, then Good Friday, the weekend and Easter Monday.
    assert decision_due(uk(2019, 4, 18, 15, 0)) == uk(2019, 4, 23, 15, 0)


def test_decision_due_keeps_local_time_across_the_clock_change():
    # Friday 25 October 2019 10:35 BST; clocks go back on Sunday 27th; Monday 10:35 is GMT.
    due = decision_due(uk(2019, 10, 25, 10, 35))
    assert due == uk(2019, 10, 28, 10, 35)
    assert due.astimezone(UTC).hour == 10 and uk(2019, 10, 25, 10, 35).astimezone(UTC).hour == 9


def test_assessment_due_45_working_days_across_christmas():
    # From Monday 3 December 2018 10:00. December: 4-7 (4), 10-14 (9), 17-21 (14), 24 (15),
    # 27-28 (17), 31 (18); January: 2-4 (21), 7-11 (26), 14-18 (31), 21-25 (36), 28-31 (40);
    # February: 1 (41), 4-7 (45): Thursday 7 February 2019.
    assert assessment_due(uk(2018, 12, 3, 10, 0)) == uk(2019, 2, 7, 10, 0)


def test_add_working_days_rejects_bad_input():
    with pytest.raises(ValueError, match="aware"):
        add_working_days(dt.datetime(2018, 10, 1, 10, 0), 1)
    with pytest.raises(ValueError, match="at least 1"):
        add_working_days(uk(2018, 10, 1, 10, 0), 0)


def test_encompass_due_is_routing_rule():
    # Sunday evening: before 08:30 on Monday 1 October.
    assert encompass_due(dt.datetime(2018, 9, 30, 16, 5, tzinfo=UTC)) == uk(2018, 10, 1, 8, 30)


# Overdue deadlines --------------------------------------------------------------------------------
def referral_deadline(**changes) -> Deadline:
    fields = dict(id="d1", message_id="urn:uuid:m1", agency=HAMPSHIRE, kind=DEADLINE_DECISION,
                  due_at=uk(2018, 10, 2, 0, 0))
    fields.update(changes)
    return Deadline(**fields)


def test_not_yet_due_does_nothing():
    assert overdue_actions([referral_deadline()], uk(2018, 10, 1, 23, 59)) == []
    assert overdue_actions([referral_deadline()], uk(2018, 10, 2, 0, 0)) == []


def test_overdue_then_alert_then_escalation():
    deadline = referral_deadline()
    now = uk(2018, 10, 2, 9, 0)
    [alert] = overdue_actions([deadline], now)
    assert (alert.action, alert.agency, alert.deadline_id, alert.message_id) == (ALERT_AGENCY, HAMPSHIRE, "d1",
                                                                                 "urn:uuid:m1")
    assert alert.overdue_by == dt.timedelta(hours=9)
    assert alert.reason == ("Decision on the referral on message urn:uuid:m1 was due Tue 02 Oct 2018 00:00; "
                            "it is 9 hours overdue.")

    # The caller sent the alert at 09:00: nothing more until one working day later.
    alerted = dataclasses.replace(deadline, alerted_at=now)
    assert overdue_actions([alerted], uk(2018, 10, 3, 8, 59)) == []
    [escalation] = overdue_actions([alerted], uk(2018, 10, 3, 9, 0))
    assert escalation.action == ALERT_ESCALATION_CONTACT
    assert "still open since urn:x-safeguarding:agency:la:850 was alerted on Tue 02 Oct 2018 09:00" in escalation.reason

    # Escalated: nothing more, however late.
    escalated = dataclasses.replace(alerted, escalated_at=uk(2018, 10, 3, 9, 0))
    assert overdue_actions([escalated], uk(2018, 12, 1, 9, 0)) == []


def test_escalation_counts_working_days():
    # Alerted on Friday 09:00: the escalation contact hears on Monday 09:00, not Saturday.
    alerted = referral_deadline(due_at=uk(2018, 10, 4, 0, 0), alerted_at=uk(2018, 10, 5, 9, 0))
    assert overdue_actions([alerted], uk(2018, 10, 7, 23, 0)) == []
    [escalation] = overdue_actions([alerted], uk(2018, 10, 8, 9, 0))
    assert escalation.action == ALERT_ESCALATION_CONTACT
    # A longer setting waits longer.
    assert overdue_actions([alerted], uk(2018, 10, 8, 9, 0), escalate_after=2) == []


def test_met_deadline_never_alerts():
    met_late = referral_deadline(met_at=uk(2018, 10, 2, 8, 0))
    met_after_alert = referral_deadline(met_at=uk(2018, 10, 3, 8, 0), alerted_at=uk(2018, 10, 2, 1, 0))
    assert overdue_actions([met_late, met_after_alert], uk(2019, 1, 1, 12, 0)) == []


def test_one_action_per_deadline_in_order():
    # Long overdue and never alerted: the agency hears first, its escalation contact later.
    deadlines = [referral_deadline(id="a"), referral_deadline(id="b", kind=DEADLINE_ENCOMPASS,
                                                              agency="urn:x-safeguarding:agency:school:999101")]
    actions = overdue_actions(deadlines, uk(2018, 11, 1, 9, 0))
    assert [(a.deadline_id, a.action) for a in actions] == [("a", ALERT_AGENCY), ("b", ALERT_AGENCY)]
    assert actions[1].reason.startswith("Operation Encompass notification on message")


def test_overdue_actions_reject_naive_now():
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        overdue_actions([referral_deadline()], dt.datetime(2018, 10, 3))


# Late police notices ----------------------------------------------------------------------------------
def notice(message_id: str, agency: str, occurred: dt.datetime | None, received: dt.datetime,
           kind: str = S.EVENT_REFERRAL, agency_kind: str = "police") -> Event:
    return Event(message_id=message_id, person_id="p", agency=agency, agency_kind=agency_kind, kind=kind,
                 occurred_at=occurred, recorded_at=None, received_at=received, notice_type="DomesticAbuse")


def test_family_a_notice_is_21_days_late():
    event = notice("m1", DORSET, uk(2018, 9, 9, 3, 0), dt.datetime(2018, 9, 30, 16, 5, tzinfo=UTC))
    assert late_submission_days(event) == 21
    assert late_submission(event) == dt.timedelta(days=21, hours=14, minutes=5)


def test_late_threshold_is_the_standards_24_hours():
    occurred = uk(2019, 3, 1, 10, 0)
    assert late_submission(notice("m", DORSET, occurred, occurred + dt.timedelta(hours=24))) is None
    assert late_submission_days(notice("m", DORSET, occurred, occurred + dt.timedelta(hours=24, minutes=1))) == 1


def test_lateness_only_for_police_notices_with_an_incident_time():
    occurred, received = uk(2019, 3, 1, 10, 0), uk(2019, 3, 20, 10, 0)
    assert late_submission_days(notice("m", "urn:x-safeguarding:agency:school:999101", occurred, received,
                                       agency_kind="school")) is None
    assert late_submission_days(notice("m", DORSET, occurred, received, kind=S.EVENT_OUTCOME)) is None
    assert late_submission_days(notice("m", DORSET, None, received)) is None


def test_late_submissions_counted_per_sender():
    received = dt.datetime(2018, 9, 30, 16, 5, tzinfo=UTC)
    events = [
        notice("mia", DORSET, uk(2018, 9, 9, 3, 0), received),
        notice("leo", DORSET, uk(2018, 9, 9, 3, 0), received),
        notice("leo", DORSET, uk(2018, 9, 9, 3, 0), received),   # the same message in a sibling's chronology
        notice("ok", DORSET, uk(2018, 9, 30, 1, 0), received),
        notice("h1", HAMPSHIRE_POLICE, uk(2018, 9, 25, 3, 0), received),
        notice("h2", HAMPSHIRE_POLICE, None, received),
        notice("s1", "urn:x-safeguarding:agency:school:999101", uk(2018, 9, 1, 3, 0), received, agency_kind="school"),
    ]
    counts = late_submissions_by_sender(events)
    assert list(counts) == [DORSET, HAMPSHIRE_POLICE]
    assert (counts[DORSET].notices, counts[DORSET].late, counts[DORSET].longest_days) == (3, 2, 21)
    assert (counts[HAMPSHIRE_POLICE].notices, counts[HAMPSHIRE_POLICE].late,
            counts[HAMPSHIRE_POLICE].longest_days) == (2, 1, 5)
