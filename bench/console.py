"""Console benchmark: server time per page beside a static file served the same way, in the same run.

    .venv/bin/python bench/console.py [--inbox 10000] [--events 200] [--requests 200]

Family A's messages go in through the real app (``POST /ingest``, the demo's PKI, the seeded directory);
then the school's referral to Hampshire is copied (accepted message, event, delivery, decision deadline,
the child's record) ``--inbox`` times, each about a child of its own, and ``--events`` more times about
one child, whose chronology then has that many more events; the clock is then set a month on, so every
copy is overdue. Copies are
inserted straight into the tables (set-up, not measured) with fresh ids and times a minute apart.

Each page is then requested ``--requests`` times through the app's WSGI interface (Flask's test client,
the agency of a verified certificate in the environ as the mTLS middleware puts it: no TLS, no sockets),
after a few uncounted warm-up requests: the inbox (first page, earliest due first, 10,000 messages
behind it), the inbox sorted by risk and filtered to the overdue, the referral page (signature verified,
standard's feedback), the chronology (SVG timeline and table) and, as the baseline, a static file of the
console (``/assets/console.css``) served by the same app. Printed per page: p50 and p99 wall
milliseconds, CPU milliseconds per request of this process (``time.process_time``), and p99 as a
multiple of the static file's. The database is SQLite in a temporary folder.

Goal (issue 11): every page p99 under 150 ms and within 5x of the static page. The machine is shared:
compare figures within one run. A page that misses a goal is printed as MISSED and the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select  # noqa: E402

WARM_UP = 5
GOAL_P99_MS, GOAL_RATIO = 150, 5


def _set_up(workdir: Path, inbox: int, events: int):
    from gateway.app import create_app
    from gateway.config import Settings
    from gateway.delivery.models import DeliveryRow
    from gateway.demo import Demo
    from gateway.linkage.models import DeadlineRow, MessageEventRow, PersonRow
    from gateway.routing import Directory
    from gateway.store import open_store, schema
    from gateway.store.models import AcceptedMessageRow, MessagePersonRow
    from gateway.transport.views import CLOCK_KEY
    from tests.web.conftest import HAMPSHIRE, Console

    demo = Demo(workdir / "pki", echo=lambda *a, **k: None)
    demo.make_pki()
    url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
    schema.upgrade(url)
    store = open_store(url)
    Directory(store.engine).load_seed()
    app = create_app(Settings(database_url=url, certs_dir=demo.certs))
    clock = {"now": dt.datetime.now(dt.timezone.utc)}
    app.config.update(**{CLOCK_KEY: lambda: clock["now"]})
    console = Console(app, store, clock)
    console.family_a()

    accepted, event, delivery, deadline, person, record = (
        t.__table__ for t in (AcceptedMessageRow, MessageEventRow, DeliveryRow, DeadlineRow, PersonRow,
                              MessagePersonRow))
    with store.engine.begin() as connection:
        (original,) = connection.execute(select(delivery).where(delivery.c.rule == "school-referral-to-home-la"))
        mid = original.message_id
        rows = {t.name: connection.execute(select(t).where(t.c.message_id == mid)).mappings().first()
                for t in (accepted, event, deadline)}
        child = connection.execute(select(record).where(record.c.message_id == mid, record.c.role == "child")
                                   ).mappings().first()
        delivery_row = dict(connection.execute(select(delivery).where(delivery.c.id == original.id)).mappings().first())
        busy_child = str(uuid.uuid4())
        connection.execute(insert(person), [{"id": busy_child, "kind": "child", "created_at": clock["now"],
                                             "home_la": HAMPSHIRE}])
        for start in range(0, inbox + events, 1000):
            batch = {name: [] for name in ("accepted", "event", "deadline", "delivery", "person", "record")}
            for n in range(start, min(start + 1000, inbox + events)):
                copy_id = f"urn:uuid:{uuid.uuid4()}"
                shift = dt.timedelta(minutes=n)
                child_id = busy_child if n >= inbox else str(uuid.uuid4())
                if n < inbox:
                    batch["person"].append({"id": child_id, "kind": "child", "created_at": clock["now"],
                                            "home_la": HAMPSHIRE})
                batch["accepted"].append({**rows["accepted_message"], "message_id": copy_id,
                                          "received_at": rows["accepted_message"]["received_at"] + shift})
                ev = rows["message_event"]
                batch["event"].append({**ev, "message_id": copy_id, "child_person_id": child_id,
                                       "occurred_at": ev["occurred_at"] - dt.timedelta(days=n),
                                       "received_at": ev["received_at"] + shift,
                                       "risk": ("high", "medium", "standard", None)[n % 4]})
                batch["deadline"].append({k: v for k, v in rows["deadline"].items() if k != "id"} | {
                    "message_id": copy_id, "due_at": rows["deadline"]["due_at"] + shift, "met_at": None})
                batch["delivery"].append({**delivery_row, "id": str(uuid.uuid4()), "message_id": copy_id,
                                          "payload_message_id": copy_id,
                                          "created_at": delivery_row["created_at"] + shift})
                batch["record"].append({k: v for k, v in child.items() if k != "id"} | {
                    "message_id": copy_id, "person_id": child_id})
            for table, name in ((person, "person"), (accepted, "accepted"), (event, "event"), (deadline, "deadline"),
                                (delivery, "delivery"), (record, "record")):
                if batch[name]:
                    connection.execute(insert(table), batch[name])
    # A month on: every copied referral is overdue (the overdue filter then sorts the whole inbox).
    clock["now"] = dt.datetime(2019, 7, 8, 9, 0, tzinfo=dt.timezone.utc)
    return console, mid, busy_child


def _measure(console, path: str, agency: str | None, requests: int) -> dict:
    for _ in range(WARM_UP):
        answer = console.get(path, agency)
        assert answer.status_code == 200, (path, answer.status_code)
        answer.close()
    walls, cpu_start = [], time.process_time()
    for _ in range(requests):
        start = time.perf_counter()
        answer = console.get(path, agency)
        answer.get_data()
        walls.append((time.perf_counter() - start) * 1000)
        answer.close()
    cpu = (time.process_time() - cpu_start) * 1000 / requests
    walls.sort()
    return {"p50": statistics.median(walls), "p99": walls[min(len(walls) - 1, int(len(walls) * 0.99))], "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inbox", type=int, default=10_000, help="messages in Hampshire's inbox")
    parser.add_argument("--events", type=int, default=200, help="events in one child's chronology")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the escalation and SQLite warnings of the set-up
    from gateway.web import assets
    from tests.web.conftest import HAMPSHIRE

    assets.build_assets()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        started = time.perf_counter()
        console, referral, busy_child = _set_up(Path(tmp), args.inbox, args.events)
        print(f"set-up: Family A through the app, then {args.inbox:,} inbox messages and a child with "
              f"{args.events} more events, in {time.perf_counter() - started:.1f} s (not measured)")
        pages = (("static file /assets/console.css (baseline)", "/assets/console.css", None),
                 (f"inbox, {args.inbox:,} messages, earliest due first", "/la/inbox", HAMPSHIRE),
                 ("inbox sorted by risk, overdue only", "/la/inbox?sort=risk&order=desc&status=overdue", HAMPSHIRE),
                 ("referral page", f"/la/messages/{referral}", HAMPSHIRE),
                 (f"chronology, {args.events + 1} events", f"/la/people/{busy_child}/chronology", HAMPSHIRE))
        results = []
        for label, path, agency in pages:
            results.append((label, _measure(console, path, agency, args.requests)))
        base = results[0][1]["p99"]
        print(f"\nserver time per page, {args.requests} requests each (SQLite, in-process WSGI, after "
              f"{WARM_UP} warm-up requests)")
        print(f"{'page':50} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'p99 / static':>13}")
        for label, r in results:
            print(f"{label:50} {r['p50']:8.2f} {r['p99']:8.2f} {r['cpu']:8.2f} {r['p99'] / base:12.1f}x")
        print(f"goal: every page p99 under {GOAL_P99_MS} ms and within {GOAL_RATIO}x of the static page")
        missed = [f"{label}: p99 {r['p99']:.1f} ms, {r['p99'] / base:.1f}x the static page"
                  for label, r in results[1:] if r["p99"] >= GOAL_P99_MS or r["p99"] > GOAL_RATIO * base]
        for line in missed:
            print(f"MISSED {line}")
        console.app.extensions.clear()
        console.store.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
