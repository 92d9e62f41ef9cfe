"""Load and faults: does a hung or dead receiving endpoint hold up the other agencies, and is anything lost?

    .venv/bin/python bench/faults.py                                  # SQLite, then PostgreSQL
    .venv/bin/python bench/faults.py --backends sqlite --messages 800 --rate 20

Real processes on loopback, set up by bench/pipeline.py's ``Stack``: the
gateway (``gateway serve``, mutual TLS), two outbox workers (``gateway
worker``) and five local authorities' receiving endpoints
(``python -m gateway.delivery.receiver``, which verify every signature and
apply each message id once). A school submits referrals over mTLS at a
steady rate (open loop, many connections), spread evenly over the five LAs
by the child's postcode. Two runs, each on a fresh database and PKI:

* **no faults**: the baseline;
* **faults**, while the messages go in: LA 869's endpoint is replaced by one
  that accepts TCP connections and never answers (at 10% of the messages),
  LA 886's endpoint is stopped (at 25%) and started again (at 60%), and one
  worker is SIGKILLed mid-delivery (at 40%) and started again (at 50%, as
  a supervisor would; its claims come back when their lease runs out). When
  every other LA's message is in, LA 869 answers again.

Then it checks that every accepted message was applied exactly once, at the
LA it was routed to (the endpoints' receipt logs, counted by message id),
that every delivery is acknowledged in the gateway's database, and that
``gateway audit verify`` passes; and it measures, per run, the delivery
latency of the three healthy LAs (936, 938, 845): from the gateway's answer
to the school (the message durably accepted) to the endpoint applying it,
which is what the outbox and its workers add and what a fault could hold
up. It prints beside it the latency from submission, the gateway's answer
times, and CPU milliseconds per message of each process still running at
the end.

Goal (issue 12): the healthy LAs' delivery p99 in the fault run within 2x of the
run without faults. Before the fix a worker round waited for its slowest
delivery, and a hung LA held healthy deliveries up for 10-15 s. The test
tests/load/test_load_faults.py runs this with small numbers and asserts
the goal; this prints the figures with bigger ones (exit status 1 when a
check or the goal fails).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from pipeline import (Stack, cpu_per_message, cpu_seconds, drop_schema, postgres_url, quantiles_ms,  # noqa: E402
                      referral, submit, wait_applied)

from gateway.adapters.synth import fictional  # noqa: E402
from gateway.model import systems as S  # noqa: E402

# Real DfE LA numbers and postcode districts (the directory checks both); the endpoints are the bench's own.
HEALTHY = tuple(S.agency_uri("la", code) for code in ("936", "938", "845"))   # Surrey, West Sussex, East Sussex
FLAKY = S.agency_uri("la", "886")   # Kent: stopped, then started again
HUNG = S.agency_uri("la", "869")    # West Berkshire: accepts connections, never answers; answers again at the end
LAS = dict(zip((*HEALTHY, FLAKY, HUNG), ("GU1", "RH10", "BN20", "CT1", "RG14")))

# Short enough that a killed worker's claims come back, and a hung endpoint's attempts end, within the run.
LEASE_SECONDS, CONNECT_TIMEOUT, READ_TIMEOUT = 10, 1, 4
# Otherwise the defaults: 16 deliveries in flight per worker, 4 per LA.
WORKER_OPTIONS = ("--lease-seconds", str(LEASE_SECONDS), "--connect-timeout-seconds", str(CONNECT_TIMEOUT),
                  "--timeout-seconds", str(READ_TIMEOUT), "--per-destination", "4",
                  "--backoff-base-seconds", "0.5", "--backoff-cap-seconds", "4")
GOAL_RATIO = 2.0


@dataclasses.dataclass
class Run:
    """What one run measured and found."""

    name: str
    submitted: int
    accepted: int
    accepted_per_s: float
    healthy: dict[str, float]             # delivery latency p50/p95/p99 (ms) of the healthy LAs' messages
    healthy_max_ms: float
    others_max_ms: float                  # the slowest delivery to the stopped or hung LA
    end_to_end: dict[str, float]          # healthy LAs, from submission (the gateway's answer included)
    answer: dict[str, float]              # the gateway's answers to the school
    phases: dict[str, float]              # healthy delivery p99 (ms) of the messages submitted in each phase
    redelivered: int                      # messages received twice or more, applied once
    retried: dict[str, int]               # deliveries attempted more than once, by their last failure, and
                                          # failed attempts by kind (the workers' logs)
    problems: list[str]                   # anything lost, applied at the wrong LA, or left open
    cpu_ms_per_message: dict[str, float]
    audit: str                            # what `gateway audit verify` said

    def line(self) -> str:
        h = self.healthy
        return (f"{self.name:9} {self.accepted:>8} {self.accepted_per_s:>7} {h['p50_ms']:>8} {h['p95_ms']:>8} "
                f"{h['p99_ms']:>8} {self.healthy_max_ms:>8} {self.others_max_ms:>9} "
                f"{self.end_to_end['p99_ms']:>9} {self.answer['p99_ms']:>9} {self.redelivered:>7}")


def postcode(district: str, n: int) -> str:
    """The ``n``-th postcode in ``district`` (children spread over streets, as the person index meets them)."""
    letters = fictional.POSTCODE_LETTERS
    return f"{district} {n % 10}{letters[n // 10 % len(letters)]}{letters[n // 200 % len(letters)]}"


def bodies_for(messages: int) -> list[tuple[str, bytes, str]]:
    """``messages`` referrals (id, JSON, the LA they are for), each about a child of its own, round-robin
    over the LAs."""
    now = dt.datetime.now(dt.timezone.utc)
    made = []
    for n in range(messages):
        la = list(LAS)[n % len(LAS)]
        bundle = referral(n, now, postcode(LAS[la], n // len(LAS)), child=n)
        made.append((bundle["identifier"]["value"], json.dumps(bundle).encode(), la))
    return made


# Where the faults start, as a share of the messages submitted; the figures are also given per phase.
PHASES = (("before", 0.0), ("hung", 0.1), ("+ LA down", 0.25), ("+ worker killed", 0.4),
          ("+ worker back", 0.5), ("+ LA back", 0.6))


def phase_of(n: int, messages: int) -> str:
    """The phase (of :data:`PHASES`) in which the ``n``-th of ``messages`` was submitted."""
    return [name for name, share in PHASES if n >= int(messages * share)][-1]


def fault_events(stack: Stack, messages: int) -> dict[int, object]:
    """What happens during the fault run, by the number of the message being submitted."""
    def hang() -> None:
        stack.stop_receiver(HUNG)
        stack.start_receiver(HUNG, hang=True)

    killed = stack.workers[-1]
    at = {name: int(messages * share) for name, share in PHASES}
    return {at["hung"]: hang, at["+ LA down"]: lambda: stack.stop_receiver(FLAKY),
            at["+ worker killed"]: lambda: stack.kill(killed),
            at["+ worker back"]: lambda: stack.start_worker(killed),  # as its supervisor (systemd, Kubernetes) would
            at["+ LA back"]: lambda: stack.start_receiver(FLAKY)}


def run(name: str, workdir: Path, database_url: str, bodies: list[tuple[str, bytes, str]], *, rate: float,
        clients: int, faults: bool, drain_seconds: float = 90.0) -> Run:
    """One run on a fresh stack (see the module docstring); returns its figures and problems."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # The per-agency limit on requests in flight is not what is measured: one school sends everything here.
    stack = Stack(workdir, database_url, las=LAS, env={"GATEWAY_MAX_REQUESTS_PER_AGENCY": str(clients)})
    try:
        stack.start(threads=8, concurrency=16, workers=2, worker_processes=2, worker_options=WORKER_OPTIONS)
        destination = {mid: la for mid, _, la in bodies}
        before = cpu_seconds()
        sent, answers, elapsed = submit(stack, [(mid, body) for mid, body, _ in bodies], rate, clients,
                                        fault_events(stack, len(bodies)) if faults else None)
        if faults:
            # The hung LA answers again once the others' messages are in: its messages must arrive too.
            wait_applied(stack, [mid for mid in sent if destination[mid] != HUNG], timeout=drain_seconds)
            stack.stop_receiver(HUNG)
            stack.start_receiver(HUNG)
        wait_applied(stack, sent, timeout=drain_seconds)
        cpu = cpu_per_message(stack, before, cpu_seconds(), len(sent))
        receipts = {la: stack.receipts_at(la) for la in LAS}
        open_ones, retried = outbox_figures(database_url)
        retried.update(failed_attempts(workdir))
        problems = check_exactly_once(sent, destination, receipts) + open_ones
        audit = audit_verify(stack)
    finally:
        stack.stop()
    # Delivery latency: from the gateway's answer (the message is durably accepted) to the endpoint applying
    # it; what the outbox and its workers add, and what the faults could hold up. (A delivery can beat the
    # answer back to the school: a few are slightly negative.)
    applied = {mid: receipts[destination[mid]][mid][0] for mid in sent if mid in receipts[destination[mid]]}
    healthy = [applied[mid] - answered for mid, (_, answered) in sent.items()
               if destination[mid] in HEALTHY and mid in applied]
    others = [applied[mid] - answered for mid, (_, answered) in sent.items()
              if destination[mid] not in HEALTHY and mid in applied]
    end_to_end = [applied[mid] - start for mid, (start, _) in sent.items()
                  if destination[mid] in HEALTHY and mid in applied]
    by_phase = collections.defaultdict(list)
    for n, (mid, _, la) in enumerate(bodies):
        if la in HEALTHY and mid in applied:
            by_phase[phase_of(n, len(bodies))].append(applied[mid] - sent[mid][1])
    refused = [status for status, _ in answers if status != 200]
    if refused:
        problems.append(f"{len(refused)} submissions were not accepted (HTTP {sorted(set(refused))})")
    return Run(name=name, submitted=len(bodies), accepted=len(sent), accepted_per_s=round(len(sent) / elapsed, 1),
               healthy=quantiles_ms(healthy), healthy_max_ms=round(max(healthy, default=0) * 1000, 1),
               others_max_ms=round(max(others, default=0) * 1000, 1), end_to_end=quantiles_ms(end_to_end),
               answer=quantiles_ms([seconds for _, seconds in answers]),
               phases={name: quantiles_ms(by_phase[name])["p99_ms"] for name, _ in PHASES},
               redelivered=sum(1 for la in LAS for _, n in receipts[la].values() if n > 1), retried=retried,
               problems=problems, cpu_ms_per_message=cpu, audit=audit)


