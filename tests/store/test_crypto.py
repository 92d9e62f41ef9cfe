"""Encryption at rest: the key ring, the envelope, the column types, and the errors an operator sees."""

from __future__ import annotations

import base64
import contextlib
import json
import logging

import pytest
from sqlalchemy import select, text

from gateway.config import Settings, SettingsError
from gateway.store import crypto, schema
from gateway.store.crypto import DEV_DATA_KEYS, DecryptionError, EncryptedText, KeyedHash, KeyRing
from gateway.store.models import AcceptedMessageRow


def ring(current: str = "k1", ids: tuple[str, ...] = ("k1",), **kwargs) -> KeyRing:
    """A key ring with deterministic keys per id (tests only)."""
    keys = {key_id: (key_id.encode() * 32)[:32] for key_id in ids}
    return KeyRing(keys=keys, current=current, hash_key=b"h" * 32, **kwargs)


@contextlib.contextmanager
def ring_in_use(used: KeyRing):
    """Make ``used`` the process's ring for a block, then put the previous one back."""
    before = crypto._ring
    crypto.use(used)
    try:
        yield used
    finally:
        crypto._ring = before


def write_key_file(path, keys: dict[str, bytes], current: str, hash_key: bytes = b"h" * 32):
    path.write_text(crypto.key_file_text({k: base64.b64encode(v).decode() for k, v in keys.items()}, current,
                                         base64.b64encode(hash_key).decode()))
    return path


# -- the envelope -------------------------------------------------------------------------------------------

def test_an_envelope_names_its_key_and_hides_the_text():
    keys = ring()
    sealed = keys.encrypt("Ella Marsh, born 2016-03-10", "message_person.given")
    version, key_id, body = sealed.split(":", 2)
    assert (version, key_id) == ("v1", "k1")
    assert "Ella" not in sealed and "2016" not in sealed
    assert len(base64.b64decode(body)) == 12 + len("Ella Marsh, born 2016-03-10".encode()) + 16  # nonce, text, tag
    assert keys.decrypt(sealed, "message_person.given") == "Ella Marsh, born 2016-03-10"


def test_the_same_text_encrypts_differently_each_time():
    keys = ring()
    assert keys.encrypt("Marsh", "message_person.family") != keys.encrypt("Marsh", "message_person.family")


def test_a_ciphertext_moved_to_another_column_does_not_decrypt():
    keys = ring()
    sealed = keys.encrypt("Marsh", "message_person.family")
    with pytest.raises(DecryptionError, match="message_person.given.*moved from another column"):
        keys.decrypt(sealed, "message_person.given")


@pytest.mark.parametrize("damage", [
    lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],          # a changed byte of the tag
    lambda s: s.replace("v1:k1:", "v1:k1:AAAA", 1),                      # bytes added
    lambda s: s[: len("v1:k1:") + 8],                                    # cut short
    lambda s: s + "!",                                                   # no longer base64
    lambda s: s[:-4] + "é" + s[-3:],                                     # not even ASCII
    lambda s: s[:-4] + " " + s[-3:],                                     # whitespace inside
    lambda s: s[:-1] + "=" if s[-1] != "=" else s[:-2] + "==",           # padding where there is none
])
def test_a_tampered_ciphertext_fails_loudly(damage):
    keys = ring()
    sealed = keys.encrypt("Marsh", "message_person.family")
    with pytest.raises(DecryptionError, match="message_person.family"):
        keys.decrypt(damage(sealed), "message_person.family")


def test_an_unknown_key_or_version_is_named():
    sealed = ring("k2", ("k1", "k2")).encrypt("Marsh", "message_person.family")
    with pytest.raises(DecryptionError, match="key 'k2'.*does not hold"):
        ring().decrypt(sealed, "message_person.family")
    with pytest.raises(DecryptionError, match="envelope v2"):
        ring().decrypt("v2:k1:AAAA", "message_person.family")


def test_a_clear_value_from_before_encryption_reads_as_it_is():
    assert ring().decrypt("Marsh", "message_person.family") == "Marsh"
    assert ring().decrypt('{"resourceType": "Bundle"}', "accepted_message.raw_message") == '{"resourceType": "Bundle"}'


def test_look_up_hashes_are_keyed_equal_for_equal_values_and_fit_the_column():
    one, other = ring(), KeyRing(keys={"k1": b"k" * 32}, current="k1", hash_key=b"x" * 32)
    assert one.lookup_hash("nhs:9990000018") == one.lookup_hash("nhs:9990000018")
    assert one.lookup_hash("nhs:9990000018") != one.lookup_hash("nhs:9990000026")
    assert one.lookup_hash("nhs:9990000018") != other.lookup_hash("nhs:9990000018")  # keyed
    assert "999" not in one.lookup_hash("nhs:9990000018") and len(one.lookup_hash("nhs:9990000018")) <= 64


