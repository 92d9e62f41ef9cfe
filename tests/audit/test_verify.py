"""``verify`` finds every kind of tampering by raw SQL, says where, and checks the signed checkpoints."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.audit.chain import canonical_record, chain_hash
from gateway.audit.checkpoints import checkpoint_due, checkpoint_if_due, write_checkpoint
from gateway.signing import pki
from gateway.signing.signatures import Signer, TrustAnchor
from tests.audit.conftest import T0, append, tamper


@pytest.fixture
def gateway_signer(deployment) -> Signer:
    return Signer.from_files(deployment.dir / pki.GATEWAY_CERT, deployment.dir / pki.GATEWAY_KEY)


@pytest.fixture
def trust(deployment) -> TrustAnchor:
    return TrustAnchor.from_files(deployment.ca, deployment.crl)


def _only(report):
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


def _forged(prev_hash: str, at: dt.datetime = T0) -> dict:
    """A record that chains properly to ``prev_hash`` (someone who knows the scheme, not the key)."""
    content = {"recorded": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "action": "R", "subtype": "read",
               "outcome": "success", "agent": "urn:x-safeguarding:agency:la:999", "entities": [], "detail": None}
    return {"recorded_at": at, "action": "R", "subtype": "read", "outcome": "success",
            "agent": content["agent"], "entities": "[]", "detail": None, "prev_hash": prev_hash,
            "hash": chain_hash(prev_hash, canonical_record(**content))}


def _as_stored(store, forged: dict) -> dict:
    """``forged`` with its time as the store keeps it (SQLAlchemy's text on SQLite), as a careful forger writes it."""
    if store.engine.dialect.name == "sqlite":
        return forged | {"recorded_at": forged["recorded_at"].strftime("%Y-%m-%d %H:%M:%S.%f")}
    return forged


def _hash_of(store, seq: int) -> str:
    from sqlalchemy import text

    with store.engine.connect() as connection:
        return connection.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}).scalar()


_INSERT = ("INSERT INTO audit_event (seq, recorded_at, action, subtype, outcome, agent, entities, detail, prev_hash, "
           "hash) VALUES (:seq, :recorded_at, :action, :subtype, :outcome, :agent, :entities, :detail, :prev_hash, "
           ":hash)")
_SHIFT_UP = ("UPDATE audit_event SET seq = -seq WHERE seq >= :k", "UPDATE audit_event SET seq = 1 - seq WHERE seq < 0")


def test_an_intact_chain_verifies(store, verify_now):
    append(store, 30)
    report = verify_now(store.engine)
    assert report.ok and report.records == 30 and report.head_seq == 30


def test_an_edited_record_is_found(store, verify_now):
    append(store, 30)
    tamper(store.engine, "UPDATE audit_event SET agent = 'urn:x-safeguarding:agency:school:999102' WHERE seq = 17")
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (17, "edited")


def test_an_edited_record_whose_hash_was_recomputed_is_found(store, verify_now):
    append(store, 30)
    forged = _as_stored(store, _forged(_hash_of(store, 16)))
    tamper(store.engine, "UPDATE audit_event SET action = 'R', subtype = 'read', entities = '[]', detail = NULL, "
           "agent = :agent, recorded_at = :recorded_at, hash = :hash WHERE seq = 17", **{
               k: forged[k] for k in ("agent", "recorded_at", "hash")})
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (17, "edited")


def test_a_deleted_record_is_found(store, verify_now):
    append(store, 30)
    tamper(store.engine, "DELETE FROM audit_event WHERE seq = 9")
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (9, "missing")


def test_deleted_last_records_are_found(store, verify_now):
    append(store, 30)
    tamper(store.engine, "DELETE FROM audit_event WHERE seq > 27")
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (28, "missing")


def test_a_record_inserted_in_the_middle_is_found(store, verify_now):
    append(store, 30)
    forged = _as_stored(store, _forged(_hash_of(store, 11)) | {"seq": 12})
    tamper(store.engine, *_SHIFT_UP, _INSERT, "UPDATE audit_chain_head SET seq = seq + 1", k=12, **forged)
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (12, "inserted")


def test_a_record_with_made_up_hashes_inserted_is_found(store, verify_now):
    append(store, 30)
    forged = _as_stored(store, _forged("ab" * 32) | {"seq": 12})
    tamper(store.engine, *_SHIFT_UP, _INSERT, "UPDATE audit_chain_head SET seq = seq + 1", k=12, **forged)
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (12, "inserted")


def test_a_record_added_past_the_head_is_found(store, verify_now):
    append(store, 30)
    tamper(store.engine, _INSERT, **_as_stored(store, _forged(_hash_of(store, 30)) | {"seq": 31}))
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (31, "inserted")