def check_exactly_once(sent: dict[str, float], destination: dict[str, str],
                       receipts: dict[str, dict[str, tuple[float, int]]]) -> list[str]:
    """Every accepted message applied once, at its own LA and no other (an endpoint applies an id at most
    once: its receipt log's key); return what is wrong."""
    problems = []
    lost = [mid for mid in sent if mid not in receipts[destination[mid]]]
    if lost:
        problems.append(f"{len(lost)} accepted messages never applied at their LA, e.g. {lost[:3]}")
    elsewhere = [(mid, la) for la, applied in receipts.items() for mid in applied
                 if mid in destination and destination[mid] != la]
    if elsewhere:
        problems.append(f"{len(elsewhere)} messages applied at another LA, e.g. {elsewhere[:3]}")
    counted = sum(1 for la, applied in receipts.items() for mid in applied if mid in sent)
    if counted != len(sent) - len(lost):
        problems.append(f"{counted} applications of {len(sent) - len(lost)} messages")
    return problems


def outbox_figures(database_url: str) -> tuple[list[str], dict[str, int]]:
    """The push deliveries the gateway has not closed as acknowledged (as problems), and how many deliveries
    needed more than one attempt, by why the last failed one failed (an acknowledgement keeps it)."""
    from sqlalchemy import func, select

    from gateway.delivery.models import ACKNOWLEDGED, PUSH, DeliveryRow
    from gateway.store import open_store

    store = open_store(database_url)
    try:
        with store.transaction() as unit:
            left = dict(unit.session.execute(
                select(DeliveryRow.state, func.count()).where(DeliveryRow.mode == PUSH,
                                                              DeliveryRow.state != ACKNOWLEDGED)
                .group_by(DeliveryRow.state)).all())
            # last_error is encrypted at rest: read, then sort in Python.
            errors = unit.session.scalars(select(DeliveryRow.last_error).where(DeliveryRow.mode == PUSH,
                                                                                DeliveryRow.attempts > 1)).all()
    finally:
        store.close()
    retried = collections.Counter("timed out" if "timed out" in error else "claim lapsed (worker killed)"
                                  if "lapsed" in error else "endpoint down" for error in map(str, errors))
    return ([f"push deliveries not acknowledged: {left}"] if left else []), dict(retried)


