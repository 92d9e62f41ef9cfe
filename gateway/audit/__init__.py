"""The audit log: a hash-chained, append-only record of every action on safeguarding data.

Every submission, refusal, translation, validation, routing decision,
delivery attempt, acknowledgement, read of personal data, decision, link
confirmation and configuration change appends one record with
:func:`record_audit`, in the transaction of the action itself. Records are
shaped like FHIR AuditEvents (IHE Basic Audit Log Patterns) and hold ids and
codes only. ``gateway audit verify`` proves the chain whole and checks the
checkpoints the gateway signs; ``gateway audit export`` writes AuditEvent
NDJSON for a SIEM. See ``docs/audit.md``.
"""

from __future__ import annotations

from gateway.audit.chain import ACTIONS, OUTCOMES, SUBTYPES, AuditChainError, record_audit

_switch = {"enabled": True}


def configure(settings) -> None:
    """Switch the audit log on or off for this process from ``settings.audit_log`` ("on" / "off").

    Off exists only for the benchmark's baseline (``bench/audit.py``); a
    deployment never turns it off. Raises :class:`ValueError` for any other value.
    """
    value = getattr(settings, "audit_log", "on")
    if value not in ("on", "off"):
        raise ValueError(f"GATEWAY_AUDIT_LOG={value!r}: use on or off")
    _switch["enabled"] = value == "on"


def enabled() -> bool:
    """Return whether :func:`record_audit` writes (see :func:`configure`)."""
    return _switch["enabled"]


__all__ = ["ACTIONS", "OUTCOMES", "SUBTYPES", "AuditChainError", "configure", "enabled", "record_audit"]
