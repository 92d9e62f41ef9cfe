"""The demo's processes are stopped together: each is told before any is waited for."""

from __future__ import annotations

import sys
import textwrap

from gateway.demo.processes import Processes

#: A process that, told to stop, waits (up to 20 s) until every one of the group has been told, then says so.
STUBBORN = textwrap.dedent("""
    import pathlib, signal, sys, time
    told, me, count = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    def on_term(signum, frame):
        with told.open("a") as f:
            f.write(me + "\\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(told.read_text().split()) < count:
            time.sleep(0.05)
        seen = len(told.read_text().split())
        pathlib.Path(sys.argv[4]).write_text("all" if seen >= count else f"alone ({seen})")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    pathlib.Path(sys.argv[4] + ".ready").write_text("ready")
    while True:
        time.sleep(0.05)
""")


def test_stop_all_tells_every_process_before_waiting_for_any(tmp_path):
    import time

    processes = Processes(tmp_path, {})
    told = tmp_path / "told"
    told.touch()
    outcomes = [tmp_path / f"outcome-{n}" for n in range(3)]
    for n, outcome in enumerate(outcomes):
        processes.start(f"p{n}", [sys.executable, "-c", STUBBORN, str(told), f"p{n}", "3", str(outcome)])
    deadline = time.monotonic() + 30
    while not all(o.with_name(o.name + ".ready").exists() for o in outcomes):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.05)
    started = dict(processes.running)
    processes.stop_all(timeout=30)
    assert not processes.running
    assert [o.read_text() for o in outcomes] == ["all", "all", "all"]
    assert all(p.returncode == 0 for p in started.values())
