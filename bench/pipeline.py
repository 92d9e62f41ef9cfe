"""Pipeline benchmark: messages accepted per second and submission-to-acknowledgement latency over mTLS.

    .venv/bin/python bench/pipeline.py                   # SQLite and PostgreSQL
    .venv/bin/python bench/pipeline.py --backends sqlite --step-seconds 4

It starts real processes on loopback, as a deployment would run them: the
gateway (``gateway serve``, gunicorn gthread, mutual TLS), its outbox worker
(``gateway worker``) and a receiving LA endpoint that verifies every
signature and applies each message once. A school client then submits
complete referral messages to ``POST /fhir/$process-message`` at rising
open-loop rates until the gateway saturates (each about a child of its own;
``--one-child``: all about one child, the person index's worst case; the
per-agency limit on requests in flight is raised to the client's
connections, since one school sends everything), and measures:

* accepted/s: 200 answers (the message, its routing and its deliveries are
  durably stored when the answer is sent); the figure at saturation is the
  most any step accepted (an overloaded step can accept fewer);
* latency p50/p95/p99 from submission to the receiving endpoint applying the
  message (its receipt log), i.e. through the outbox, the worker and mTLS;
* the ceiling: a trivial endpoint (``GET /connection-check``) on the same
  server and TLS set-up, at the same client concurrency, in the same run.
* half load: half the saturating rate, measured once the machine is quiet
  again after the saturation steps (their aftermath, such as PostgreSQL's
  autovacuum and checkpoints, is not steady state; the wait is printed as
  ``quiet_after_s``).

* CPU milliseconds per message of each process (the client, the gateway,
  the worker, the endpoint, PostgreSQL), from /proc, so the figures say
  where the time goes.

The endpoint stands in for an agency's own system, which never runs on the
gateway's host; on this machine it shares the cores, at the gateway's
priority by default. ``--endpoint-nice N`` lowers its priority: it then
takes less of the gateway's CPU at saturation, but waits for CPU itself, and
each worker round waits for it. On 2026-11-22, same code, three runs at
niceness 10 gave 262-304 accepted/s and a p99 at half load of 51-124 ms;
two at 0 gave 299 and 318/s, and 66 and 61 ms.

Goal (from the issue): accepted/s at saturation at least 30% of the ceiling,
and p99 under 100 ms at half the saturating load. The machine has 2 cores,
shared by the client, the gateway, the worker, the endpoint and the
database: figures are for comparison within one run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.demo.processes import Processes, free_port, wait_listening  # noqa: E402
from gateway.model import build_bundle  # noqa: E402
from gateway.model import systems as S  # noqa: E402

SCHOOL, HAMPSHIRE, GATEWAY = (S.agency_uri("school", "999101"), S.agency_uri("la", "850"),
                              S.agency_uri("gateway", "national"))
WORKER_STARTED = " started (concurrency "  # in the line `gateway worker` logs once it is ready to deliver
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def referral_record(n: int, record_id: str | None = None, postcode: str = "SP10 1AA",
                    child: int | None = None) -> dict:
    """The translated record of a complete, fictional school referral, unique per ``n`` (and ``record_id``);
    the child lives at ``postcode`` (its district routes the referral to the child's home LA). Every
    referral is about one child, unless ``child`` numbers one of many (its own name, birth date and UPN)."""
    record = {
        "format": "bench", "mapping_version": "1", "kind": "referral",
        "source": {"file": "bench", "location": f"message {n}", "record_id": record_id or f"{uuid.uuid4()}"},
        "sender": {"kind": "school", "code": "999101", "name": "Riverside Infant School"},
        "referrer": {"name": "Sam Tully", "role": "Designated Safeguarding Lead", "phone": "01632 960001"},
        "child": {"given": ["Ada"], "family": "Testchild", "birth_date": "2014-03-04", "gender": "female",
                  "upn": "K850210117001", "address": {"lines": ["1 Example Road"], "town": "Andover",
                                                      "postcode": postcode}},
        "people": [{"given": ["Bea"], "family": "Testchild", "relationship": {"code": "MTH", "display": "mother"},
                    "parental_responsibility": True, "lives_with_child": True}],
        "concern": {"local_id": n, "narrative": "Fictional benchmark narrative. " * 20,
                    "categories": [{"label": "Neglect", "mapped": True, "code": "neglect", "display": "Neglect"}],
                    "occurred": "2026-11-20T09:00:00+00:00", "recorded": "2026-11-20T10:00:00+00:00",
                    "child_voice": "I am hungry", "child_spoken_to": True, "parents_informed": "yes",
                    "action_taken": "DSL spoke to the child.", "requested_action": "Assessment"},
    }
    if child is not None:
        from gateway.adapters.synth import fictional

        rng = random.Random(child)
        family = f"{rng.choice(fictional.SURNAMES)}-{rng.choice(fictional.SURNAMES)}"
        record["child"].update(given=[rng.choice(fictional.CHILD_FIRST_NAMES)], family=family,
                               birth_date=(dt.date(2010, 1, 1) + dt.timedelta(days=child % 3650)).isoformat(),
                               upn=fictional.upn(rng, "850", 2020))
        record["people"][0]["family"] = family
    return record


def referral(n: int, now: dt.datetime, postcode: str = "SP10 1AA", child: int | None = None) -> dict:
    """A complete, fictional school referral message (about 8 KB), unique per ``n``, about a child living
    at ``postcode`` (see :func:`referral_record` for ``child``)."""
    return build_bundle(referral_record(n, postcode=postcode, child=child), now=now)


class Stack:
    """The gateway, its outbox workers and the LAs' receiving endpoints for one backend, with a fresh database.

    ``las`` maps each receiving LA's URI to the postcode district its
    children live in (a referral about a child there is routed to it);
    by default Hampshire alone. ``env``: more ``GATEWAY_*`` settings for
    the processes. The load-and-faults test and bench
    (bench/faults.py) start several, and stop, restart, hang and kill them.
    """

    def __init__(self, workdir: Path, database_url: str, endpoint_nice: int = 0,
                 las: dict[str, str] | None = None, env: dict[str, str] | None = None):
        from gateway.signing import pki

        self.workdir, self.database_url, self.endpoint_nice = workdir, database_url, endpoint_nice
        self.las = dict(las or {HAMPSHIRE: "SP10"})
        self.certs = workdir / "certs"
        now = dt.datetime.now(dt.timezone.utc)
        ca = pki.create_deployment(self.certs, now=now)
        self.identities = {}
        for uri in (SCHOOL, *self.las):
            kind, code = S.parse_agency_uri(uri)
            cert, key = ca.issue(kind=kind, code=code, name=uri, now=now, days=30, hosts=("127.0.0.1",))
            prefix = workdir / "agencies" / f"{kind}-{code}"
            prefix.parent.mkdir(parents=True, exist_ok=True)
            pki.write_issued(prefix, cert, key)
            self.identities[uri] = prefix
        self.gateway_port = free_port()
        self.receiver_ports = {uri: free_port() for uri in self.las}
        # The first LA's endpoint keeps the single-endpoint names (the pipeline bench's figures and files).
        first = next(iter(self.las))
        self.receiver_port, self.receipts = self.receiver_ports[first], workdir / "receipts.sqlite3"
        self.receipts_of = {uri: self.receipts if uri == first else workdir / f"receipts-{S.parse_agency_uri(uri)[1]}"
                            f".sqlite3" for uri in self.las}
        self.workers: list[str] = []
        self.processes = Processes(workdir, {"GATEWAY_DATABASE_URL": database_url,
                                             "GATEWAY_CERTS_DIR": str(self.certs), **(env or {})})

    def start(self, threads: int, concurrency: int, workers: int = 1, *, worker_processes: int = 1,
              worker_options: tuple[str, ...] = ()) -> None:
        """Start the endpoints, the gateway (``workers`` processes of ``threads`` threads) and
        ``worker_processes`` outbox workers (``concurrency`` each, then ``worker_options``)."""
        from gateway.routing import Agency, Directory
        from gateway.store import open_store, schema

        schema.upgrade(self.database_url)
        store = open_store(self.database_url)
        try:
            directory = Directory(store.engine)
            directory.load_seed()
            for uri, district in self.las.items():
                code = S.parse_agency_uri(uri)[1]
                name = "Hampshire (bench endpoint)" if uri == HAMPSHIRE else f"LA {code} (bench endpoint)"
                directory.add_agency(Agency(kind="la", code=code, name=name, delivery="push",
                                            endpoint=f"https://127.0.0.1:{self.receiver_ports[uri]}/fhir/"
                                                     f"$process-message"))
                directory.add_district(district, code)
        finally:
            store.close()
        for uri in self.las:
            self.start_receiver(uri)
        gateway = self.processes.start("gateway", self.processes.gateway_command(
            "serve", "--certs", str(self.certs), "--port", str(self.gateway_port), "--threads", str(threads),
            "--workers", str(workers), "--no-access-log"))
        wait_listening(self.gateway_port, process=gateway, name="gateway")
        # One LA by default: its cap on deliveries in flight is the worker's concurrency.
        self.worker_command = ["worker", "--certs", str(self.certs), "--concurrency", str(concurrency),
                               "--poll-seconds", "0.02", "--keep-alive", "--backoff-base-seconds", "0.2",
                               "--backoff-cap-seconds", "1", "--per-destination", str(concurrency), *worker_options]
        for n in range(worker_processes):
            self.start_worker("worker" if n == 0 else f"worker-{n + 1}")

    def start_worker(self, name: str, timeout: float = 60.0) -> None:
        """Start (or start again) the outbox worker ``name`` and wait until it says it started (its log)."""
        log = self.workdir / f"{name}.log"
        started = log.read_text().count(WORKER_STARTED) if log.exists() else 0
        process = self.processes.start(name, self.processes.gateway_command(*self.worker_command))
        if name not in self.workers:
            self.workers.append(name)
        deadline = time.monotonic() + timeout
        while log.read_text().count(WORKER_STARTED) == started:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)

    def receiver_name(self, uri: str) -> str:
        return "receiver" if self.receipts_of[uri] == self.receipts else f"receiver-{S.parse_agency_uri(uri)[1]}"

    def start_receiver(self, uri: str, *, hang: bool = False) -> None:
        """Start ``uri``'s receiving endpoint (with ``hang``: one that accepts connections and never answers)
        on its port, and wait until it listens."""
        # The receiving endpoint stands in for an agency's own system, which never runs on the
        # gateway's host; here it shares the 2 cores (see --endpoint-nice). Its CPU is reported apart.
        nice = ["nice", "-n", str(self.endpoint_nice)] if self.endpoint_nice else []
        port = self.receiver_ports[uri]
        name = self.receiver_name(uri)
        receiver = self.processes.start(name, [*nice, sys.executable, "-m", "gateway.delivery.receiver",
                                               "--certs", str(self.certs), "--identity", str(self.identities[uri]),
                                               "--receipts", str(self.receipts_of[uri]), "--port", str(port),
                                               "--threads", "8", *(["--hang"] if hang else [])])
        wait_listening(port, process=receiver, name=name)

    def stop_receiver(self, uri: str) -> None:
        self.processes.stop(self.receiver_name(uri))

    def kill(self, name: str) -> None:
        """SIGKILL a process this stack started (no clean-up: a worker's claims stay in flight)."""
        process = self.processes.running.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def client(self):
        from gateway.signing import pki
        from gateway.transport.client import AgencyClient

        prefix = self.identities[SCHOOL]
        return AgencyClient(ca_file=self.certs / pki.CA_CERT, cert_file=prefix.with_suffix(".crt"),
                            key_file=prefix.with_suffix(".key"), crl_file=self.certs / pki.CRL, timeout=30)

    def applied(self) -> dict[str, float]:
        """message id -> when an endpoint applied it (epoch seconds), over every LA's endpoint."""
        return {mid: at for uri in self.las for mid, (at, _) in self.receipts_at(uri).items()}

    def receipts_at(self, uri: str) -> dict[str, tuple[float, int]]:
        """message id -> (when ``uri``'s endpoint applied it, in epoch seconds; how many times it was received)."""
        path = self.receipts_of[uri]
        if not path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT message_id, applied_at, receipts FROM applied").fetchall()
        return {mid: (dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp(), receipts)
                for mid, at, receipts in rows}

    def stop(self) -> None:
        self.processes.stop_all()


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each part of the run, from /proc (Linux): the bench process (the
    client), each started process with its children (its session), and the PostgreSQL server."""
    clock = os.sysconf("SC_CLK_TCK")
    by_session: dict[int, float] = {}
    postgres = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / clock  # utime + stime
        if name.startswith("postgres"):
            # + cutime + cstime: the server process reaps each connection's backend when it ends,
            # and a backend's CPU would otherwise leave the sum with it.
            postgres += used + (int(fields[13]) + int(fields[14])) / clock
        by_session[int(fields[3])] = by_session.get(int(fields[3]), 0.0) + used
    own = os.times()
    return {"session": by_session, "postgres": postgres, "client": own.user + own.system}


def wait_quiet(*, idle_share: float = 0.1, window: float = 1.0, limit: float = 60.0) -> float:
    """Wait until the whole machine (every process, from /proc/stat) was at most ``idle_share`` busy
    for ``window`` seconds, or ``limit`` seconds passed; return how long it took."""
    def busy_and_total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    begin = time.time()
    while time.time() - begin < limit:
        busy0, total0 = busy_and_total()
        time.sleep(window)
        busy1, total1 = busy_and_total()
        if (busy1 - busy0) <= idle_share * max(total1 - total0, 1):
            break
    return round(time.time() - begin, 1)


def cpu_per_message(stack: "Stack", before: dict, after: dict, messages: int) -> dict[str, float]:
    """Milliseconds of CPU per message for each part, between two :func:`cpu_seconds` readings."""
    parts = {name: proc.pid for name, proc in stack.processes.running.items()}
    used = {name: after["session"].get(sid, 0.0) - before["session"].get(sid, 0.0) for name, sid in parts.items()}
    used["client"] = after["client"] - before["client"]
    used["postgres"] = after["postgres"] - before["postgres"]
    return {name: round(seconds * 1000 / max(messages, 1), 2) for name, seconds in used.items() if seconds > 0}


def submit(stack: Stack, bodies: list[tuple[str, bytes]] | int, rate: float, clients: int,
           events: dict[int, Callable[[], None]] | None = None
           ) -> tuple[dict[str, tuple[float, float]], list[tuple[int, float]], float]:
    """Offer ``bodies`` (message id, JSON) to ``POST /fhir/$process-message`` at ``rate`` requests/s (open loop)
    from ``clients`` threads; an int instead offers that many ``GET /connection-check`` (the ceiling).

    ``events`` maps a request's number to something to do when it is due
    (stop an endpoint, kill a worker...), run on a thread of its own so the
    offered load keeps its pace. Returns when each accepted message was sent
    and its answer came (id -> epoch seconds, twice), each answer (status,
    seconds) and the elapsed seconds.
    """
    local = threading.local()
    trivial = isinstance(bodies, int)
    total = bodies if trivial else len(bodies)
    sent: dict[str, tuple[float, float]] = {}
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()

    clients_made = []

    def one(n: int) -> None:
        if not hasattr(local, "client"):
            local.client = stack.client()
            with lock:
                clients_made.append(local.client)
        start = time.time()
        if trivial:
            reply = local.client.request("GET", f"https://127.0.0.1:{stack.gateway_port}/connection-check",
                                         expected_agency=GATEWAY)
        else:
            mid, body = bodies[n]
            reply = local.client.request("POST", f"https://127.0.0.1:{stack.gateway_port}/fhir/$process-message",
                                         body, {"Content-Type": "application/fhir+json"}, expected_agency=GATEWAY)
            if reply.status == 200:
                with lock:
                    sent[mid] = (start, time.time())
        with lock:
            answers.append((reply.status, time.time() - start))

    begin = time.time()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool, \
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="events") as side:
        futures, happenings = [], []
        for n in range(total):
            if events and n in events:
                happenings.append(side.submit(events[n]))
            due = begin + n / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, n))
        try:
            for f in futures + happenings:
                f.result()
        finally:
            for client in clients_made:
                client.close()
    return sent, answers, time.time() - begin


def quantiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of ``seconds``, in milliseconds (NaN with fewer than two)."""
    q = statistics.quantiles(seconds, n=100) if len(seconds) >= 2 else [float("nan")] * 99
    return {"p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1), "p99_ms": round(q[98] * 1000, 1)}


def wait_applied(stack: Stack, ids, timeout: float = 60.0) -> dict[str, float]:
    """Wait (at most ``timeout`` seconds) until every message in ``ids`` was applied; return what was."""
    deadline = time.time() + timeout
    applied = stack.applied()
    while time.time() < deadline and not all(mid in applied for mid in ids):
        time.sleep(0.2)
        applied = stack.applied()
    return applied


#: The children of the run's referrals, one each (``--one-child``: all about one).
_CHILDREN = itertools.count(1)


def run_load(stack: Stack, rate: float, seconds: float, clients: int, *, trivial: bool = False,
             one_child: bool = False) -> dict:
    """Offer ``rate`` requests/s for ``seconds`` (open loop) from ``clients`` threads; return the figures.

    Each referral is about a child of its own, as a school's referrals are; with ``one_child`` every one is
    about the same child, whose history then grows through the run (the linkage's worst case)."""
    total = int(rate * seconds)
    # Messages are made before the clock starts, so the load generator does not eat the CPU the
    # gateway is being measured on (their timestamps stay well inside the replay window).
    bodies = [] if trivial else [referral(n, dt.datetime.now(dt.timezone.utc),
                                          child=None if one_child else next(_CHILDREN)) for n in range(total)]
    bodies = [(b["identifier"]["value"], json.dumps(b).encode()) for b in bodies]

    cpu_before = cpu_seconds()
    sent, answers, elapsed = submit(stack, total if trivial else bodies, rate, clients)
    ok = sum(1 for status, _ in answers if status == 200)
    result = {"offered_per_s": rate, "sent": total, "ok": ok, "accepted_per_s": round(ok / elapsed, 1),
              "answer_p50_ms": round(statistics.median(t for _, t in answers) * 1000, 1)}
    if not trivial:
        applied = wait_applied(stack, sent)
        latencies = sorted(applied[mid] - t0 for mid, (t0, _) in sent.items() if mid in applied)
        result.update({"acknowledged": len(latencies), **quantiles_ms(latencies)})
    # After the deliveries (above), so the worker's and the endpoint's share of each message is in.
    result["cpu_ms_per_message"] = cpu_per_message(stack, cpu_before, cpu_seconds(), ok)
    return result


def bench_backend(name: str, database_url: str, args) -> dict:
    workdir = ROOT / "var" / "bench" / f"pipeline-{name}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    # The per-agency limit on requests in flight is not what is measured: one school sends everything here
    # (as in bench/faults.py). Left at its default of 2, most of each step was answered 429.
    stack = Stack(workdir, database_url, endpoint_nice=args.endpoint_nice,
                  env={"GATEWAY_MAX_REQUESTS_PER_AGENCY": str(args.clients)})
    try:
        stack.start(threads=args.threads, concurrency=args.worker_concurrency, workers=args.workers)
        run_load(stack, 20, 1, args.clients)  # warm up: connections, imports, caches
        ceiling = run_load(stack, args.ceiling_rate, args.step_seconds, args.clients, trivial=True)
        print(json.dumps({"backend": name, "ceiling": ceiling}), flush=True)
        steps = []
        rate = args.start_rate
        while rate <= args.max_rate:
            step = run_load(stack, rate, args.step_seconds, args.clients, one_child=args.one_child)
            steps.append(step)
            print(json.dumps({"backend": name, "step": step}), flush=True)
            if step["accepted_per_s"] < 0.9 * rate:
                break
            rate *= 2
        # Throughput at saturation: the most accepted per second in any step (past saturation an
        # overloaded step can accept fewer than the one before it).
        saturating = max(step["accepted_per_s"] for step in steps)
        # The overloaded steps leave work behind even after every message is applied (PostgreSQL's
        # autovacuum and checkpoint, SQLite's WAL): half load is measured once the machine is quiet.
        quiet_after = wait_quiet()
        half = run_load(stack, max(1.0, saturating / 2), args.step_seconds * 2, args.clients,
                        one_child=args.one_child)
        half["quiet_after_s"] = quiet_after
        print(json.dumps({"backend": name, "half_load": half}), flush=True)
        return {"backend": name, "ceiling_per_s": ceiling["accepted_per_s"], "saturation_per_s": saturating,
                "share_of_ceiling": round(saturating / ceiling["accepted_per_s"], 2), "half_load": half}
    finally:
        stack.stop()


def postgres_url(**server_settings: str) -> tuple[str, str]:
    """A fresh schema on the real PostgreSQL server, as a URL the gateway's processes can use; each of
    ``server_settings`` is set for every connection of that URL (``-c name=value``)."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    options = "%20".join(f"-c{name}%3D{value}" for name, value in {"search_path": schema, **server_settings}.items())
    return f"{POSTGRES_URL}?options={options}", schema


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgres"])
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--start-rate", type=float, default=10.0)
    parser.add_argument("--max-rate", type=float, default=640.0)
    parser.add_argument("--ceiling-rate", type=float, default=2000.0)
    parser.add_argument("--clients", type=int, default=16, help="client threads (connections)")
    parser.add_argument("--threads", type=int, default=16, help="gateway threads per process")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes (the machine has 2 cores)")
    parser.add_argument("--worker-concurrency", type=int, default=8)
    parser.add_argument("--one-child", action="store_true",
                        help="every referral about one child (its history grows through the run: linkage's worst case)")
    parser.add_argument("--endpoint-nice", type=int, default=0,
                        help="niceness of the receiving endpoint (an agency's system; 0: same priority)")
    args = parser.parse_args()
    results = []
    for backend in args.backends:
        if backend == "sqlite":
            url = f"sqlite:///{ROOT / 'var' / 'bench' / 'pipeline-sqlite.sqlite3'}"
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            results.append(bench_backend(backend, url, args))
        else:
            url, schema = postgres_url()
            try:
                results.append(bench_backend(backend, url, args))
            finally:
                drop_schema(schema)
    print()
    print(f"{'backend':9} {'ceiling/s':>10} {'saturation/s':>13} {'share':>6} {'half load/s':>12} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for r in results:
        h = r["half_load"]
        print(f"{r['backend']:9} {r['ceiling_per_s']:10} {r['saturation_per_s']:13} {r['share_of_ceiling']:6} "
              f"{h['accepted_per_s']:12} {h['p50_ms']:7} {h['p95_ms']:7} {h['p99_ms']:7}")
    print("\ngoals: share >= 0.30 of the ceiling; p99 < 100 ms at half the saturating load")


if __name__ == "__main__":
    main()
