"""Layouts of the chronology's timeline and the late-submission chart."""

from __future__ import annotations

from gateway.web.console import pictures

SCHOOL, POLICE = "urn:x-safeguarding:agency:school:1", "urn:x-safeguarding:agency:police:X"


def _event(agency, occurred, **extra):
    return {"agency": agency, "occurred_at": occurred, "recorded_at": None, "received_at": occurred,
            "kind_display": "Safeguarding referral", **extra}


def test_timeline_has_a_lane_per_agency_and_marks_in_time_order():
    events = [_event(POLICE, "2018-09-09T03:00:00+01:00", late_days=21),
              _event(SCHOOL, "2019-03-14T09:00:00+00:00"),
              _event(SCHOOL, "2019-06-07T08:50:00+01:00", deadlines=[{"late": True}])]
    layout = pictures.timeline(events, [{"raised_at": "2019-03-14T12:00:00+00:00", "rule_id": "r"}],
                               {POLICE: "Dorset Police"})
    assert [lane["label"] for lane in layout["lanes"]] == ["Dorset Police", SCHOOL]
    xs = [m["x"] for m in layout["marks"]]
    assert xs == sorted(xs) and layout["plot"]["left"] <= xs[0] and xs[-1] <= layout["plot"]["right"]
    assert [m["late"] for m in layout["marks"]] == [True, False, True]
    assert layout["marks"][0]["y"] != layout["marks"][1]["y"] == layout["marks"][2]["y"]
    (escalation,) = layout["escalations"]
    assert xs[1] < escalation["x"] < xs[2]
    assert "sent 21 days late" in layout["marks"][0]["title"] and len(layout["ticks"]) == 6


def test_timeline_without_dated_events_draws_no_marks():
    layout = pictures.timeline([{"agency": SCHOOL, "occurred_at": None, "recorded_at": None, "received_at": None}],
                               [], {})
    assert layout["marks"] == [] and layout["lanes"] == [] and layout["height"] > 0


def test_one_event_gets_a_day_of_room():
    layout = pictures.timeline([_event(SCHOOL, "2019-06-07T08:50:00+01:00")], [], {})
    (mark,) = layout["marks"]
    assert layout["plot"]["left"] < mark["x"] < layout["plot"]["right"]


def test_bar_chart_scales_to_the_largest_month():
    chart = pictures.bar_chart([{"month": "2018-09", "sent": 4, "late": 1}, {"month": "2018-10", "sent": 2, "late": 2}])
    first, second = chart["bars"]
    assert first["sent_width"] == 2 * second["sent_width"] == 4 * first["late_width"]
    assert second["late_width"] == second["sent_width"] and second["value"] == "2 late of 2"
    assert (first["label"], second["label"]) == ("Sep 2018", "Oct 2018")
    assert pictures.bar_chart([])["bars"] == []


def test_months_are_named_in_english_whatever_the_host():
    import datetime as dt

    for month in range(1, 13):
        key = f"2019-{month:02d}"
        assert pictures.month_name(key) == dt.date(2019, month, 1).strftime("%B %Y")
        assert pictures.month_name(key, short=True) == dt.date(2019, month, 1).strftime("%b %Y")


def test_dates_in_the_timeline_read_as_strftime_writes_them_in_english():
    import datetime as dt

    for month in range(1, 13):
        when = dt.datetime(2019, month, 7, 9, 30, tzinfo=dt.timezone.utc)
        layout = pictures.timeline([_event(SCHOOL, when.isoformat())],
                                   [{"raised_at": when.isoformat(), "rule_id": "r"}], {})
        assert layout["marks"][0]["title"] == f"{when:%d %b %Y}: Safeguarding referral"  # the C locale's names
        assert layout["escalations"][0]["title"] == f"{when:%d %b %Y}: escalation r"
        english = {f"{dt.datetime(2019, m, 1):%b}" for m in range(1, 13)}
        assert len(layout["ticks"]) == 6
        assert all(tick["label"].split(" ")[0] in english and tick["label"].split(" ")[1].isdigit()
                   for tick in layout["ticks"]), layout["ticks"]


def test_the_timeline_writes_its_dates_in_the_zone_it_is_given():
    """Half past midnight in London on 7 June is 6 June in UTC: the marks say the day the page's table says,
    and the zone moves no mark."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    events = [_event(SCHOOL, "2019-06-06T23:30:00+00:00"), _event(SCHOOL, "2019-01-31T23:30:00+00:00")]
    escalations = [{"raised_at": "2019-06-06T23:45:00+00:00", "rule_id": "r"}]
    london = pictures.timeline(events, escalations, {}, zone=ZoneInfo("Europe/London"))
    utc = pictures.timeline(events, escalations, {})
    assert [m["title"] for m in london["marks"]] == ["07 Jun 2019: Safeguarding referral",
                                                     "31 Jan 2019: Safeguarding referral"]  # GMT in winter
    assert [m["title"] for m in utc["marks"]] == ["06 Jun 2019: Safeguarding referral",
                                                  "31 Jan 2019: Safeguarding referral"]
    assert london["escalations"][0]["title"] == "07 Jun 2019: escalation r"
    assert [m["x"] for m in london["marks"]] == [m["x"] for m in utc["marks"]]
    assert [t["x"] for t in london["ticks"]] == [t["x"] for t in utc["ticks"]]


def test_the_timelines_months_are_those_of_its_zone():
    """Two events 120 days apart put the first tick 7 days after the first (the plot's 3% margins): here at
    20:00 UTC on 31 January, already 1 February at UTC+14."""
    from zoneinfo import ZoneInfo

    events = [_event(SCHOOL, "2019-01-24T20:00:00+00:00"), _event(SCHOOL, "2019-05-24T20:00:00+00:00")]
    utc = pictures.timeline(events, [], {})
    east = pictures.timeline(events, [], {}, zone=ZoneInfo("Pacific/Kiritimati"))
    assert utc["ticks"][0]["label"] == "Jan 2019" and east["ticks"][0]["label"] == "Feb 2019"
    assert [t["x"] for t in east["ticks"]] == [t["x"] for t in utc["ticks"]]
