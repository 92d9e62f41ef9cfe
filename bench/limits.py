"""Benchmark of bounded input cost: the issue's hostile requests, each with its time, CPU and memory.

Run: ``.venv/bin/python bench/limits.py [--quick]``

Through the real Flask app in this process (no TLS: bench/trust.py measures
that), on a fresh SQLite database and development PKI, it sends the inputs
the issue measured and prints for each the answer, wall and CPU time and the
process's resident memory (RSS) before and after (after a garbage
collection): memory that a request leaves behind shows as growth. In the same
run, beside them: a normal referral and a normal export (the baseline), and
the code the limits replaced, loaded from git history
(:data:`BASELINE_COMMIT`): the quadratic header check and line reading from
the network stream one byte at a time. Every loop is bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The last commit before the limits (issue 12): its CSV reader is the baseline.
BASELINE_COMMIT = "cda3a09"
SAMPLES = REPO / "tests" / "fixtures" / "samples"
SCHOOL = "urn:x-safeguarding:agency:school:999101"
NOW = dt.datetime(2018, 9, 30, 16, 40, tzinfo=dt.timezone.utc)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Upload(io.RawIOBase):
    """``size`` bytes that arrive as they are read, with no length (a chunked upload)."""

    def __init__(self, size: int, head: bytes = b"", fill: bytes = b"x"):
        self.size, self.head, self.fill, self.sent = size, head, fill, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.sent)
        if n <= 0:
            return 0
        data = (self.head[self.sent:] + self.fill * n)[:n]
        buffer[:n] = data
        self.sent += n
        return n


def make_app(root: Path):
    from gateway.demo.standalone import standalone_app

    return standalone_app(root, NOW, replay_window_seconds=600, max_request_bytes=60 * 2**20)


def post(app, path: str, body: bytes | None = None, stream=None):
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    from gateway.transport.middleware import AGENCY_KEY

    content_type = "application/fhir+json" if path.startswith("/fhir/") else "application/octet-stream"
    environ = EnvironBuilder(path=path, method="POST", data=body or b"", content_type=content_type,
                             environ_base={AGENCY_KEY: SCHOOL}).get_environ()
    if stream is not None:
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input"], environ["wsgi.input_terminated"] = stream, True
    app_iter, status, _ = run_wsgi_app(app, environ, buffered=True)
    return status, b"".join(app_iter)


def measure(label: str, action, repeat: int = 1) -> None:
    gc.collect()
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        answer = action()
    wall, cpu = (time.perf_counter() - wall) / repeat, (time.process_time() - cpu) / repeat
    gc.collect()
    after = rss_mb()
    print(f"  {label:<58} {answer:<44} {wall * 1000:>9.1f} ms {cpu * 1000:>9.1f} ms CPU"
          f"   RSS {before:7.1f} -> {after:7.1f} MB ({after - before:+.1f})")


def status_of(result) -> str:
    status, body = result
    try:
        issues = json.loads(body).get("issue", [])
        named = next((i.get("diagnostics") for i in issues if "GATEWAY_" in (i.get("diagnostics") or "")), "")
    except ValueError:
        named = ""
    return f"{status.split()[0]} {named}".strip()[:44]


def baseline_reader():
    """The CSV reader at :data:`BASELINE_COMMIT`, as a module of its own."""
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:gateway/adapters/readers/csvstream.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("baseline_csvstream", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "baseline_csvstream.py", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    quick = parser.parse_args().quick
    from werkzeug.wsgi import LimitedStream

    from gateway.adapters.limits import Limits, applied
    from gateway.adapters.readers.csvstream import read_csv
    from gateway.model import build_bundle
    from gateway.transport.views import warm_up_record

    scale = 10 if quick else 1
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder))
        csv_sample = (SAMPLES / "schoolsafe-sample.csv").read_bytes()
        header = csv_sample.split(b"\r\n", 1)[0]
        referral = json.dumps(build_bundle(warm_up_record(NOW), now=NOW)).encode()
        deep = referral.replace(b'"resourceType": "Bundle"', b'"x": ' + b"[" * 10_000 + b"]" * 10_000 +
                                b', "resourceType": "Bundle"', 1)
        post(app, "/fhir/$process-message", referral)  # warm: models, standard, signer
        print("bench/limits.py: each request's answer, wall and CPU time, RSS before -> after (gc)\n")
        print("baseline (normal requests)")
        measure("a referral to $process-message (replayed)", lambda: status_of(
            post(app, "/fhir/$process-message", referral)), 20)
        measure("the sample export to /ingest/schoolsafe-csv", lambda: status_of(
            post(app, "/ingest/schoolsafe-csv", csv_sample)), 5)
        print("\nthe issue's hostile requests, now")
        columns = b",".join(b"c%d" % i for i in range(40_000)) + b"\r\n"
        measure("40,000-column header to /ingest", lambda: status_of(post(app, "/ingest/schoolsafe-csv", columns)))
        size = 50 * 2**20 // scale
        measure(f"{size >> 20} MB single-line CSV, chunked, to /ingest", lambda: status_of(
            post(app, "/ingest/schoolsafe-csv", stream=Upload(size, header + b"\r\n"))))
        measure("61 MiB chunked upload (limit 60 MiB) to /ingest", lambda: status_of(
            post(app, "/ingest/schoolsafe-csv", stream=Upload(60 * 2**20 + 2**20, header + b"\r\n"))))
        measure("JSON nested 10,000 deep to $process-message (x20)", lambda: status_of(
            post(app, "/fhir/$process-message", deep)), 20)
        export = (SAMPLES / "concernhub-sample.json").read_bytes().replace(
            b'"concerns": [', b'"concerns": [{"id": 1, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}, ", 1)
        measure("10,000-deep concern in a concernhub-json export",
                lambda: status_of(post(app, "/ingest/concernhub-json", export)))
        print(f"\nthe code the limits replaced ({BASELINE_COMMIT}), same inputs or smaller")
        old = baseline_reader()
        few = b",".join(b"c%d" % i for i in range(10_000)) + b"\r\n"
        for label, module in (("before", old), ("now", None)):
            def header_check(module=module, body=few):
                try:
                    if module is None:
                        with applied(Limits(10**6, 10**6, 64)):
                            list(read_csv(io.BytesIO(body), "x", {"required_columns": ["Incident ID"]}))
                    else:
                        list(module.read_csv(io.BytesIO(body), "x", {"required_columns": ["Incident ID"]}))
                except Exception as exc:  # noqa: BLE001 - the header is refused either way
                    return type(exc).__name__
                return "read"
            measure(f"10,000-column header check, {label} (no column limit)", header_check)
        line = 4 * 2**20 // scale
        body = header + b"\r\n" + b"x" * line + b"\r\n"
        measure(f"{line >> 20} MB line read from the request stream, before (byte by byte)",
                lambda: f"{sum(1 for _ in LimitedStream(io.BytesIO(body), len(body)))} lines")
        measure(f"{line >> 20} MB line read from the spooled body, now",
                lambda: f"{sum(1 for _ in io.BufferedReader(io.BytesIO(body)))} lines")


if __name__ == "__main__":
    main()
