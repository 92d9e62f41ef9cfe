"""Layouts of the console's pictures (SVG drawn by the templates): the chronology's timeline and the
late-submission chart. Pure functions over plain data; the pages also show the same data as tables."""

from __future__ import annotations

import datetime as dt

from gateway.model.english import MONTHS

TIMELINE_WIDTH = 960
LANE_HEIGHT = 48
LABEL_WIDTH = 200
TOP, BOTTOM, RIGHT = 24, 40, 24


def month_name(key: str, *, short: bool = False) -> str:
    """'2018-09' (a month as the figures key it) -> 'September 2018', or with ``short`` 'Sep 2018'."""
    year, month = key.split("-")
    name = MONTHS[int(month) - 1]
    return f"{name[:3] if short else name} {year}"


def _day(when: dt.datetime) -> str:
    """'07 Jun 2019': English whatever the host's locale (strftime's %b is the locale's), at a quarter of its cost."""
    return f"{when.day:02d} {MONTHS[when.month - 1][:3]} {when.year}"


def _instant(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, str) and value:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    return None


def event_time(event: dict) -> dt.datetime | None:
    """When an event happened, else when it was recorded, else when the gateway received it."""
    return _instant(event.get("occurred_at")) or _instant(event.get("recorded_at")) or \
        _instant(event.get("received_at"))


def timeline(events: list[dict], escalations: list[dict], lane_names: dict[str, str],
             zone: dt.tzinfo = dt.timezone.utc) -> dict:
    """Return the timeline's layout: one lane per agency (in order of first event), one mark per event at
    when it happened (late ones marked), a mark per escalation at when it was raised, and about six ticks.

    ``lane_names`` maps agency URIs to the names shown. The marks' dates and the ticks' months are those of
    ``zone`` (the gateway's timezone, as the page's table writes its times). Returns ``width``, ``height``, ``lanes``
    (label, y), ``marks`` (x, y, late, title), ``escalations`` (x, y, title), ``ticks`` (x, label) and
    ``plot`` (left, right, bottom); no marks when there are no dated events.
    """
    lanes: dict[str, int] = {}
    dated = []
    for event in events:
        when = event_time(event)
        if when is None:
            continue
        lanes.setdefault(event["agency"], len(lanes))
        dated.append((when, event))
    raised = [(_instant(e.get("raised_at")), e) for e in escalations if _instant(e.get("raised_at"))]
    height = TOP + max(1, len(lanes)) * LANE_HEIGHT + BOTTOM
    left, right, bottom = LABEL_WIDTH, TIMELINE_WIDTH - RIGHT, TOP + max(1, len(lanes)) * LANE_HEIGHT
    layout = {"width": TIMELINE_WIDTH, "height": height, "plot": {"left": left, "right": right, "bottom": bottom},
              "lanes": [{"label": lane_names.get(a, a), "y": TOP + i * LANE_HEIGHT + LANE_HEIGHT // 2}
                        for a, i in lanes.items()],
              "marks": [], "escalations": [], "ticks": []}
    times = [w for w, _ in dated] + [w for w, _ in raised]
    if not times:
        return layout
    start, end = min(times), max(times)
    span = max((end - start).total_seconds(), 86400.0)
    start -= dt.timedelta(seconds=span * 0.03)
    span *= 1.06

    def x(when: dt.datetime) -> float:
        return round(left + (when - start).total_seconds() / span * (right - left), 1)

    for when, event in dated:
        late = bool(event.get("late_days")) or any(d.get("late") for d in event.get("deadlines") or ())
        layout["marks"].append({"x": x(when), "y": TOP + lanes[event["agency"]] * LANE_HEIGHT + LANE_HEIGHT // 2,
                                "late": late,
                                "title": f"{_day(when.astimezone(zone))}: {event.get('kind_display')}"
                                         + (f" (sent {event['late_days']} days late)" if event.get("late_days")
                                            else "")})
    for when, escalation in raised:
        layout["escalations"].append({"x": x(when), "y": TOP + 6,
                                      "title": f"{_day(when.astimezone(zone))}: escalation "
                                               f"{escalation.get('rule_id')}"})
    for n in range(6):
        when = start + dt.timedelta(seconds=span * (n + 0.5) / 6)
        local = when.astimezone(zone)
        layout["ticks"].append({"x": x(when), "label": f"{MONTHS[local.month - 1][:3]} {local.year}"})
    return layout


def bar_chart(rows: list[dict], *, width: int = 640, bar_height: int = 22) -> dict:
    """Return a horizontal bar chart's layout of ``rows`` (``month``, ``sent``, ``late``): per row a label,
    the bar of all sent and, over it, the bar of late ones, scaled to the largest ``sent``."""
    label_width, value_width = 90, 120
    top = 8
    scale = max([r["sent"] for r in rows] or [1]) or 1
    usable = width - label_width - value_width
    bars = []
    for n, row in enumerate(rows):
        y = top + n * (bar_height + 8)
        bars.append({"label": month_name(row["month"], short=True), "y": y, "text_y": y + bar_height - 6,
                     "sent_width": round(usable * row["sent"] / scale, 1),
                     "late_width": round(usable * row["late"] / scale, 1),
                     "value": f"{row['late']} late of {row['sent']}", "value_x": label_width + usable + 8})
    return {"width": width, "height": top + len(rows) * (bar_height + 8) + 8, "bar_height": bar_height,
            "left": label_width, "bars": bars}
