"""The schema's migrations (gateway.store.schema, ``gateway db``), on a real SQLite file and on PostgreSQL.

The migrations must build exactly the models (no autogenerate difference),
keep data from the baseline, and every service and command must refuse a
database that is not at this code's head revision.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, text

from gateway.cli import main
from gateway.routing import Directory
from gateway.store import AcceptedMessage, SqlMessageStore, schema
from gateway.store.engine import make_engine

from tests.conftest import POSTGRES_URL  # noqa: E402  (the shared PostgreSQL settings)

BASELINE = "0001_baseline"
NOW = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.timezone.utc)
MESSAGE_ID = "urn:uuid:00000000-0000-4000-8000-00000000b001"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request, tmp_path):
    """An engine on an empty database (no tables, no revision), on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    else:
        made = make_engine(POSTGRES_URL, connect_args=request.getfixturevalue("postgres_schema").connect_args)
    yield made
    made.dispose()


@pytest.fixture
def empty_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'empty.sqlite3'}"


def _check_constraints(connection, tables) -> dict[str, set[str]]:
    """The named CHECK constraints of each table, which Alembic's comparison leaves out."""
    inspector = inspect(connection)
    return {name: {check["name"] for check in inspector.get_check_constraints(name)} for name in tables}


# Upgrading an empty database ---------------------------------------------------------------------------------

