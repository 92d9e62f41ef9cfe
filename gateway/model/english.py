"""Dates and times as people read them, in English: the console's pages and the text of the messages the
gateway writes for people (an Operation Encompass notification).

From tables, not ``strftime`` (whose ``%a``, ``%b`` and ``%B`` are the host locale's): English whatever
the host, and one way of writing a time wherever the gateway writes one.
"""

from __future__ import annotations

import datetime as dt

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def day(value: dt.date) -> str:
    """'Fri 7 Jun 2019' (the day of a datetime as it is, in its own zone)."""
    return f"{DAYS[value.weekday()]} {value.day} {MONTHS[value.month - 1][:3]} {value.year}"


def clock(value: dt.datetime) -> str:
    """'10:35' (24-hour, as it is, in its own zone)."""
    return f"{value.hour:02d}:{value.minute:02d}"


def local(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """``value`` in ``zone`` (a naive value is taken as UTC). Raises OverflowError for a moment the zone cannot
    hold (the calendar's first or last hours)."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).astimezone(zone)


def when(value: dt.datetime, zone: dt.tzinfo) -> str:
    """'Fri 7 Jun 2019, 10:35' in ``zone`` (a naive value is taken as UTC)."""
    moment = local(value, zone)
    return f"{day(moment)}, {clock(moment)}"


def fhir_when(value: str, zone: dt.tzinfo) -> str | None:
    """A FHIR ``dateTime`` in words, as precise as it is: 'on Sun 9 Sep 2018 at 03:00' (a time, in ``zone``),
    'on Sun 9 Sep 2018' (a date), 'in September 2018' (a month), 'in 2018' (a year). None for text that is
    none of these."""
    value = value.strip()
    try:
        if "T" in value:
            moment = local(dt.datetime.fromisoformat(value.replace("Z", "+00:00")), zone)
            return f"on {day(moment)} at {clock(moment)}"
        if len(value) == 10:
            return f"on {day(dt.date.fromisoformat(value))}"
        if len(value) == 7 and value[4] == "-" and value[:4].isdigit() and value[5:].isdigit() \
                and 1 <= int(value[5:]) <= 12:
            return f"in {MONTHS[int(value[5:]) - 1]} {value[:4]}"
        if len(value) == 4 and value.isdigit():
            return f"in {value}"
    except (ValueError, OverflowError):  # not a date, or a moment at the calendar's ends that the zone cannot hold
        return None
    return None
