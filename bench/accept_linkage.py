"""Benchmark: what linking costs on the accept path (person index, events, duplicates, deadlines, escalation).

The same fictional school export (``gateway synth --format schoolsafe-csv``,
referrals and concerns) goes through the real app's ``POST /ingest`` twice
in one run, each time into a fresh database at the schema's head with the
scenario's directory:

- **without linkage**: the accept steps are routing and the outbox only (as
  before step 5);
- **with linkage**: the whole accept path as the gateway runs it.

It prints the process CPU per message of each and the difference, which is
what the linkage step adds (its share of the accept path). The figures are
in-process (no TLS, no HTTP server): compare them with each other, and see
``bench/pipeline.py`` for the whole pipeline over mutual TLS.

    .venv/bin/python bench/accept_linkage.py [--records 600] [--batch 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _export(records: int, seed: int) -> bytes:
    from click.testing import CliRunner

    from gateway.cli import main

    result = CliRunner().invoke(main, ["synth", "--format", "schoolsafe-csv", "--count", str(records),
                                       "--seed", str(seed)])
    if result.exit_code != 0:
        raise SystemExit(f"gateway synth failed: {result.output}")
    return result.output.encode("utf-8")


def _batches(export: bytes, size: int) -> list[tuple[str, bytes]]:
    """The export cut into exports of ``size`` records, each of one school (sent by that school)."""
    import csv

    text = export.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, records = rows[0], rows[1:]
    urn = header.index("School URN")
    by_school: dict[str, list[list[str]]] = {}
    for record in records:
        by_school.setdefault(record[urn], []).append(record)
    out = []
    for school, mine in sorted(by_school.items()):
        for i in range(0, len(mine), size):
            buffer = io.StringIO(newline="")
            writer = csv.writer(buffer)
            writer.writerow(header)
            writer.writerows(mine[i:i + size])
            out.append((school, buffer.getvalue().encode("utf-8")))
    return out


def _connect_schools(directory, batches) -> None:
    """Every school of the export is connected (mailbox), in Hampshire with its pupils' postcode districts,
    so that every referral routes as in a deployment."""
    import csv

    from gateway.routing import Agency
    from gateway.routing.interfaces import School
    from gateway.routing.places import normalise_district

    for school, batch in batches:
        if directory.agency_by_code("school", school) is None:
            directory.add_agency(Agency(kind="school", code=school, name=f"Fictional school {school}",
                                        delivery="mailbox"))
            directory.add_school(School(urn=school, name=f"Fictional school {school}", la_code="850"))
        for row in csv.DictReader(io.StringIO(batch.decode("utf-8"), newline="")):
            district = normalise_district(row.get("Home Postcode") or "")
            if district and directory.la_for_postcode(row["Home Postcode"]) is None:
                directory.add_district(district, "850")


def _run(batches: list[bytes], *, linkage: bool, workdir: Path, certs: Path, name: str | None = None,
         **settings) -> dict:
    """One run of the accept path into a fresh database ``workdir/name``; ``settings`` override the gateway's
    (bench/audit.py switches the audit log and encryption at rest)."""
    from gateway.app import create_app
    from gateway.config import Settings
    from gateway.delivery.views import close_store
    from gateway.model import systems as S
    from gateway.routing import Directory
    from gateway.store import open_store, schema
    from gateway.transport.middleware import AGENCY_KEY
    from gateway.transport.views import CLOCK_KEY, STEPS_EXTENSION, close_intake, intake_for

    url = f"sqlite:///{workdir / (name or ('with' if linkage else 'without'))}.sqlite3"
    schema.upgrade(url)
    store = open_store(url)
    directory = Directory(store.engine)
    directory.load_seed()
    _connect_schools(directory, batches)
    app = create_app(Settings(database_url=url, certs_dir=certs, **settings))
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: NOW})
    intake_for(app)
    if not linkage:  # the accept steps as they were before step 5: routing and the outbox
        steps = app.extensions[STEPS_EXTENSION]
        app.extensions[STEPS_EXTENSION] = [s for s in steps if getattr(s, "__name__", "") != "link_accepted_message"]
        assert len(app.extensions[STEPS_EXTENSION]) == len(steps) - 1, "the linkage step was not found"
    client = app.test_client()
    accepted = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for school, batch in batches:
        answer = client.post("/ingest/schoolsafe-csv?concerns=include", data=io.BytesIO(batch),
                             environ_base={AGENCY_KEY: S.agency_uri("school", school)})
        outcome = answer.get_json()
        if answer.status_code != 200:
            raise SystemExit(f"ingest answered {answer.status_code}: {outcome}")
        counts = {e["url"].rsplit("/", 1)[-1]: e.get("valueInteger") for e in outcome["extension"][0]["extension"]}
        accepted += counts.get("accepted", 0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    close_intake(app)
    close_store(app)
    store.close()
    return {"messages": accepted, "cpu_ms": 1000 * cpu / max(accepted, 1), "wall_ms": 1000 * wall / max(accepted, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=600)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each, for the spread")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    import logging

    logging.disable(logging.CRITICAL)
    from gateway.signing import pki

    export = _export(args.records, args.seed)
    batches = _batches(export, args.batch)
    print(f"python {platform.python_version()} on {platform.machine()}; {args.records} school records in "
          f"{len(batches)} exports of at most {args.batch} (one school each); {args.rounds} rounds, alternating")
    results: dict[bool, list[dict]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="accept-linkage-") as tmp:
        root = Path(tmp)
        pki.create_deployment(root / "certs", now=dt.datetime.now(dt.timezone.utc))
        for n in range(args.rounds):
            for linkage in (False, True):
                workdir = root / f"round-{n}"
                workdir.mkdir(exist_ok=True)
                results[linkage].append(_run(batches, linkage=linkage, workdir=workdir, certs=root / "certs"))
    print(f"{'accept path':<22}{'messages':>10}{'CPU ms/msg (median)':>22}{'min-max':>16}{'wall ms/msg':>13}")
    medians = {}
    for linkage, label in ((False, "without linkage"), (True, "with linkage")):
        runs = results[linkage]
        cpu = [r["cpu_ms"] for r in runs]
        medians[linkage] = statistics.median(cpu)
        print(f"{label:<22}{runs[0]['messages']:>10}{medians[linkage]:>22.2f}{min(cpu):>8.2f}-{max(cpu):<7.2f}"
              f"{statistics.median(r['wall_ms'] for r in runs):>13.2f}")
    added = medians[True] - medians[False]
    print(f"linkage adds {added:.2f} ms CPU per message ({added / medians[False]:.0%} of the accept path without it)")


if __name__ == "__main__":
    main()
