"""Encryption at rest through the real gateway: a copied database shows no child, the index still links,
and rotation (also while messages are accepted) leaves everything readable with the new key alone.

Family A goes in through the accept path of the real app on both engines
(the fixture of tests/linkage/test_services.py). What must not be found in
the database is derived from the inputs: every person the translated
messages name (names as sent and as folded, birth dates, postcodes, NHS
numbers, UPNs) and every narrative they carry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import String, Text, insert, inspect, select, text, type_coerce

from gateway.adapters import get_adapter
from gateway.config import Settings
from gateway.linkage.index import PersonIndex
from gateway.linkage.matching import MatchModel, blocking_keys, normalise
from gateway.linkage.models import LinkKeyRow
from gateway.linkage.records import people_of
from gateway.model import build_bundle
from gateway.routing import Directory
from gateway.store import crypto, schema
from gateway.store.crypto import DecryptionError
from gateway.store.keys import remaining, rotate
from gateway.store.models import AcceptedMessageRow, MessagePersonRow

from tests.linkage.test_services import (  # noqa: F401  (the family fixture: Family A through the accept path)
    DATA,
    DISCLOSURE_DAY,
    DORSET,
    SCHOOL,
    _children,
    family,
)
from tests.store.test_crypto import ring, ring_in_use

LEO_DAY = dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00")
_INPUTS = (("ppn-xml", "dorset-police-ppn.xml"), ("schoolsafe-csv", "riverside-infant-school.csv"),
           ("concernhub-json", "concernhub-example.json"))
#: Fields of a message that carry a narrative (what someone wrote about the child).
_NARRATIVE_KEYS = {"text", "valueString", "description", "comment"}


def _translated() -> list[dict]:
    bundles = []
    for format_id, name in _INPUTS:
        adapter = get_adapter(format_id)
        with open(DATA / name, "rb") as stream:
            for record in adapter.records(stream, name):
                for content in adapter.translate(record, filename=name, now=DISCLOSURE_DAY):
                    bundles.append(build_bundle(content, now=DISCLOSURE_DAY))
    return bundles


def _narratives(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NARRATIVE_KEYS and isinstance(value, str) and len(value) >= 30:
                out.add(value)
            _narratives(value, out)
    elif isinstance(node, list):
        for item in node:
            _narratives(item, out)
    return out


def needles() -> set[str]:
    """What a copied database must not show, from Family A's inputs (case-sensitive; 4 characters at least:
    shorter ones are no names or identifiers)."""
    found: set[str] = set()
    for bundle in _translated():
        for person in people_of(bundle):
            for field in ("given", "family", "birth_date", "postcode", "nhs_number", "upn"):
                if person.get(field):
                    found.add(person[field])
        for entry in bundle.get("entry", ()):
            resource = entry.get("resource", {})
            if resource.get("resourceType") in ("Patient", "RelatedPerson"):
                for name in resource.get("name", ()):
                    found.update([name.get("family") or "", *name.get("given", ())])
                found.add(resource.get("birthDate") or "")
                found.update(a.get("postalCode") or "" for a in resource.get("address", ()))
                found.update(i.get("value") or "" for i in resource.get("identifier", ()))
            if resource.get("resourceType") not in ("MessageHeader", "Organization", "Practitioner",
                                                    "PractitionerRole"):
                for narrative in _narratives(resource, set()):
                    found.add(narrative[:60])  # a long narrative's start is enough to find it
    return {n for n in found if len(n) >= 3}


def test_the_needles_are_the_children_and_what_was_written_about_them():
    found = needles()
    assert {"parker", "mia rose", "2013-05-14", "SP10 1AA"} <= found          # folded as stored, and as sent
    assert any(" " in n and len(n) >= 30 for n in found)                       # narratives
    assert any(re.fullmatch(r"[A-Z]\d{12}", n) for n in found)                 # a UPN


def _dump(family) -> str:
    """Every stored byte (SQLite: the database file itself) or every text column of every table (PostgreSQL)."""
    engine = family.store.engine
    if engine.dialect.name == "sqlite":
        family.store.close()  # checkpoints the WAL into the file, as a copy of a quiet database would be
        path = Path(engine.url.database)
        data = path.read_bytes()
        with contextlib.suppress(FileNotFoundError):  # and what the WAL holds besides
            data += path.with_name(path.name + "-wal").read_bytes()
        return data.decode("latin-1")
    parts = []
    with engine.connect() as connection:
        columns = connection.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying')")).all()
        assert len(columns) > 40
        for table, column in columns:
            parts += [v for v in connection.execute(text(f'SELECT "{column}" FROM "{table}"')).scalars() if v]
    return "\n".join(parts)


_SEALED = re.compile(r"v1:[A-Za-z0-9_-]+:[A-Za-z0-9+/]+=*|h1:[A-Za-z0-9_-]{43}")


def _clear_values(family) -> str:
    """Every value of every text column of every table, read as stored, except envelopes and keyed hashes."""
    engine = family.store.engine
    found = []
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if isinstance(column["type"], String):  # TEXT and VARCHAR
                    found += [v for v in connection.execute(text(f'SELECT "{column["name"]}" FROM "{table}"'))
                              .scalars() if isinstance(v, str) and not _SEALED.fullmatch(v)]
    assert len(found) > 100  # ids, codes, times and agency URIs stay clear
    return "\n".join(found)


def _scenario(family) -> None:
    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"), LEO_DAY)


def test_a_copied_database_shows_no_names_narratives_or_identifiers(family):
    _scenario(family)
    children = _children(family)  # read back decrypted: the index linked police and school records
    assert children[("mia rose", DORSET)] == children[("mia rose", SCHOOL)]
    assert children[("leo", DORSET)] == children[("leo", SCHOOL)] != children[("mia rose", DORSET)]
    dump = _dump(family)
    assert "v1:dev-1:" in dump  # encrypted under the development key (the fixture's settings leave it unset)
    # Random ciphertext holds any short string by chance (a 4-letter one about once in 16 million places): the
    # file's bytes are searched for the needles of 6 characters or more, every stored value for all of them.
    assert sorted(n for n in needles() if len(n) >= 6 and n in dump) == []
    values = _clear_values(family)
    assert sorted(n for n in needles() if n in values) == []


def test_with_encryption_off_the_same_dump_shows_them(family):
    """The check above can fail: the benchmarks' baseline (encryption off) stores the same run in clear."""
    with ring_in_use(crypto.KeyRing.from_settings(Settings(encrypt_at_rest="off"))):
        _scenario(family)
        dump = _dump(family)
    assert {"parker", "mia rose", "2013-05-14", "SP10 1AA"} <= {n for n in needles() if n in dump}


