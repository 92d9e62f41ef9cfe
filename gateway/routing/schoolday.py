"""When the next school day starts: Operation Encompass's deadline.

A school day is a weekday that is not a bank holiday in England and Wales
(``govuk-bank-holidays``, from the data the package ships: no network). The
school day starts at 08:30 local time (Europe/London, so BST or GMT as the
date falls). School term dates are not known to the gateway, so a deadline
may fall in a school holiday: that errs early, never late.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

from govuk_bank_holidays.bank_holidays import BankHolidays

SCHOOL_DAY_START = dt.time(8, 30)
LOCAL_TIMEZONE = "Europe/London"


@functools.lru_cache(maxsize=1)
def _bank_holidays() -> frozenset[dt.date]:
    holidays = BankHolidays(use_cached_holidays=True)
    return frozenset(h["date"] for h in holidays.get_holidays(division=BankHolidays.ENGLAND_AND_WALES))


def is_school_day(day: dt.date) -> bool:
    """Return whether ``day`` is a weekday that is not a bank holiday in England and Wales."""
    return day.weekday() < 5 and day not in _bank_holidays()


def next_school_day_start(now: dt.datetime, *, timezone: str = LOCAL_TIMEZONE,
                          start: dt.time = SCHOOL_DAY_START) -> dt.datetime:
    """Return the start of the next school day after ``now``, aware, in ``timezone``.

    That is ``start`` (08:30) local time on today's date when today is a
    school day and ``now`` is before its start, else on the next school day.
    Raises :class:`ValueError` for a naive ``now``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    day = local.date()
    if not (is_school_day(day) and dt.datetime.combine(day, start, tzinfo=zone) > local):
        day += dt.timedelta(days=1)
        while not is_school_day(day):
            day += dt.timedelta(days=1)
    return dt.datetime.combine(day, start, tzinfo=zone)
