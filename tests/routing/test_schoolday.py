"""The start of the next school day: weekends, bank holidays in England and Wales, BST and GMT."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.routing.schoolday import is_school_day, next_school_day_start

LONDON = ZoneInfo("Europe/London")
UTC = dt.timezone.utc


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=LONDON)


@pytest.mark.parametrize(("received", "due"), [
    # Family A: received Sunday 30 September 2018 -> Monday 1 October 08:30 BST.
    (local(2018, 9, 30, 17, 5), "2018-10-01T08:30:00+01:00"),
    # Friday evening -> Monday.
    (local(2025, 3, 7, 19, 0), "2025-03-10T08:30:00+00:00"),
    # Saturday -> Monday.
    (local(2025, 3, 8, 9, 0), "2025-03-10T08:30:00+00:00"),
    # A weekday afternoon -> tomorrow.
    (local(2025, 3, 11, 14, 0), "2025-03-12T08:30:00+00:00"),
    # Before 08:30 on a school day -> that morning; at 08:30 exactly it has started -> tomorrow.
    (local(2025, 3, 11, 7, 0), "2025-03-11T08:30:00+00:00"),
    (local(2025, 3, 11, 8, 30), "2025-03-12T08:30:00+00:00"),
    # Friday before the early May bank holiday (Monday 6 May 2024) -> Tuesday.
    (local(2024, 5, 3, 18, 0), "2024-05-07T08:30:00+01:00"),
    # Christmas: Friday 22 December 2023 -> Wednesday 27 (25 and 26 are bank holidays).
    (local(2023, 12, 22, 16, 0), "2023-12-27T08:30:00+00:00"),
    # Clocks go back on Sunday 29 October 2023: received in BST, due in GMT.
    (local(2023, 10, 27, 20, 0), "2023-10-30T08:30:00+00:00"),
    # Clocks go forward on Sunday 31 March 2024, inside Easter (Good Friday 29 March,
    # Easter Monday 1 April): received in GMT on Thursday, due in BST on Tuesday.
    (local(2024, 3, 28, 17, 0), "2024-04-02T08:30:00+01:00"),
])
def test_next_school_day_start(received, due):
    assert next_school_day_start(received).isoformat() == due


def test_received_time_is_read_in_london_time_not_utc():
    # 23:30 UTC on Sunday 30 September 2018 is already 00:30 on Monday in London.
    due = next_school_day_start(dt.datetime(2018, 9, 30, 23, 30, tzinfo=UTC))
    assert due == dt.datetime(2018, 10, 1, 7, 30, tzinfo=UTC)
    assert due.tzinfo == LONDON


def test_a_bank_holiday_only_in_scotland_is_a_school_day_in_england():
    # 2 January 2024 is a bank holiday in Scotland, not in England and Wales.
    assert is_school_day(dt.date(2024, 1, 2))
    assert not is_school_day(dt.date(2024, 1, 1))


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        next_school_day_start(dt.datetime(2025, 3, 11, 14, 0))
