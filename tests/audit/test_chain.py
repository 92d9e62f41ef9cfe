"""Appending to the hash chain: order, links, no gaps, in the caller's transaction, on both engines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from gateway.audit import configure, record_audit
from gateway.audit.chain import GENESIS, chain_hash, head, stored_records
from gateway.audit.models import AuditEventRow
from gateway.config import Settings
from tests.audit.conftest import T0, append
from tests.conftest import POSTGRES_URL


def _records(store):
    with store.engine.connect() as connection:
        return list(stored_records(connection, batch=5))


def test_records_chain_from_the_start_with_no_gaps(store, verify_now):
    append(store, 12)
    records = _records(store)
    assert [r.seq for r in records] == list(range(1, 13))
    assert records[0].prev_hash == GENESIS
    for before, after in zip(records, records[1:]):
        assert after.prev_hash == before.hash
        assert after.hash == chain_hash(before.hash, after.canonical())
    assert records[3].entities == [["message", "urn:uuid:00000000-0000-4000-8000-000000000003"]]
    assert records[3].detail == {"format": "schoolsafe-csv"}
    assert records[3].recorded_at == T0 + dt.timedelta(seconds=3)
    with store.engine.connect() as connection:
        assert head(connection) == (12, records[-1].hash)
    report = verify_now(store.engine)
    assert report.ok, report.problems
    assert report.records == 12


def test_a_rolled_back_transaction_takes_its_records_and_leaves_no_gap(store, verify_now):
    append(store, 2)
    with pytest.raises(RuntimeError):
        with store.transaction() as unit:
            record_audit(unit.session, action="R", subtype="read", agent="operator jo", at=T0)
            raise RuntimeError("the action failed")
    append(store, 1)
    assert [r.seq for r in _records(store)] == [1, 2, 3]
    assert verify_now(store.engine).ok


def test_a_savepoint_rolled_back_in_a_group_commit_takes_its_record_only(store, verify_now):
    """On SQLite the accept path shares one transaction between requests (GroupCommit savepoints)."""
    def ok(unit):
        return record_audit(unit.session, action="C", subtype="submission", agent="gateway", at=T0)

    def fails(unit):
        record_audit(unit.session, action="C", subtype="submission", agent="gateway", at=T0)
        raise ValueError("refused after its record")

    results = []

    def run(work):
        try:
            results.append(store.together(work))
        except ValueError:
            results.append("failed")

    threads = [threading.Thread(target=run, args=(work,)) for work in (ok, fails, ok, fails, ok)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("failed") == 2
    assert [r.seq for r in _records(store)] == [1, 2, 3]
    assert verify_now(store.engine).ok


@pytest.mark.parametrize(("change", "error"), [
    ({"action": "X"}, "audit action"), ({"subtype": "gossip"}, "audit subtype"),
    ({"outcome": "meh"}, "audit outcome"), ({"at": dt.datetime(2026, 1, 1)}, "aware")])
def test_a_bad_record_is_refused_and_nothing_is_written(store, change, error):
    arguments = {"action": "C", "subtype": "submission", "agent": "gateway", "at": T0} | change
    with pytest.raises(ValueError, match=error):
        with store.transaction() as unit:
            record_audit(unit.session, **arguments)
    assert _records(store) == []


def test_switched_off_it_writes_nothing(store):
    configure(Settings(audit_log="off"))
    try:
        append(store, 3)
    finally:
        configure(Settings())
    assert _records(store) == []
    with pytest.raises(ValueError, match="on or off"):
        configure(Settings(audit_log="maybe"))


def test_the_table_refuses_update_and_delete(store):
    append(store, 2)
    for statement in ("UPDATE audit_event SET agent = 'someone else' WHERE seq = 1",
                      "DELETE FROM audit_event WHERE seq = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            with store.engine.begin() as connection:
                connection.execute(text(statement))
    assert [r.agent for r in _records(store)] == ["urn:x-safeguarding:agency:school:999101"] * 2


@pytest.mark.postgres
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_postgresql_refuses_truncate(store):
    append(store, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        with store.engine.begin() as connection:
            connection.execute(text("TRUNCATE audit_event"))


def test_concurrent_appends_from_threads_keep_one_valid_chain(store, verify_now):
    errors = []

    def work(n):
        try:
            for i in range(15):
                with store.transaction() as unit:
                    record_audit(unit.session, action="E", subtype="delivery-attempt", agent="gateway",
                                 entities=[("delivery", f"{n}-{i}")], at=T0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = _records(store)
    assert [r.seq for r in records] == list(range(1, 91))
    assert sorted(r.entities[0][1] for r in records) == sorted(f"{n}-{i}" for n in range(6) for i in range(15))
    assert verify_now(store.engine).ok


_APPENDER = """
import datetime as dt, sys
from gateway.audit import record_audit
from gateway.store import SqlMessageStore
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlMessageStore.from_url(url)
for i in range(count):
    with store.transaction() as unit:
        record_audit(unit.session, action="E", subtype="delivery-attempt", agent="gateway",
                     entities=[("delivery", f"{name}-{i}")], at=dt.datetime.now(dt.timezone.utc))