def test_an_empty_database_upgraded_to_head_matches_the_models(empty_engine):
    assert schema.current(empty_engine) is None
    assert schema.upgrade(empty_engine) == schema.head()
    assert schema.current(empty_engine) == schema.head()
    with empty_engine.connect() as connection:
        assert schema.differences(connection) == []
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        assert tables == set(schema.metadata.tables)
        expected = {name: {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
                    for name, table in schema.metadata.tables.items()}
        assert _check_constraints(connection, tables) == expected
    schema.require_current(empty_engine)  # does not raise


@pytest.mark.postgres
def test_on_postgresql_the_schema_and_its_revision_stay_in_the_search_path_schema(postgres_schema):
    engine = make_engine(POSTGRES_URL, connect_args=postgres_schema.connect_args)
    admin = make_engine(POSTGRES_URL)
    try:
        schema.upgrade(engine)
        with admin.connect() as connection:
            found = connection.execute(text(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name IN "
                "('alembic_version', 'accepted_message') AND table_schema IN (:mine, current_schema()) "
                "ORDER BY table_name"), {"mine": postgres_schema.schema}).all()
        assert found == [(postgres_schema.schema, "accepted_message"), (postgres_schema.schema, "alembic_version")]
    finally:
        engine.dispose()
        admin.dispose()


def _changed(change):
    """A copy of the models' metadata with ``change(copy)`` applied: a model edited without a revision."""
    copy = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        table.to_metadata(copy)
    change(copy)
    return copy


def _add_column(copy):
    copy.tables["accepted_message"].append_column(sa.Column("priority", sa.Integer(), nullable=True))


def _make_nullable(copy):
    copy.tables["delivery"].c.destination.nullable = True


def _drop_index(copy):
    table = copy.tables["message_person"]
    table.indexes.remove(next(index for index in table.indexes if index.name == "ix_message_person_record"))


def _widen(copy):
    copy.tables["accepted_message"].c.sender_agency.type = sa.String(512)


def _add_table(copy):
    sa.Table("example_new_table", copy, sa.Column("id", sa.Integer, primary_key=True))


@pytest.mark.parametrize(("change", "expected"), [
    (_add_column, "add_column"), (_make_nullable, "modify_nullable"), (_drop_index, "remove_index"),
    (_widen, "modify_type"), (_add_table, "add_table")])
def test_the_comparison_catches_a_model_changed_without_a_revision(empty_engine, change, expected):
    schema.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        found = schema.differences(connection, _changed(change))
    kinds = [diff[0][0] if isinstance(diff, list) else diff[0] for diff in found]
    assert kinds == [expected], found


@pytest.mark.postgres
def test_on_postgresql_a_datetime_that_lost_its_time_zone_is_a_difference(postgres_schema):
    engine = make_engine(POSTGRES_URL, connect_args=postgres_schema.connect_args)
    try:
        schema.upgrade(engine)

        def naive(copy):
            copy.tables["accepted_message"].c.received_at.type = sa.DateTime(timezone=False)

        with engine.connect() as connection:
            found = schema.differences(connection, _changed(naive))
    finally:
        engine.dispose()
    assert [diff[0][0] for diff in found] == ["modify_type"]
    assert found[0][0][3] == "received_at"


def test_every_module_with_tables_is_imported_by_the_schema():
    """``schema.metadata`` holds every table: importing all of gateway adds none (a fresh interpreter)."""
    script = """
import importlib, json, pkgutil
import gateway
from gateway.store import schema
before = sorted(schema.metadata.tables)
for module in pkgutil.walk_packages(gateway.__path__, "gateway."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
print(json.dumps([before, sorted(schema.metadata.tables)]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert "accepted_message" in before
    assert after == before


# Data from the baseline ------------------------------------------------------------------------------------

def _insert_baseline_rows(connection) -> None:
    """Rows as the baseline's tables take them (its columns, written out: the models change after it)."""
    stamp = NOW if connection.dialect.name == "postgresql" else NOW.replace(tzinfo=None)
    connection.execute(text(
        "INSERT INTO accepted_message (message_id, sender_agency, received_at, message_timestamp, payload_sha256, "
        "raw_message, signed_message, response_status, response_body) VALUES (:id, :sender, :at, :at, :sha, "
        ":raw, :signed, 200, '{}')"),
        {"id": MESSAGE_ID, "sender": "urn:x-safeguarding:agency:school:999101", "at": stamp, "sha": "a" * 64,
         "raw": '{"resourceType": "Bundle"}', "signed": '{"signed": true}'})
    connection.execute(text(
        "INSERT INTO message_person (message_id, record_id, resource, role, nhs_number, family, given, "
        "birth_date, postcode, postcode_district) VALUES (:id, 'referral', 'Patient/child', 'child', "
        "'9990000018', 'testchild', 'alex', '2012-03-04', 'SP10 1AA', 'SP10')"), {"id": MESSAGE_ID})
    connection.execute(text(
        "INSERT INTO directory_agency (uri, kind, code, name, delivery, endpoint) VALUES "
        "('urn:x-safeguarding:agency:la:999', 'la', '999', 'Fictional Borough', 'mailbox', NULL)"))
    connection.execute(text("INSERT INTO directory_school (urn, name, la_code) VALUES "
                            "('999101', 'Fictional Primary School', '999')"))
    connection.execute(text("INSERT INTO directory_postcode_district (district, la_code, source) VALUES "
                            "('SP10', '999', 'seed')"))
    connection.execute(text(
        "INSERT INTO delivery (id, message_id, kind, destination, mode, payload, payload_message_id, "
        "payload_header_id, state, attempts, next_attempt_at, expires_at, created_at, updated_at) VALUES "
        "('00000000-0000-4000-8000-00000000d001', :id, 'message', 'urn:x-safeguarding:agency:la:999', 'mailbox', "
        "'{}', :id, 'hdr-1', 'pending', 0, :at, :at, :at, :at)"), {"id": MESSAGE_ID, "at": stamp})
    connection.execute(text(
        "INSERT INTO delivery_unroutable (id, message_id, sender_agency, reason, created_at, resolved) VALUES "
        "('00000000-0000-4000-8000-00000000e001', :id, 'urn:x-safeguarding:agency:school:999101', "
        "'no routing rule', :at, :no)"), {"id": MESSAGE_ID, "at": stamp, "no": False})


def test_data_stored_at_the_baseline_is_still_there_and_readable_at_head(empty_engine):
    assert schema.upgrade(empty_engine, BASELINE) == BASELINE
    with empty_engine.begin() as connection:
        _insert_baseline_rows(connection)
    assert schema.upgrade(empty_engine) == schema.head()

    store = SqlMessageStore(empty_engine)
    assert store.find_accepted(MESSAGE_ID) == AcceptedMessage(
        message_id=MESSAGE_ID, sender_agency="urn:x-safeguarding:agency:school:999101", received_at=NOW,
        message_timestamp=NOW, payload_sha256="a" * 64, raw_message='{"resourceType": "Bundle"}',
        signed_message='{"signed": true}', response_status=200, response_body="{}")
    directory = Directory(empty_engine)
    assert directory.agency("urn:x-safeguarding:agency:la:999").name == "Fictional Borough"
    assert directory.la_of_school("999101") == "999"
    assert directory.la_for_postcode("SP10 1AA") == "999"
    with empty_engine.connect() as connection:
        person = connection.execute(text("SELECT nhs_number, family, birth_date FROM message_person "
                                         "WHERE message_id = :id"), {"id": MESSAGE_ID}).one()
        assert tuple(person) == ("9990000018", "testchild", "2012-03-04")
        assert connection.execute(text("SELECT state, destination FROM delivery")).one() == (
            "pending", "urn:x-safeguarding:agency:la:999")
        assert connection.execute(text("SELECT reason FROM delivery_unroutable")).scalar_one() == "no routing rule"


def test_a_failed_migration_keeps_nothing_of_the_upgrade(empty_url):
    """The upgrade is one transaction: a revision that fails leaves the database as it was."""
    engine = make_engine(empty_url)
    try:
        schema.upgrade(engine, BASELINE)
        with engine.connect() as connection:
            baseline_tables = set(inspect(connection).get_table_names())
        later = sorted(set(schema.metadata.tables) - baseline_tables)
        assert later, "no revision after the baseline adds a table: pick another way to fail one"
        with engine.begin() as connection:  # a table in the way of the last revision that creates one
            connection.execute(text(f"CREATE TABLE {later[-1]} (in_the_way INTEGER)"))
        with pytest.raises(sa.exc.OperationalError, match="already exists"):
            schema.upgrade(engine)
        assert schema.current(engine) == BASELINE
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == baseline_tables | {later[-1]}
    finally:
        engine.dispose()


# Refusing a database that is not at head --------------------------------------------------------------------

def test_the_store_refuses_an_empty_database_and_says_what_to_run(empty_url):
    with pytest.raises(schema.SchemaNotCurrent) as refused:
        SqlMessageStore.from_url(empty_url)
    assert "has no gateway schema" in str(refused.value)
    assert f"needs revision {schema.head()}: run `gateway db upgrade`" in str(refused.value)


def test_the_store_refuses_a_database_at_an_older_revision(empty_url):
    schema.upgrade(empty_url, BASELINE)
    with pytest.raises(schema.SchemaNotCurrent) as refused:
        SqlMessageStore.from_url(empty_url)
    assert str(refused.value) == (f"the database {empty_url} is at revision {BASELINE}; this gateway needs "
                                  f"{schema.head()}: run `gateway db upgrade`")


def test_the_store_refuses_a_database_from_a_newer_gateway(empty_url):
    schema.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()
    with pytest.raises(schema.SchemaNotCurrent, match="9999_from_the_future, which this gateway does not know"):
        SqlMessageStore.from_url(empty_url)


@pytest.mark.parametrize("command", [["directory", "list"], ["operator", "unroutable"], ["operator", "deliveries"]])
def test_commands_refuse_a_database_not_at_head(runner, empty_url, command):
    result = runner.invoke(main, command, env={"GATEWAY_DATABASE_URL": empty_url})
    assert result.exit_code == 1, result.output
    assert "run `gateway db upgrade`" in result.output and "Traceback" not in result.output


def test_the_worker_refuses_a_database_not_at_head(runner, empty_url, deployment):
    result = runner.invoke(main, ["worker", "--once", "--certs", str(deployment.dir)],
                           env={"GATEWAY_DATABASE_URL": empty_url})
    assert result.exit_code == 1, result.output
    assert f"needs revision {schema.head()}: run `gateway db upgrade`" in result.output


def test_serve_refuses_a_database_not_at_head_before_starting(runner, empty_url, deployment):
    result = runner.invoke(main, ["serve", "--certs", str(deployment.dir), "--port", "0"],
                           env={"GATEWAY_DATABASE_URL": empty_url})
    assert result.exit_code == 1, result.output
    assert f"needs revision {schema.head()}: run `gateway db upgrade`" in result.output


# gateway db ------------------------------------------------------------------------------------------------

def _db(runner, *args, url):
    return runner.invoke(main, ["db", *args], env={"GATEWAY_DATABASE_URL": url})


def test_db_current_check_and_upgrade(runner, empty_url):
    head = schema.head()
    current = _db(runner, "current", url=empty_url)
    assert current.exit_code == 0
    assert current.output == (f"{empty_url}: no revision (an empty database, or one made before migrations) "
                              f"(this gateway needs {head}: run `gateway db upgrade`)\n")
    check = _db(runner, "check", url=empty_url)
    assert check.exit_code == 1 and "run `gateway db upgrade`" in check.output

    upgraded = _db(runner, "upgrade", url=empty_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output == f"{empty_url}: upgraded from an empty database to {head}\n"
    assert _db(runner, "current", url=empty_url).output == f"{empty_url}: {head} (this gateway's revision)\n"
    assert _db(runner, "check", url=empty_url).exit_code == 0
    assert _db(runner, "upgrade", url=empty_url).output == f"{empty_url}: already at {head}\n"


def test_db_upgrade_to_a_named_revision_then_on(runner, empty_url):
    assert _db(runner, "upgrade", "--revision", BASELINE, url=empty_url).exit_code == 0
    assert schema.current(empty_url) == BASELINE
    assert f"{BASELINE} (this gateway needs {schema.head()}" in _db(runner, "current", url=empty_url).output
    assert _db(runner, "check", url=empty_url).exit_code == 1
    result = _db(runner, "upgrade", url=empty_url)
    assert result.output == f"{empty_url}: upgraded from {BASELINE} to {schema.head()}\n"


@pytest.mark.postgres
def test_db_upgrade_and_current_on_postgresql(runner, postgres_schema):
    assert _db(runner, "upgrade", url=postgres_schema.url).exit_code == 0
    result = _db(runner, "current", url=postgres_schema.url)
    assert result.exit_code == 0 and f"{schema.head()} (this gateway's revision)" in result.output


def test_db_errors_are_messages(runner, empty_url):
    unknown = _db(runner, "upgrade", "--revision", "0999_nothing", url=empty_url)
    assert unknown.exit_code == 1 and "0999_nothing" in unknown.output and "Traceback" not in unknown.output
    bad_url = runner.invoke(main, ["db", "current", "--database", "mysql://nobody@localhost/x"])
    assert bad_url.exit_code == 2 and "unsupported backend" in bad_url.output


def test_a_database_made_before_migrations_is_refused_then_stamped(runner, empty_url):
    """Tables made by the old ``create_all`` (the baseline's) but no revision: upgrade refuses; stamp, then upgrade."""
    schema.upgrade(empty_url, BASELINE)
    engine = make_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()
    refused = _db(runner, "upgrade", url=empty_url)
    assert refused.exit_code == 1
    assert "no schema revision: it was made before migrations" in refused.output
    assert "gateway db stamp 0001_baseline" in refused.output
    assert _db(runner, "stamp", BASELINE, url=empty_url).output == f"{empty_url}: stamped {BASELINE}\n"
    assert _db(runner, "upgrade", url=empty_url).exit_code == 0
    assert schema.current(empty_url) == schema.head()


def test_db_revision_writes_an_autogenerated_revision_on_head(runner, tmp_path):
    result = runner.invoke(main, ["db", "revision", "nothing changed", "--id", "9999_nothing",
                                  "--into", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (written,) = tmp_path.glob("*.py")
    assert written.name == "9999_nothing.py"
    source = written.read_text()
    assert f"down_revision: str | None = {schema.head()!r}" in source
    # The models match the migrations, so autogenerate found nothing to do.
    assert "def upgrade() -> None:\n    # ### commands auto generated by Alembic - please adjust! ###\n    pass" in source


def test_db_revision_wants_a_readable_id(runner):
    result = runner.invoke(main, ["db", "revision", "x", "--id", "abc123"])
    assert result.exit_code == 2 and "four digits and what it does" in result.output