# -- rotation -----------------------------------------------------------------------------------------------

def _everything(engine) -> dict:
    """Every row of every table, read through the models (so every encrypted value is decrypted)."""
    out = {}
    with engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            key = [c for c in table.primary_key.columns] or list(table.columns)
            out[table.name] = [tuple(row) for row in connection.execute(select(table).order_by(*key))]
    return out


def _raw_values(engine, column) -> list[str]:
    with engine.connect() as connection:
        return [v for v in connection.execute(select(type_coerce(column, Text))).scalars() if v is not None]


@pytest.fixture
def keys_back():
    """Put the process's key ring back after a test that changes it."""
    before = crypto._ring
    yield
    crypto._ring = before


def test_rotate_then_remove_the_old_key_and_everything_still_reads(family, keys_back):
    crypto.use(ring("k1"))
    _scenario(family)
    engine = family.store.engine
    before = _everything(engine)
    summary = MessagePersonRow.__table__.c.given
    assert all(v.startswith("v1:k1:") for v in _raw_values(engine, summary))

    crypto.use(ring("k2", ("k1", "k2")))
    seen = []
    results = rotate(family.store, batch_size=3, progress=lambda p: seen.append((p.table, p.rows, p.done)))
    assert sum(p.rewritten for p in results) > 100 and all(p.done for p in results)
    assert len([s for s in seen if s[0] == "message_person"]) > 2  # several batches, each reported
    assert set(remaining(family.store).values()) == {0}
    assert all(v.startswith("v1:k2:") for v in _raw_values(engine, summary))

    crypto.use(ring("k2", ("k2",)))  # the old key removed from the ring
    after = _everything(engine)
    rotations = [row for row in after["audit_event"] if "key-rotation" in row]
    assert len(rotations) == 1  # the rotation's audit record (ids and counts only) is the one row more
    assert {k: v for k, v in after.items() if not k.startswith("audit_")} == {
        k: v for k, v in before.items() if not k.startswith("audit_")}
    assert rotate(family.store, batch_size=50)[0].rewritten == 0  # run again: nothing left to do

    crypto.use(ring("k1", ("k1",)))  # only the old key: a loud error naming the missing key, never a clear value
    with pytest.raises(DecryptionError, match="key 'k2'"):
        _everything(engine)


def test_rotate_encrypts_clear_rows_from_before_and_hashes_their_keys_so_the_index_finds_them(store, keys_back):
    """A database upgraded from before encryption holds clear personal data and clear blocking keys."""
    crypto.use(ring("k1"))
    model = MatchModel.load()
    now = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
    leo = dict(given="Leo", family="Parker", birth_date="2015-11-02", postcode="SP10 1AA", upn="K850210119003")
    mp, keys = MessagePersonRow.__table__, LinkKeyRow.__table__
    with store.transaction() as unit:  # written as the gateway wrote them before: clear values, clear keys
        connection = unit.session.connection()
        person = PersonIndex(connection, model).new_person(kind="child", now=now)
        record = normalise(**leo)
        clear = {f: type_coerce(getattr(record, f), String) for f in ("given", "family", "birth_date", "postcode",
                                                                          "upn") if getattr(record, f)}
        record_id = connection.execute(insert(mp).values(resource="Patient/old", role="child", person_id=person,
                                                         **clear).returning(mp.c.id)).scalar_one()
        for key in blocking_keys(record):
            connection.execute(insert(keys).values(key=type_coerce(key, String), record_id=record_id))
    assert "K850210119003" in _raw_values(store.engine, mp.c.upn)
    with store.engine.connect() as connection:  # clear rows read as they are meanwhile
        assert connection.execute(select(mp.c.upn)).scalar_one() == "K850210119003"

    results = {p.table: p for p in rotate(store, batch_size=2)}
    assert results["person_link_key.key"].rewritten == len(blocking_keys(record))
    assert set(remaining(store).values()) == {0}
    assert not any("K850210119003" in v or "parker" in v for v in _raw_values(store.engine, mp.c.upn)
                   + _raw_values(store.engine, mp.c.family) + _raw_values(store.engine, keys.c.key))
    with store.transaction() as unit:  # the same child sent again finds the old record through the hashes
        linked = PersonIndex(unit.session.connection(), model).add(
            {"resource": "Patient/new", "role": "child", **{f: getattr(record, f) for f in
                                                           ("given", "family", "birth_date", "postcode", "upn")}},
            record, kind="child", now=now)
    assert (linked.decision, linked.person_id) == ("linked", person)


