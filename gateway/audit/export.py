"""``gateway audit export``: the audit records as FHIR R4 AuditEvents, one JSON per line (NDJSON), for a SIEM.

Shaped after IHE Basic Audit Log Patterns: ``type`` from DICOM's audit event
types, the gateway's own ``subtype``, the action, when it was recorded, the
outcome, who acted (``agent`` with ``requestor``), the gateway as ``source``
observer, and what was acted on (``entity.what``: ids only). Each event
carries its place in the chain (sequence number and hash) in an extension,
so a SIEM can ask ``gateway audit verify`` about any event it holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import IO

from sqlalchemy import Connection

from gateway.audit.chain import OUTCOMES, StoredRecord, stored_records
from gateway.model.systems import BASE, GATEWAY_ID, parse_agency_uri

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SUBTYPE_SYSTEM = f"{BASE}/CodeSystem/audit-subtype"
ENTITY_SYSTEM = f"{BASE}/Id/audit-entity"
CHAIN_EXTENSION = f"{BASE}/StructureDefinition/audit-chain"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
ROLE_TYPE = "http://terminology.hl7.org/CodeSystem/object-role"

# The DICOM audit event type of each subtype: what crossed the gateway's boundary, or what was done to a record.
_IMPORT, _EXPORT = ("110107", "Import"), ("110106", "Export")
_RECORD, _ACTIVITY = ("110110", "Patient Record"), ("110100", "Application Activity")
_SECURITY = ("110113", "Security Alert")
TYPES = {
    "submission": _IMPORT, "refusal": _IMPORT, "translation": _IMPORT, "validation": _IMPORT,
    "acknowledgement": _IMPORT, "delivery-attempt": _EXPORT, "routing": _ACTIVITY, "configuration": _ACTIVITY,
    "read": _RECORD, "decision": _RECORD, "link-confirmation": _RECORD, "purge": _RECORD, "legal-hold": _RECORD,
    "key-rotation": _SECURITY,
}
# Entities that are people get Patient references and the Person entity type; the rest are system objects.
_PEOPLE = {"person": "Patient"}


def _agent(agent: str) -> dict:
    parsed = parse_agency_uri(agent)
    if parsed is not None:
        who = {"identifier": {"system": "urn:ietf:rfc:3986", "value": agent}, "display": agent}
    elif agent == "gateway":
        who = {"identifier": {"system": GATEWAY_ID, "value": "gateway"}, "display": "the gateway"}
    else:  # an operator, by the name they gave
        who = {"display": agent}
    return {"who": who, "requestor": True}


def _entity(kind: str, ident: str) -> dict:
    what = {"identifier": {"system": f"{ENTITY_SYSTEM}/{kind}", "value": ident}}
    if kind in _PEOPLE:
        what["reference"] = f"{_PEOPLE[kind]}/{ident}"
    entity = {"what": what, "type": {"system": ENTITY_TYPE, "code": "1" if kind in _PEOPLE else "2",
                                     "display": "Person" if kind in _PEOPLE else "System Object"}}
    if kind == "message":
        entity["role"] = {"system": ROLE_TYPE, "code": "20", "display": "Job"}
    return entity


def audit_event(record: StoredRecord) -> dict:
    """Return ``record`` as a FHIR R4 AuditEvent (a JSON dict)."""
    code, display = TYPES[record.subtype]
    entities = [_entity(kind, ident) for kind, ident in record.entities]
    if record.detail:
        detail = [{"type": str(key), "valueString": json.dumps(value) if not isinstance(value, str) else value}
                  for key, value in sorted(record.detail.items())]
        if entities:
            entities[0]["detail"] = detail
        else:
            entities.append({"detail": detail})
    event = {
        "resourceType": "AuditEvent",
        "id": f"audit-{record.seq}",
        "extension": [{"url": CHAIN_EXTENSION, "extension": [
            {"url": "seq", "valueInteger": record.seq} if record.seq < 2**31 else
            {"url": "seq", "valueString": str(record.seq)},
            {"url": "hash", "valueString": record.hash},
            {"url": "prevHash", "valueString": record.prev_hash}]}],
        "type": {"system": DCM, "code": code, "display": display},
        "subtype": [{"system": SUBTYPE_SYSTEM, "code": record.subtype}],
        "action": record.action,
        "recorded": record.recorded_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "outcome": OUTCOMES[record.outcome],
        "agent": [_agent(record.agent)],
        "source": {"observer": {"identifier": {"system": GATEWAY_ID, "value": "gateway"},
                                "display": "Safeguarding gateway"},
                   "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}]},
    }
    if entities:
        event["entity"] = entities
    return event


def audit_events(connection: Connection, *, since: dt.datetime | None = None) -> Iterator[dict]:
    """Yield an AuditEvent per record, in chain order (recorded at or after ``since`` when given)."""
    for record in stored_records(connection, since=since):
        yield audit_event(record)


def write_ndjson(connection: Connection, out: IO[str], *, since: dt.datetime | None = None) -> int:
    """Write the AuditEvents to ``out``, one compact JSON per line; return how many."""
    count = 0
    for event in audit_events(connection, since=since):
        out.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")
        count += 1
    return count
