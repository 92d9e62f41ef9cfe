"""The SQL store, run against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
from sqlalchemy import text

from gateway.store import AcceptedMessage, AlreadyAccepted, SqlMessageStore
from gateway.store.engine import StoreConfigError, make_engine

UTC = dt.timezone.utc
RECEIVED = dt.datetime(2025, 3, 1, 10, 0, 5, 123000, tzinfo=UTC)


def _message(message_id="urn:uuid:00000000-0000-4000-8000-000000000001", **changes) -> AcceptedMessage:
    values = dict(
        message_id=message_id, sender_agency="urn:x-safeguarding:agency:school:999101",
        received_at=RECEIVED,
        # The sender's own time, in its own zone, kept apart from received_at.
        message_timestamp=dt.datetime(2025, 3, 1, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        payload_sha256="ab" * 32, raw_message='{"resourceType": "Bundle", "timestamp": "2025-03-01T11:00:00+01:00"}',
        signed_message='{"resourceType": "Bundle", "signature": {}}', response_status=200,
        response_body='{"resourceType": "Bundle", "type": "message"}')
    values.update(changes)
    return AcceptedMessage(**values)


def test_round_trip_keeps_every_field(store):
    message = _message(raw_message='{"name": "caf\u00e9 \u2014 \U0001f600", "n": 1.50}')
    with store.transaction() as unit:
        unit.messages.add(message)
    found = store.find_accepted(message.message_id)
    assert found == message
    assert found.received_at.tzinfo is not None and found.received_at.utcoffset() == dt.timedelta(0)
    assert found.message_timestamp == dt.datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert store.find_accepted("urn:uuid:unknown") is None


def test_second_add_of_an_id_raises_with_the_first(store):
    first = _message()
    with store.transaction() as unit:
        unit.messages.add(first)
    with pytest.raises(AlreadyAccepted) as caught:
        with store.transaction() as unit:
            unit.messages.add(dataclasses.replace(first, response_body="{}"))
    assert caught.value.existing == first


def test_a_failing_unit_of_work_keeps_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as unit:
            unit.messages.add(_message())
            raise RuntimeError("a later step refused")
    assert store.find_accepted(_message().message_id) is None


def test_recent_is_latest_first_and_filters_by_sender(store):
    with store.transaction() as unit:
        for n in range(3):
            unit.messages.add(_message(f"urn:uuid:{n}", received_at=RECEIVED + dt.timedelta(minutes=n)))
        unit.messages.add(_message("urn:uuid:police", sender_agency="urn:x-safeguarding:agency:police:TST"))
    with store.transaction() as unit:
        assert [m.message_id for m in unit.messages.recent(limit=2)] == ["urn:uuid:2", "urn:uuid:1"]
        school = unit.messages.recent(sender_agency="urn:x-safeguarding:agency:school:999101")
        assert [m.message_id for m in school] == ["urn:uuid:2", "urn:uuid:1", "urn:uuid:0"]


def _wait_until_blocked_on_lock(store: SqlMessageStore, loser_done: threading.Event) -> None:
    # On PostgreSQL, wait (bounded) until the second insert really waits on
    # the first's row lock, so the race path is the one tested.
    if store.engine.dialect.name != "postgresql":
        return
    for _ in range(500):
        with store.engine.connect() as connection:
            waiting = connection.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND wait_event_type = 'Lock'"), {"name": store.schema}).scalar()
        if waiting or loser_done.wait(0.01):
            return
    raise AssertionError("the second transaction never waited on the first")


def test_concurrent_duplicates_one_wins_the_other_gets_its_record(store):
    winner = _message()
    added, commit, loser_done = threading.Event(), threading.Event(), threading.Event()
    outcome = {}

    def first():
        with store.transaction() as unit:
            unit.messages.add(winner)
            added.set()
            commit.wait(10)

    def second():
        try:
            with store.transaction() as unit:
                unit.messages.add(dataclasses.replace(winner, response_body='{"other": true}'))
        except AlreadyAccepted as exc:
            outcome["existing"] = exc.existing
        finally:
            loser_done.set()

    one = threading.Thread(target=first)
    one.start()
    assert added.wait(10)
    two = threading.Thread(target=second)
    two.start()
    _wait_until_blocked_on_lock(store, loser_done)
    commit.set()
    one.join(10)
    two.join(10)
    assert outcome["existing"] == winner
    assert store.find_accepted(winner.message_id) == winner


def test_sqlite_pragmas_and_parent_folder(tmp_path):
    from gateway.store import schema

    path = tmp_path / "a" / "b" / "gateway.sqlite3"
    schema.upgrade(f"sqlite:///{path}")  # its engine makes the folders
    store = SqlMessageStore.from_url(f"sqlite:///{path}")
    try:
        assert path.is_file()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()


@pytest.mark.postgres
def test_plain_postgresql_url_means_psycopg3():
    from gateway.store.engine import make_engine as make

    engine = make("postgresql://postgres@127.0.0.1:5432/test")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "not a url"])
def test_unsupported_urls_are_refused(url):
    with pytest.raises(StoreConfigError):
        make_engine(url)


def test_sqlite_writers_of_two_processes_take_turns_on_the_write_lock(tmp_path):
    """The store's SQLite write lock excludes another process (a flock), not only other threads."""
    import multiprocessing
    import time

    from gateway.store.engine import WriteLock

    database = str(tmp_path / "gateway.sqlite3")
    lock = WriteLock(database)
    held = multiprocessing.get_context("fork").Event()
    release = multiprocessing.get_context("fork").Event()

    def hold_in_child():
        with WriteLock(database)():
            held.set()
            release.wait(10)

    child = multiprocessing.get_context("fork").Process(target=hold_in_child)
    child.start()
    try:
        assert held.wait(10)
        waited = []

        def take():
            start = time.monotonic()
            with lock():
                waited.append(time.monotonic() - start)

        import threading
        taker = threading.Thread(target=take)
        taker.start()
        time.sleep(0.3)
        assert waited == []  # still waiting for the other process
        release.set()
        taker.join(10)
        assert len(waited) == 1 and waited[0] >= 0.3
    finally:
        release.set()
        child.join(10)