store.close()
"""


def test_concurrent_appends_from_processes_keep_one_valid_chain(store, verify_now):
    url = (f"{POSTGRES_URL}?options=-csearch_path%3D{store.schema}" if store.engine.dialect.name == "postgresql"
           else store.engine.url.render_as_string(hide_password=False))
    processes = [subprocess.Popen([sys.executable, "-c", _APPENDER, url, f"p{n}", "25"], stderr=subprocess.PIPE,
                                  text=True) for n in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    records = _records(store)
    assert [r.seq for r in records] == list(range(1, 76))
    assert verify_now(store.engine).ok


def test_the_hash_covers_every_field(store):
    append(store, 1)
    (record,) = _records(store)
    for field, value in (("action", "D"), ("subtype", "read"), ("outcome", "failure"), ("agent", "gateway"),
                         ("entities", [["message", "another"]]), ("detail", None),
                         ("recorded_at", record.recorded_at + dt.timedelta(microseconds=1))):
        changed = dataclasses.replace(record, **{field: value})
        assert chain_hash(GENESIS, changed.canonical()) != record.hash, field


def test_in_a_store_transaction_records_wait_for_its_end_and_elsewhere_go_in_at_once(store):
    with store.transaction() as unit:
        assert record_audit(unit.session, action="C", subtype="submission", agent="gateway", at=T0) is None
        with unit.session.connection().begin_nested():
            pass
        assert unit.session.connection().execute(text("SELECT seq FROM audit_chain_head")).scalar() == 0
    assert [r.seq for r in _records(store)] == [1]
    with store.engine.begin() as connection:
        assert record_audit(connection, action="R", subtype="read", agent="gateway", at=T0) == 2
        assert record_audit(connection, action="R", subtype="read", agent="gateway", at=T0) == 3
    assert [r.seq for r in _records(store)] == [1, 2, 3]


def test_the_chain_head_is_one_row(store):
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT id, seq, hash FROM audit_chain_head")).all() == [(1, 0, GENESIS)]
        assert connection.execute(select(func.count()).select_from(AuditEventRow)).scalar() == 0


@pytest.mark.parametrize("agent", ["gateway", "urn:x-safeguarding:agency:school:999101", "Zoë O'Connor \"ops\"",
                                   "back\\slash\ttab\nline\x01\x1f\x7f\u2028 😀 \ud7ff"])
@pytest.mark.parametrize("detail", [None, {}, {"b": 1, "a": [1, 2.5, True, None], "é": {"z": "\x00"}},
                                    {"rules": ["school-referral-to-home-la"], "unroutable": 0}])
def test_the_form_put_together_from_the_columns_is_rfc8785_of_the_record(agent, detail):
    """Writer and verify build the canonical form from the columns' own JCS text; the library is the judge."""
    import rfc8785

    from gateway.audit.chain import canonical_from_columns
    from gateway.signing.canonical import canonical_json

    entities = [["message", "urn:uuid:1"], ["person", agent]]
    record = {"recorded": "2026-11-29T09:00:00.000001Z", "action": "R", "subtype": "read", "outcome": "success",
              "agent": agent, "entities": entities, "detail": detail}
    assembled = canonical_from_columns(record["recorded"], "R", "read", "success", agent,
                                       canonical_json(entities).decode(),
                                       None if detail is None else canonical_json(detail).decode())
    assert assembled == rfc8785.dumps(record)
