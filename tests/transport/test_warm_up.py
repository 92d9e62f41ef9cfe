"""The gateway's warm-up loads what a message needs, so that settling freezes it; it stores nothing.

Run in a fresh interpreter each: what a process has already imported is
exactly what is being measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import datetime as dt, gc, json, os, sys
    from gateway.config import Settings
    from gateway.routing import Directory
    from gateway.store import open_store, schema

    url = os.environ["GATEWAY_DATABASE_URL"]
    schema.upgrade(url)
    store = open_store(url); Directory(store.engine).load_seed(); store.close()

    from gateway.app import create_app
    from gateway.model import build_bundle
    from gateway.runtime import settle
    from gateway.transport.views import intake_for, warm_up, warm_up_record

    app = create_app(Settings.from_env())
    frozen = settle((lambda: warm_up(app)) if sys.argv[1] == "warm" else None)
    intake = intake_for(app)
    stored_by_warm_up = len(intake.store.engine.connect().exec_driver_sql(
        "SELECT message_id FROM accepted_message").fetchall())
    gc.collect()
    before = len(gc.get_objects())
    now = dt.datetime.now(dt.timezone.utc)
    body = json.dumps(build_bundle(warm_up_record(now, record_id="test-1"), now=now)).encode()
    with app.app_context():
        outcome = intake.process(body, "urn:x-safeguarding:agency:school:999101", now=now)
    gc.collect()
    print(json.dumps({"frozen": frozen, "growth": len(gc.get_objects()) - before, "status": outcome.status,
                      "stored_by_warm_up": stored_by_warm_up}))
""")


def _run(mode: str, deployment, tmp_path) -> dict:
    env = dict(os.environ, GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / mode}.sqlite3",
               GATEWAY_CERTS_DIR=str(deployment.dir))
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_a_message_adds_little_to_the_heap_and_nothing_was_stored(deployment, tmp_path):
    warm = _run("warm", deployment, tmp_path)
    assert warm["status"] == 200
    assert warm["stored_by_warm_up"] == 0
    assert warm["growth"] < 5_000  # the first message loads nothing big: it was loaded, and frozen, at start-up


def test_without_it_the_first_message_loads_the_request_path_after_the_freeze(deployment, tmp_path):
    cold = _run("cold", deployment, tmp_path)
    assert cold["status"] == 200
    assert cold["growth"] > 20_000  # FHIR models, the standard, ...: left for full collections to walk


def test_the_real_server_warms_up_without_a_failure(gateway_server):
    """``gateway serve`` settles each worker after its warm-up; a failing warm-up would be logged (and the
    server would still start, which is why only its log tells)."""
    # The fixture has had an mTLS answer, so the worker has loaded the app: its warm-up is over.
    log = gateway_server.log.read_text(encoding="utf-8")
    assert "Booting worker" in log
    assert "warm-up failed" not in log
