"""Checkpoints: the audit chain's hash at a sequence number, signed with the gateway's own key.

A checkpoint is the gateway's signature (ES256 JWS over RFC 8785 JSON, the
same as it signs messages with: :mod:`gateway.signing.signatures`) over
``{"auditCheckpoint": {"seq": N, "hash": H}}``. Someone who rewrote the chain
from some record on and recomputed every hash after it would also need the
gateway's private key to make the checkpoints agree. The worker's
housekeeping writes one when ``audit_checkpoint_minutes`` have passed since
the last (:func:`checkpoint_if_due`); ``gateway audit checkpoint`` writes one
at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import Connection, func, insert, select

from gateway.audit.chain import head
from gateway.audit.models import AuditCheckpointRow
from gateway.model.systems import parse_agency_uri
from gateway.signing.signatures import (
    Signer,
    TrustAnchor,
    UntrustedMessage,
    sign_message,
    signed_payload,
    verify_signature,
)

_CHECKPOINT = AuditCheckpointRow.__table__


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint as stored."""

    id: int
    seq: int
    hash: str
    signed_at: dt.datetime
    signature: str


def _payload(seq: int, chain_hash: str) -> dict:
    return {"auditCheckpoint": {"seq": seq, "hash": chain_hash}}


def write_checkpoint(connection: Connection, signer: Signer, *, now: dt.datetime) -> Checkpoint | None:
    """Sign the chain's head as it is in ``connection``'s transaction and store the checkpoint; return it.

    Returns ``None`` when the chain is empty or the newest checkpoint already
    covers its head (nothing new to vouch for).
    """
    current = head(connection)
    if current is None or current[0] == 0:
        return None
    seq, chain_hash = current
    newest = connection.execute(select(func.max(_CHECKPOINT.c.seq))).scalar()
    if newest is not None and newest >= seq:
        return None
    signature = json.dumps(sign_message(_payload(seq, chain_hash), signer, now=now)["signature"],
                           separators=(",", ":"))
    new_id = connection.execute(insert(_CHECKPOINT).returning(_CHECKPOINT.c.id),
                                {"seq": seq, "hash": chain_hash, "signed_at": now, "signature": signature}).scalar()
    return Checkpoint(new_id, seq, chain_hash, now, signature)


def checkpoint_due(connection: Connection, *, now: dt.datetime, minutes: int) -> bool:
    """Return whether ``minutes`` have passed since the newest checkpoint (or there is none yet)."""
    newest = connection.execute(select(func.max(_CHECKPOINT.c.signed_at))).scalar()
    if newest is None:
        return True
    if newest.tzinfo is None:  # SQLite through a plain select of max(): UTC without its zone
        newest = newest.replace(tzinfo=dt.timezone.utc)
    return now - newest >= dt.timedelta(minutes=minutes)


def checkpoint_if_due(connection: Connection, signer: Signer, *, now: dt.datetime,
                      minutes: int) -> Checkpoint | None:
    """The worker's housekeeping: in ``connection``'s transaction, write a checkpoint when one is due (see
    :func:`checkpoint_due`); return it, or ``None``."""
    if not checkpoint_due(connection, now=now, minutes=minutes):
        return None
    return write_checkpoint(connection, signer, now=now)


def checkpoints(connection: Connection) -> list[Checkpoint]:
    """Return every checkpoint, by sequence number (a few a day: they fit in memory)."""
    rows = connection.execute(select(_CHECKPOINT.c.id, _CHECKPOINT.c.seq, _CHECKPOINT.c.hash,
                                     _CHECKPOINT.c.signed_at, _CHECKPOINT.c.signature)
                              .order_by(_CHECKPOINT.c.seq, _CHECKPOINT.c.id)).all()
    return [Checkpoint(*row) for row in rows]


def signature_problem(checkpoint: Checkpoint, trust: TrustAnchor, *, now: dt.datetime) -> str | None:
    """Return why ``checkpoint``'s signature cannot be trusted, or ``None`` when the gateway made it.

    The signature must be over the checkpoint's own ``seq`` and ``hash``,
    by a certificate of the deployment CA that names a gateway (not an
    agency), valid and not revoked when it signed.
    """
    try:
        signature = json.loads(checkpoint.signature)
    except ValueError:
        return "its signature is not JSON"
    if not isinstance(signature, dict):
        return "its signature is not a JSON object"
    try:
        verified = verify_signature(signature, signed_payload(_payload(checkpoint.seq, checkpoint.hash)), trust,
                                    now=now, role="checkpoint signature")
    except UntrustedMessage as exc:
        return str(exc)
    signer = parse_agency_uri(verified.agency)
    if signer is None or signer[0] != "gateway":
        return f"it was signed by {verified.agency}, not by the gateway"
    return None
