"""Benchmark: what the audit log and encryption at rest add to the accept path, and verifying 1,000,000 records.

Part 1, the accept path: the same fictional school exports go through the
real app's ``POST /ingest`` (set-up and run shared with
``bench/accept_linkage.py``: the whole accept path with linking) into a fresh
SQLite database each time, with ``audit_log`` and ``encrypt_at_rest`` each
off and on, in alternating rounds in one run. It prints the process CPU per
message of each and what each adds to the baseline (both off). Goal: the two
together add at most 15%.

Part 2, verify: a chain of ``--records`` audit records (1,000,000 by default)
is appended through the audit log's own append in batches (the bench's
set-up: the accept path would take hours to write them), with a checkpoint
signed by the gateway's key every 100,000; then ``gateway audit verify``
runs as an operator would run it, as its own process, and its wall time and
CPU are printed. Goal: under 60 s.

    .venv/bin/python bench/audit.py [--records-per-round 600] [--rounds 3] [--verify-records 1000000]
                                    [--backends sqlite postgres] [--part accept|verify]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(REPO), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from accept_linkage import _batches, _export, _run  # noqa: E402  (one set-up of the accept path)

GOAL_OVERHEAD = 0.15
GOAL_VERIFY_SECONDS = 60.0
CHECKPOINT_EVERY = 100_000


def _encryption_available() -> bool:
    from gateway.config import Settings

    return any(field.name == "encrypt_at_rest" for field in dataclasses.fields(Settings))


def _audit_records(workdir: Path, name: str) -> int:
    import sqlite3

    with sqlite3.connect(workdir / f"{name}.sqlite3") as connection:
        return connection.execute("SELECT count(*) FROM audit_event").fetchone()[0]


def accept_part(args) -> bool:
    from gateway.signing import pki

    encryption = _encryption_available()
    configs = [(audit, enc) for audit in ("off", "on") for enc in (("off", "on") if encryption else (None,))]
    export = _export(args.records_per_round, args.seed)
    batches = _batches(export, args.batch)
    print(f"python {platform.python_version()} on {platform.machine()}; accept path: {args.records_per_round} school "
          f"records in {len(batches)} exports, {args.rounds} rounds alternating "
          f"{len(configs)} configurations (linking on)")
    if not encryption:
        print("encrypt_at_rest is not a setting of this gateway yet: audit log on/off only")
    results: dict[tuple, list[dict]] = {config: [] for config in configs}
    per_message: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        pki.create_deployment(root / "certs", now=dt.datetime.now(dt.timezone.utc))
        (root / "warm-up").mkdir()
        _run(batches, linkage=True, workdir=root / "warm-up", certs=root / "certs")  # imports, caches: not counted
        for n in range(args.rounds):
            for audit, enc in configs:
                workdir = root / f"round-{n}"
                workdir.mkdir(exist_ok=True)
                name = f"audit-{audit}-enc-{enc}"
                settings = {"audit_log": audit} | ({"encrypt_at_rest": enc} if enc is not None else {})
                run = _run(batches, linkage=True, workdir=workdir, certs=root / "certs", name=name, **settings)
                results[(audit, enc)].append(run)
                per_message[(audit, enc)] = _audit_records(workdir, name) / max(run["messages"], 1)
    from gateway.audit import configure
    from gateway.config import Settings

    configure(Settings())  # the process's switch back to on

    def label(config) -> str:
        audit, enc = config
        return f"audit {audit}" + ("" if enc is None else f", encryption {enc}")

    print(f"{'accept path':<30}{'messages':>10}{'CPU ms/msg (median)':>22}{'min-max':>16}{'wall ms/msg':>13}"
          f"{'audit rec/msg':>15}")
    medians = {}
    for config in configs:
        runs = results[config]
        cpu = [r["cpu_ms"] for r in runs]
        medians[config] = statistics.median(cpu)
        print(f"{label(config):<30}{runs[0]['messages']:>10}{medians[config]:>22.2f}{min(cpu):>8.2f}-{max(cpu):<7.2f}"
              f"{statistics.median(r['wall_ms'] for r in runs):>13.2f}{per_message[config]:>15.1f}")
    base = medians[configs[0]]
    for config in configs[1:]:
        added = medians[config] - base
        print(f"{label(config)} adds {added:+.2f} ms CPU per message ({added / base:+.1%} of the baseline, "
              f"{label(configs[0])})")
    both = medians[configs[-1]]
    overhead = (both - base) / base
    met = overhead <= GOAL_OVERHEAD
    what = "audit log and encryption together" if encryption else "audit log"
    print(f"goal: {what} add at most {GOAL_OVERHEAD:.0%}: {overhead:+.1%} -> {'met' if met else 'MISSED'}")
    return met


def _build_chain(url: str, records: int, certs: Path, batch: int = 20_000) -> None:
    """Append ``records`` records through the chain's own append, a checkpoint every CHECKPOINT_EVERY."""
    from gateway.audit import chain
    from gateway.audit.checkpoints import write_checkpoint
    from gateway.signing import pki
    from gateway.signing.signatures import Signer
    from gateway.store.engine import make_engine

    signer = Signer.from_files(certs / pki.GATEWAY_CERT, certs / pki.GATEWAY_KEY)
    engine = make_engine(url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    subtypes = ("submission", "validation", "routing", "delivery-attempt", "read")
    try:
        done = 0
        while done < records:
            rows = []
            for n in range(done, min(done + batch, records)):
                at = chain.format_recorded(start + dt.timedelta(milliseconds=n))
                subtype = subtypes[n % len(subtypes)]
                entities = [["message", f"urn:uuid:00000000-0000-4000-8000-{n:012d}"]]
                detail = {"n": n % 7}
                canonical = chain.canonical_record(recorded=at, action="C", subtype=subtype, outcome="success",
                                                   agent="urn:x-safeguarding:agency:school:999101",
                                                   entities=entities, detail=detail)
                rows.append(({"recorded_at": dt.datetime.fromisoformat(at), "action": "C", "subtype": subtype,
                              "outcome": "success", "agent": "urn:x-safeguarding:agency:school:999101",
                              "entities": f'[["message","urn:uuid:00000000-0000-4000-8000-{n:012d}"]]',
                              "detail": f'{{"n":{n % 7}}}'}, canonical))
            with engine.begin() as connection:
                chain._append(connection, rows)
                done += len(rows)
                if done % CHECKPOINT_EVERY == 0 or done == records:
                    write_checkpoint(connection, signer, now=dt.datetime.now(dt.timezone.utc))
    finally:
        engine.dispose()


def _verify(url: str, certs: Path) -> tuple[float, float, str]:
    """Run ``gateway audit verify`` as its own process; return (wall s, CPU s, its last line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify", "--database", url, "--certs",
                           str(certs)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"gateway audit verify exited {done.returncode}: {done.stdout}{done.stderr}")
    return wall, cpu, done.stdout.strip().splitlines()[0]


def verify_part(args) -> bool:
    from gateway.signing import pki
    from gateway.store import schema

    print(f"\nverify: {args.verify_records:,} audit records, a signed checkpoint every {CHECKPOINT_EVERY:,}; "
          f"`gateway audit verify` as its own process")
    print(f"{'backend':<12}{'build s':>10}{'verify wall s':>15}{'verify CPU s':>14}{'records/s':>12}   output")
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-audit-verify-") as tmp:
        root = Path(tmp)
        pki.create_deployment(root / "certs", now=dt.datetime.now(dt.timezone.utc))
        for backend in args.backends:
            schema_name = None
            if backend == "postgres":
                from pipeline import postgres_url

                url, schema_name = postgres_url()
            else:
                url = f"sqlite:///{root / 'audit.sqlite3'}"
            try:
                schema.upgrade(url)
                started = time.perf_counter()
                _build_chain(url, args.verify_records, root / "certs")
                built = time.perf_counter() - started
                wall, cpu, line = _verify(url, root / "certs")
            finally:
                if schema_name is not None:
                    from pipeline import drop_schema

                    drop_schema(schema_name)
            met = met and wall < GOAL_VERIFY_SECONDS
            print(f"{backend:<12}{built:>10.1f}{wall:>15.1f}{cpu:>14.1f}{args.verify_records / wall:>12,.0f}   {line}")
    print(f"goal: verify {args.verify_records:,} records in under {GOAL_VERIFY_SECONDS:.0f} s: "
          f"{'met' if met else 'MISSED'}")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records-per-round", type=int, default=600)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each configuration")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verify-records", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgres"], choices=["sqlite", "postgres"],
                        help="where the verify part builds its chain")
    parser.add_argument("--part", choices=["accept", "verify"], help="run one part only")
    args = parser.parse_args()

    import logging

    logging.disable(logging.CRITICAL)
    ok = True
    if args.part in (None, "accept"):
        ok = accept_part(args) and ok
    if args.part in (None, "verify"):
        ok = verify_part(args) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