def test_rotation_while_the_gateway_accepts_messages(family, keys_back):
    """Batches of one row interleave with the accept path's transactions; afterwards nothing is left under the
    old key and the new key alone reads everything, on both engines."""
    import bench.accept_linkage as bench

    crypto.use(ring("k1"))
    batches = bench._batches(bench._export(60, seed=3), 10)
    bench._connect_schools(Directory(family.store.engine), batches)
    for school, batch in batches[:2]:  # something to rotate before the accepts start
        family.ingest(f"urn:x-safeguarding:agency:school:{school}", "schoolsafe-csv", batch, DISCLOSURE_DAY,
                      concerns=True)
    crypto.use(ring("k2", ("k1", "k2")))  # the gateway restarted with the new key; now rotate beside it
    failures = []

    def accept():
        try:
            for school, batch in batches[2:]:
                family.ingest(f"urn:x-safeguarding:agency:school:{school}", "schoolsafe-csv", batch,
                              DISCLOSURE_DAY, concerns=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=accept)
    thread.start()
    rounds = 0
    while thread.is_alive() or rounds == 0:
        rotate(family.store, batch_size=1)
        rounds += 1
    thread.join()
    assert failures == []
    rotate(family.store, batch_size=1)
    assert set(remaining(family.store).values()) == {0}
    crypto.use(ring("k2", ("k2",)))
    everything = _everything(family.store.engine)
    assert len(everything["accepted_message"]) >= 50
    with family.store.engine.connect() as connection:
        for raw in connection.execute(select(AcceptedMessageRow.raw_message)).scalars():
            assert json.loads(raw)["resourceType"] == "Bundle"


def test_gateway_keys_commands(tmp_path, keys_back, upgraded_sqlite):
    from gateway.cli import main

    runner = CliRunner()
    path = tmp_path / "keys.json"
    made = runner.invoke(main, ["keys", "new", str(path), "--id", "a"])
    assert made.exit_code == 0, made.output
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(main, ["keys", "new", str(path)]).exit_code != 0  # never overwrites keys
    env = {"GATEWAY_DATA_KEYS": str(path), "GATEWAY_DATABASE_URL": upgraded_sqlite(tmp_path / "g.sqlite3")}
    rotated = runner.invoke(main, ["keys", "rotate", "--batch-size", "10"], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "rotated to key a" in rotated.output and "accepted_message" in rotated.output
    added = runner.invoke(main, ["keys", "add", str(path), "--id", "b"])
    assert added.exit_code == 0 and json.loads(path.read_text())["current"] == "b"
    status = runner.invoke(main, ["keys", "status"], env=env)
    assert status.exit_code == 0 and "current key b; keys held: a, b" in status.output
    bad = runner.invoke(main, ["keys", "rotate"], env={**env, "GATEWAY_DATA_KEYS": str(tmp_path / "none.json")})
    assert bad.exit_code != 0 and "GATEWAY_DATA_KEYS" in bad.output


def test_a_tampered_or_moved_ciphertext_in_the_database_fails_loudly(store, keys_back):
    """Edited by raw SQL, the way someone with the database but not the keys could: never read as a value."""
    crypto.use(ring("k1"))
    mp = MessagePersonRow.__table__
    with store.transaction() as unit:
        unit.session.connection().execute(insert(mp).values(resource="Patient/x", role="child", given="mia rose",
                                                            family="parker"))
    given, family = (_raw_values(store.engine, mp.c.given)[0], _raw_values(store.engine, mp.c.family)[0])
    flipped = given[:-3] + ("A" if given[-3] != "A" else "B") + given[-2:]
    for stored, error in ((flipped, "message_person.given: .* does not decrypt"),
                          (family, "message_person.given: .* moved from another column")):
        with store.transaction() as unit:
            unit.session.connection().execute(mp.update().values(given=type_coerce(stored, Text)))
        with store.engine.connect() as connection, pytest.raises(DecryptionError, match=error):
            connection.execute(select(mp.c.given)).all()
