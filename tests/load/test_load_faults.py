"""Load and faults (issue 12), with real processes over mutual TLS: bench/faults.py's two runs, smaller.

A school submits MESSAGES referrals at RATE per second over mTLS to ``gateway
serve``; two ``gateway worker`` processes deliver them to five LAs' real
receiving endpoints. The run with faults stops one LA's endpoint and starts
it again, replaces another's with one that accepts connections and never
answers, and SIGKILLs a worker mid-delivery (then starts it again, as a
supervisor would). The set-up, the faults and the
measurements are bench/faults.py's (one copy); this checks what it found:
nothing lost, nothing applied twice, every delivery acknowledged, the audit
chain intact, and the healthy LAs' deliveries not held up by the hung endpoint
(their p99 below one wait on it; the issue's 2x goal is printed beside it and
reported by bench/faults.py). Waits are bounded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MESSAGES, RATE, CLIENTS = 800, 20.0, 16   # per run; about a minute each on 2 cores

pytestmark = pytest.mark.slow


def _bench_faults():
    """bench/faults.py as a module (it imports bench/pipeline.py, whose Stack starts the processes)."""
    spec = importlib.util.spec_from_file_location("bench_faults", ROOT / "bench" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def faults():
    return _bench_faults()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def runs(request, faults, tmp_path_factory):
    """The run without faults and the run with them, on one engine; their figures are printed."""
    bodies = faults.bodies_for(MESSAGES)
    baseline, faulty = faults.both_runs(request.param, tmp_path_factory.mktemp(f"faults-{request.param}"), bodies,
                                        rate=RATE, clients=CLIENTS)
    faults.report([baseline, faulty], request.param)
    ratio, met = faults.compare(baseline, faulty)
    print(f"goal: healthy delivery p99 with faults <= {faults.GOAL_RATIO:g}x without: "
          f"{faulty.healthy['p99_ms']} ms vs {baseline.healthy['p99_ms']} ms = {ratio}x ({'met' if met else 'MISSED'})")
    return baseline, faulty


def test_every_message_is_accepted_and_applied_exactly_once_at_its_la(runs):
    for run in runs:
        assert run.accepted == run.submitted == MESSAGES, run.name
        # check_exactly_once and open_deliveries: lost, applied elsewhere or twice, deliveries left open.
        assert run.problems == [], run.name


def test_the_faults_happened_and_were_survived(runs):
    baseline, faulty = runs
    # The hung LA's attempts timed out and the stopped LA's were refused, then retried until they went through
    # (a lapsed claim shows only when the killed worker held one at that moment).
    assert faulty.retried.get("attempts timed out", 0) > 0, faulty.retried
    assert faulty.retried.get("attempts refused or cut", 0) > 0, faulty.retried
    assert baseline.retried == {} and baseline.redelivered == 0  # without faults: every delivery once


def test_the_audit_chain_verifies_after_both_runs(runs):
    for run in runs:
        assert run.audit.startswith("passed"), run.audit


def test_healthy_agencies_are_not_held_up_by_the_hung_one(runs, faults):
    """A delivery held up by the hung endpoint waits at least its read timeout (the probe saw 10-15 s medians):
    the healthy LAs' p99 with faults must stay below one such wait. The issue's speed goal (within 2x of the
    run without faults) is a measurement, printed here and by bench/faults.py, not a timing threshold of a
    test on a shared 2-core machine."""
    baseline, faulty = runs
    ratio, met = faults.compare(baseline, faulty)
    print(f"healthy LAs' delivery p99 {faulty.healthy['p99_ms']} ms with faults against "
          f"{baseline.healthy['p99_ms']} ms without: {ratio}x (goal <= {faults.GOAL_RATIO:g}x: "
          f"{'met' if met else 'MISSED'})")
    assert faulty.healthy["p99_ms"] < faults.READ_TIMEOUT * 1000, (
        f"healthy LAs' delivery p99 {faulty.healthy['p99_ms']} ms with faults: as long as a wait on the hung "
        f"endpoint ({faults.READ_TIMEOUT} s read timeout)")
