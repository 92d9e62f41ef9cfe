"""Dates and times in words (gateway.model.english): English whatever the host, in the zone asked for."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.model import english

LONDON = ZoneInfo("Europe/London")


def test_days_and_months_read_as_strftime_writes_them_in_the_c_locale():
    for month in range(1, 13):
        for day in (1, 2, 3, 4, 5, 6, 7):
            when = dt.datetime(2019, month, day, 9, 5)
            assert english.day(when) == f"{when:%a} {day} {when:%b %Y}"
            assert english.MONTHS[month - 1] == f"{when:%B}"
    assert english.clock(dt.datetime(2019, 6, 7, 9, 5)) == "09:05"


def test_when_is_written_in_the_zone_it_is_given():
    """Half past eleven UTC on 30 September is half past midnight on 1 October in London (summer time), and
    the same in January is half past eleven (GMT); a naive value is UTC."""
    assert english.when(dt.datetime(2018, 9, 30, 23, 30, tzinfo=dt.timezone.utc), LONDON) == "Mon 1 Oct 2018, 00:30"
    assert english.when(dt.datetime(2019, 1, 30, 23, 30, tzinfo=dt.timezone.utc), LONDON) == "Wed 30 Jan 2019, 23:30"
    assert english.when(dt.datetime(2018, 9, 30, 23, 30), LONDON) == "Mon 1 Oct 2018, 00:30"


@pytest.mark.parametrize(("value", "words"), [
    ("2018-09-09T03:00:00+01:00", "on Sun 9 Sep 2018 at 03:00"),
    ("2018-09-09T02:00:00Z", "on Sun 9 Sep 2018 at 03:00"),               # UTC, in London's summer time
    ("2018-09-08T23:30:00-02:00", "on Sun 9 Sep 2018 at 02:30"),          # another offset: the day moves
    ("2018-12-09T03:00:00.250+00:00", "on Sun 9 Dec 2018 at 03:00"),      # fractions of a second
    ("2018-09-09", "on Sun 9 Sep 2018"),
    ("2018-09", "in September 2018"),
    ("2018", "in 2018"),
    (" 2018-09-09 ", "on Sun 9 Sep 2018"),
])
def test_a_fhir_datetime_is_written_as_precisely_as_it_is(value, words):
    assert english.fhir_when(value, LONDON) == words


@pytest.mark.parametrize("value", ["", "yesterday", "2018-13", "2018-02-30", "2018-09-09T25:00:00Z", "20180909",
                                   "2018-9-9", "T", "12345", "2018-00",
                                   "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])  # no year 0 or 10000
def test_text_that_is_no_fhir_datetime_has_no_words(value):
    assert english.fhir_when(value, LONDON) is None