def test_reordered_records_are_found(store, verify_now):
    append(store, 30)
    tamper(store.engine, "UPDATE audit_event SET seq = -1 WHERE seq = 20",
           "UPDATE audit_event SET seq = 20 WHERE seq = 21", "UPDATE audit_event SET seq = 21 WHERE seq = -1")
    problem = _only(verify_now(store.engine))
    assert (problem.seq, problem.kind) == (20, "out-of-order")


def test_checkpoints_are_signed_by_the_gateway_and_verify(store, verify_now, gateway_signer, trust):
    append(store, 10)
    with store.engine.begin() as connection:
        made = write_checkpoint(connection, gateway_signer, now=dt.datetime.now(dt.timezone.utc))
        assert write_checkpoint(connection, gateway_signer, now=dt.datetime.now(dt.timezone.utc)) is None
    assert (made.seq, made.hash) == (10, _hash_of(store, 10))
    append(store, 5)
    with store.engine.begin() as connection:
        assert write_checkpoint(connection, gateway_signer, now=dt.datetime.now(dt.timezone.utc)).seq == 15
    report = verify_now(store.engine, trust)
    assert report.ok, report.problems
    assert report.checkpoints == 2


def _if_due(store, signer, **kwargs):
    with store.transaction() as unit:
        return checkpoint_if_due(unit.session.connection(), signer, **kwargs)


def test_a_checkpoint_is_due_after_the_setting_s_minutes(store, gateway_signer):
    append(store, 3)
    now = dt.datetime.now(dt.timezone.utc)
    assert _if_due(store, gateway_signer, now=now, minutes=15).seq == 3
    append(store, 2)
    with store.engine.connect() as connection:
        assert not checkpoint_due(connection, now=now + dt.timedelta(minutes=14), minutes=15)
        assert checkpoint_due(connection, now=now + dt.timedelta(minutes=15), minutes=15)
    assert _if_due(store, gateway_signer, now=now + dt.timedelta(minutes=5), minutes=15) is None
    assert _if_due(store, gateway_signer, now=now + dt.timedelta(minutes=16), minutes=15).seq == 5


def test_a_forged_checkpoint_is_found(store, verify_now, deployment, trust, tmp_path):
    """Signed by an agency's key (not the gateway's), or a checkpoint's hash edited after signing."""
    append(store, 10)
    school = Signer.from_files(deployment.school.with_suffix(".crt"), deployment.school.with_suffix(".key"))
    with store.engine.begin() as connection:
        write_checkpoint(connection, school, now=dt.datetime.now(dt.timezone.utc))
    problem = _only(verify_now(store.engine, trust))
    assert (problem.seq, problem.kind) == (10, "checkpoint-signature")
    assert "not by the gateway" in problem.message


def test_a_checkpoint_edited_after_signing_is_found(store, verify_now, gateway_signer, trust):
    append(store, 10)
    with store.engine.begin() as connection:
        write_checkpoint(connection, gateway_signer, now=dt.datetime.now(dt.timezone.utc))
    tamper(store.engine, "UPDATE audit_checkpoint SET seq = 9")
    kinds = {(p.seq, p.kind) for p in verify_now(store.engine, trust).problems}
    assert (9, "checkpoint-signature") in kinds and (9, "checkpoint-mismatch") in kinds


def test_a_chain_rewritten_from_a_record_on_disagrees_with_the_signed_checkpoint(store, verify_now, gateway_signer,
                                                                               trust):
    """Edit record 4 and recompute every hash after it: the chain is whole again, but not the one signed."""
    from sqlalchemy import text

    from gateway.audit.chain import stored_records

    append(store, 8)
    with store.engine.begin() as connection:
        write_checkpoint(connection, gateway_signer, now=dt.datetime.now(dt.timezone.utc))
    with store.engine.connect() as connection:
        records = list(stored_records(connection))
    prev, rewritten = records[2].hash, []
    for record in records[3:]:
        agent = "urn:x-safeguarding:agency:school:999102" if record.seq == 4 else record.agent
        content = json.loads(json.dumps({"recorded": record.recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                                         "action": record.action, "subtype": record.subtype,
                                         "outcome": record.outcome, "agent": agent, "entities": record.entities,
                                         "detail": record.detail}))
        new_hash = chain_hash(prev, canonical_record(**content))
        rewritten.append({"seq": record.seq, "agent": agent, "prev": prev, "hash": new_hash})
        prev = new_hash
    tamper(store.engine, "UPDATE audit_chain_head SET hash = :h", h=prev)
    with store.engine.begin() as connection:
        for row in rewritten:
            connection.execute(text("UPDATE audit_event SET agent = :agent, prev_hash = :prev, hash = :hash "
                                    "WHERE seq = :seq"), row)
    problem = _only(verify_now(store.engine, trust))
    assert (problem.seq, problem.kind) == (8, "checkpoint-mismatch")