def test_off_writes_clear_values_and_still_reads_envelopes():
    on, off = ring(), ring(enabled=False)
    assert off.encrypt("Marsh", "message_person.family") == "Marsh"
    assert off.lookup_hash("nhs:9990000018") == "nhs:9990000018"
    assert off.decrypt(on.encrypt("Marsh", "message_person.family"), "message_person.family") == "Marsh"


# -- the key file and the settings ----------------------------------------------------------------------------

def test_the_key_file_loads(tmp_path):
    path = write_key_file(tmp_path / "keys.json", {"a": b"a" * 32, "b": b"b" * 32}, "b")
    loaded = KeyRing.from_settings(Settings(data_keys=path))
    assert (loaded.current, sorted(loaded.keys), loaded.enabled) == ("b", ["a", "b"], True)
    assert loaded.decrypt(loaded.encrypt("x", "t.c"), "t.c") == "x"


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read the key file"),
    ("not json", "not JSON"),
    (json.dumps({"current": "a"}), "needs \"keys\""),
    (json.dumps({"current": "z", "keys": {"a": base64.b64encode(b"a" * 32).decode()},
                 "hash_key": base64.b64encode(b"h" * 32).decode()}), "current key 'z' is not among the keys"),
    (json.dumps({"current": "a", "keys": {"a": base64.b64encode(b"a" * 16).decode()},
                 "hash_key": base64.b64encode(b"h" * 32).decode()}), "16 bytes; AES-256 needs 32"),
    (json.dumps({"current": "a", "keys": {"a": "***"}, "hash_key": "x"}), "not base64"),
    (json.dumps({"current": "a", "keys": {"a": base64.b64encode(b"a" * 32).decode()}}), "hash key has 0 bytes"),
])
def test_a_wrong_or_missing_key_file_is_a_clear_error_naming_the_setting(tmp_path, content, expected):
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=f"GATEWAY_DATA_KEYS.*{expected}"):
        KeyRing.from_settings(Settings(data_keys=path))


def test_the_app_refuses_to_start_without_its_keys(tmp_path):
    from gateway.app import create_app

    with ring_in_use(ring()), pytest.raises(SettingsError, match="GATEWAY_DATA_KEYS"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", data_keys=tmp_path / "missing.json"))


def test_encrypt_at_rest_takes_on_or_off():
    with pytest.raises(SettingsError, match="GATEWAY_ENCRYPT_AT_REST='maybe'"):
        KeyRing.from_settings(Settings(encrypt_at_rest="maybe"))
    assert KeyRing.from_settings(Settings(encrypt_at_rest="off")).enabled is False


def test_settings_read_the_key_file_and_the_switch_from_the_environment(tmp_path):
    settings = Settings.from_env({"GATEWAY_DATA_KEYS": str(tmp_path / "k.json"), "GATEWAY_ENCRYPT_AT_REST": "off"})
    assert (settings.data_keys, settings.encrypt_at_rest) == (tmp_path / "k.json", "off")


def test_the_development_key_file_is_used_when_unset_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.store.crypto"):
        loaded = KeyRing.from_settings(Settings())
    assert loaded.source == str(DEV_DATA_KEYS)
    assert "DEVELOPMENT DATA KEYS" in caplog.text and "never use it for real data" in caplog.text


# -- the column types -----------------------------------------------------------------------------------------

def test_every_encrypted_column_is_bound_to_its_own_table_and_column():
    encrypted = [(table.name, column.name, column.type.binding) for table in schema.metadata.tables.values()
                 for column in table.columns if isinstance(column.type, EncryptedText)]
    assert encrypted, "no encrypted column"
    assert [(f"{t}.{c}") for t, c, _ in encrypted] == [binding for _, _, binding in encrypted]


def test_sql_equality_or_order_on_an_encrypted_column_is_refused():
    column = AcceptedMessageRow.__table__.c.raw_message
    for compare in (lambda: column == "x", lambda: column.in_(["x"]), lambda: column.like("x%"),
                    lambda: column.asc()):
        with pytest.raises(TypeError, match="accepted_message.raw_message is encrypted"):
            compare()
    assert str(column.is_(None)) and str(column.is_not(None))  # NULL tests stay possible


def test_a_stored_message_is_encrypted_in_the_database_and_clear_through_the_store(store, make_message):
    import datetime as dt

    from gateway.store.interfaces import AcceptedMessage

    bundle = json.dumps(make_message())
    now = dt.datetime.now(dt.timezone.utc)
    message = AcceptedMessage(message_id="urn:uuid:enc-1", sender_agency="urn:x-safeguarding:agency:school:999101",
                              received_at=now, message_timestamp=now, payload_sha256="0" * 64, raw_message=bundle,
                              signed_message=bundle, response_status=200, response_body='{"issue": "Testchild"}')
    with ring_in_use(ring()):
        with store.transaction() as unit:
            unit.messages.add(message)
        assert store.find_accepted("urn:uuid:enc-1") == message
        with store.engine.connect() as connection:
            stored = connection.execute(text("SELECT raw_message, signed_message, response_body "
                                             "FROM accepted_message")).one()
        assert all(value.startswith("v1:k1:") and "Testchild" not in value for value in stored)
        with store.engine.connect() as connection:  # the ORM reads decrypt too
            assert connection.execute(select(AcceptedMessageRow.raw_message)).scalar_one() == bundle
def test_the_look_up_columns_are_keyed_hashes():
    hashed = {f"{table.name}.{column.name}" for table in schema.metadata.tables.values()
              for column in table.columns if isinstance(column.type, KeyedHash)}
    assert "person_link_key.key" in hashed




@pytest.fixture
def fresh_process():
    """The process as it starts: no key ring loaded yet (put back afterwards)."""
    before = crypto._ring
    crypto._ring = None
    yield
    crypto._ring = before


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker", "--once"], ["keys", "status"],
                                     ["people", "export"]])