def test_work_run_together_commits_each_piece_and_keeps_failures_apart(store):
    """Group commit (SQLite) or a transaction each (PostgreSQL): the same outcome for every caller."""
    barrier = threading.Barrier(12)
    results: dict[int, object] = {}

    def submit(n: int) -> None:
        message = _message(f"urn:uuid:00000000-0000-4000-8000-{n:012d}")

        def work(unit):
            unit.messages.add(message)
            if n % 4 == 3:
                raise RuntimeError(f"step of message {n} failed")
            return n * 10

        barrier.wait()
        try:
            results[n] = store.together(work)
        except Exception as exc:  # noqa: BLE001 - each caller's own outcome is what is checked
            results[n] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for n in range(12):
        stored = store.find_accepted(f"urn:uuid:00000000-0000-4000-8000-{n:012d}")
        if n % 4 == 3:
            assert isinstance(results[n], RuntimeError) and f"message {n}" in str(results[n])
            assert stored is None  # its own savepoint rolled back
        else:
            assert results[n] == n * 10
            assert stored is not None  # committed before together() returned


def test_work_alone_that_fails_stores_nothing_and_raises(store):
    """One piece on its own (no savepoint on SQLite: the transaction is its own) rolls back whole."""
    message = _message("urn:uuid:00000000-0000-4000-8000-000000000201")

    def work(unit):
        unit.messages.add(message)
        raise RuntimeError("the routing step failed")

    with pytest.raises(RuntimeError, match="routing step"):
        store.together(work)
    assert store.find_accepted(message.message_id) is None
    assert store.together(lambda unit: unit.messages.add(message)) is None  # the id is still free
    with pytest.raises(AlreadyAccepted) as replay:  # and alone, a second one is a replay of the first
        store.together(lambda unit: unit.messages.add(dataclasses.replace(message, response_body="{}")))
    assert replay.value.existing == store.find_accepted(message.message_id)


def test_the_same_id_twice_together_is_already_accepted_with_the_first(store):
    first = _message()
    barrier = threading.Barrier(2)
    outcomes = []

    def submit(message):
        barrier.wait()
        try:
            store.together(lambda unit: unit.messages.add(message))
            outcomes.append("stored")
        except AlreadyAccepted as exc:
            outcomes.append(exc.existing)

    threads = [threading.Thread(target=submit, args=(m,))
               for m in (first, dataclasses.replace(first, response_body="{}"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes, key=str)[-1] == "stored" and len(outcomes) == 2
    existing = next(o for o in outcomes if o != "stored")
    assert existing == store.find_accepted(first.message_id)


def test_on_sqlite_work_that_waits_together_shares_one_commit(tmp_path, upgraded_sqlite):
    from sqlalchemy import event

    store = SqlMessageStore.from_url(upgraded_sqlite(tmp_path / "gateway.sqlite3"))
    commits = []
    event.listen(store.engine, "commit", lambda connection: commits.append(1))
    try:
        started, release = threading.Event(), threading.Event()

        def first(unit):  # holds the committing thread while the others queue
            started.set()
            assert release.wait(10)
            unit.messages.add(_message("urn:uuid:00000000-0000-4000-8000-000000000100"))

        threads = [threading.Thread(target=store.together, args=(first,))]
        threads[0].start()
        assert started.wait(10)
        for n in range(5):
            message = _message(f"urn:uuid:00000000-0000-4000-8000-{n:012d}")
            threads.append(threading.Thread(target=store.together, args=(lambda unit, m=message: unit.messages.add(m),)))
            threads[-1].start()
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while store._group._queue.qsize() < 5 and dt.datetime.now() < deadline:
            threading.Event().wait(0.01)
        release.set()
        for thread in threads:
            thread.join(10)
        assert len(commits) == 2  # the first alone, then the five that waited, in one transaction
        assert all(store.find_accepted(f"urn:uuid:00000000-0000-4000-8000-{n:012d}") for n in range(5))
    finally:
        store.close()


def test_submitted_work_commits_while_the_caller_goes_on_and_result_waits_for_it(store):
    """``submit`` returns at once; ``result()`` is the committed outcome, or the work's own error, as ``together``."""
    started, release = threading.Event(), threading.Event()
    message = _message("urn:uuid:00000000-0000-4000-8000-000000000301")

    def work(unit):
        started.set()
        assert release.wait(10)  # holds its transaction open until the caller has gone on
        unit.messages.add(message)
        return "stored"

    pending = store.submit(work)
    assert started.wait(10)
    assert store.find_accepted(message.message_id) is None  # running, not committed: the caller was not held
    release.set()
    assert pending.result() == "stored"
    assert store.find_accepted(message.message_id) is not None

    def failing(unit):
        unit.messages.add(_message("urn:uuid:00000000-0000-4000-8000-000000000302"))
        raise RuntimeError("the read could not be recorded")

    refused = store.submit(failing)
    with pytest.raises(RuntimeError, match="could not be recorded"):
        refused.result()
    assert store.find_accepted("urn:uuid:00000000-0000-4000-8000-000000000302") is None