def failed_attempts(workdir: Path) -> dict[str, int]:
    """Failed delivery attempts by kind, from the workers' logs (a delivery's last_error keeps only its last)."""
    kinds = collections.Counter()
    for log in workdir.glob("worker*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if " failed (" in line and "attempt" in line:
                kinds["attempts timed out" if "timed out" in line else "attempts refused or cut"
                      if "refused" in line or "connection lost" in line else "attempts failed otherwise"] += 1
    return dict(kinds)


def audit_verify(stack: Stack) -> str:
    """Run ``gateway audit verify`` on the run's database; return its verdict ("passed: ..." or "FAILED: ...")."""
    env = dict(os.environ, **stack.processes.env)
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify"], env=env, capture_output=True,
                          text=True, timeout=300)
    output = (done.stdout + done.stderr).strip().splitlines()
    return ("passed: " if done.returncode == 0 else f"FAILED (exit {done.returncode}): ") + " / ".join(output[-3:])


def compare(baseline: Run, faulty: Run) -> tuple[float, bool]:
    """The healthy LAs' p99 in the fault run over the baseline's, and whether the goal holds."""
    ratio = faulty.healthy["p99_ms"] / max(baseline.healthy["p99_ms"], 1e-9)
    return round(ratio, 2), ratio <= GOAL_RATIO


def report(runs: list[Run], backend: str) -> None:
    print(f"\n{backend}: delivery latency (ms) of the healthy LAs (936, 938, 845), from the gateway's answer to "
          f"the endpoint applying the message;\nother max: the slowest delivery to the stopped or hung LA; "
          f"e2e p99: healthy, from submission; answer p99: the gateway's answers")
    print(f"{'run':9} {'accepted':>8} {'per s':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
          f"{'other max':>9} {'e2e p99':>9} {'answer p99':>9} {'redeliv':>7}")
    for r in runs:
        print(r.line())
    print("healthy delivery p99 (ms) by when the message was submitted: "
          + "; ".join(f"{name}: " + " / ".join(str(r.phases[name]) for r in runs) for name, _ in PHASES))
    for r in runs:
        print(f"{r.name}: retried {r.retried or 'none'}; cpu ms/message {r.cpu_ms_per_message}; "
              f"audit verify {r.audit}; problems: {r.problems or 'none'}")


def both_runs(backend: str, workroot: Path, bodies, *, rate: float, clients: int) -> tuple[Run, Run]:
    """The run without faults, then the run with them, each on a fresh database (SQLite files under
    ``workroot``, or a new PostgreSQL schema) and PKI; returns both."""
    runs = []
    for name, faults in (("no faults", False), ("faults", True)):
        workdir = workroot / f"faults-{backend}-{'on' if faults else 'off'}"
        schema = None
        if backend == "sqlite":
            url = f"sqlite:///{workroot / f'faults-{backend}-{int(faults)}.sqlite3'}"
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        else:
            url, schema = postgres_url()
        try:
            runs.append(run(name, workdir, url, bodies, rate=rate, clients=clients, faults=faults))
        finally:
            if schema:
                drop_schema(schema)
        print(json.dumps({"backend": backend, **dataclasses.asdict(runs[-1])}), flush=True)
    return runs[0], runs[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--messages", type=int, default=1500, help="messages per run")
    # 20/s: what the gateway accepts on 2 shared cores without queueing (50/s saturated it, and the runs then
    # measured the queue, not the faults).
    parser.add_argument("--rate", type=float, default=20.0, help="messages offered per second")
    parser.add_argument("--clients", type=int, default=16, help="client threads (mTLS connections)")
    args = parser.parse_args()
    failed = False
    for backend in args.backends:
        bodies = bodies_for(args.messages)  # made before each backend's clock starts, fresh timestamps
        baseline, faulty = both_runs(backend, ROOT / "var" / "bench", bodies, rate=args.rate, clients=args.clients)
        report([baseline, faulty], backend)
        ratio, met = compare(baseline, faulty)
        print(f"goal: healthy p99 with faults <= {GOAL_RATIO:g}x without: {faulty.healthy['p99_ms']} ms vs "
              f"{baseline.healthy['p99_ms']} ms = {ratio}x ({'met' if met else 'MISSED'})")
        failed |= not met or any(r.problems or not r.audit.startswith("passed") for r in (baseline, faulty))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