def test_commands_refuse_to_start_without_their_keys(command, fresh_process, tmp_path, deployment, upgraded_sqlite):
    from click.testing import CliRunner

    from gateway.cli import main

    env = {"GATEWAY_DATA_KEYS": str(tmp_path / "missing.json"), "GATEWAY_CERTS_DIR": str(deployment.dir),
           "GATEWAY_DATABASE_URL": upgraded_sqlite(tmp_path / "g.sqlite3")}
    if command[0] == "serve":
        command = [*command, "--certs", str(deployment.dir)]
    result = CliRunner().invoke(main, command, env=env)
    assert result.exit_code != 0
    assert "GATEWAY_DATA_KEYS" in result.output and "cannot read the key file" in result.output
    assert "Traceback" not in result.output


def _accept_one(store, message_id: str = "urn:uuid:enc-2") -> None:
    import datetime as dt

    from gateway.store.interfaces import AcceptedMessage

    now = dt.datetime.now(dt.timezone.utc)
    with store.transaction() as unit:
        unit.messages.add(AcceptedMessage(
            message_id=message_id, sender_agency="urn:x-safeguarding:agency:school:999101", received_at=now,
            message_timestamp=now, payload_sha256="0" * 64, raw_message="{}", signed_message="{}",
            response_status=200, response_body="{}"))


def test_a_key_file_that_does_not_decrypt_the_database_is_found_at_start(store, tmp_path):
    """The wrong file (same key id, another key) is found by the start-up check, not at the first read."""
    with ring_in_use(ring()):
        _accept_one(store)
        with store.engine.connect() as connection:
            crypto.check_database(connection)  # the right keys pass
    wrong = write_key_file(tmp_path / "wrong.json", {"k1": b"w" * 32}, "k1")
    with ring_in_use(KeyRing.load(wrong)), store.engine.connect() as connection:
        with pytest.raises(SettingsError, match="GATEWAY_DATA_KEYS.*do not decrypt this database.*not the key it"):
            crypto.check_database(connection)
    with ring_in_use(ring("k2", ("k2",))), store.engine.connect() as connection:
        with pytest.raises(SettingsError, match="GATEWAY_DATA_KEYS.*key 'k1', which the key ring"):
            crypto.check_database(connection)


def test_a_command_with_the_wrong_key_file_stops_naming_it(fresh_process, tmp_path, upgraded_sqlite):
    from click.testing import CliRunner

    from gateway.cli import main
    from gateway.store import open_store

    url = upgraded_sqlite(tmp_path / "g.sqlite3")
    right = write_key_file(tmp_path / "right.json", {"k1": b"r" * 32}, "k1")
    with ring_in_use(KeyRing.load(right)):
        made = open_store(url)
        _accept_one(made)
        made.close()
    wrong = write_key_file(tmp_path / "wrong.json", {"k1": b"w" * 32}, "k1")
    result = CliRunner().invoke(main, ["people", "export"], env={"GATEWAY_DATA_KEYS": str(wrong),
                                                                 "GATEWAY_DATABASE_URL": url})
    assert result.exit_code != 0 and "do not decrypt this database" in result.output
    assert "Traceback" not in result.output
    ok = CliRunner().invoke(main, ["keys", "status"], env={"GATEWAY_DATA_KEYS": str(right),
                                                           "GATEWAY_DATABASE_URL": url})
    assert ok.exit_code == 0, ok.output
