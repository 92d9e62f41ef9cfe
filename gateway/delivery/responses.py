"""FHIR response messages: acknowledgements from receivers, fatal-error notices to senders.

A response message is a message Bundle whose MessageHeader has ``response``:
``identifier`` is the MessageHeader id of the message it answers and
``code`` one of ``ok``, ``transient-error``, ``fatal-error``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

from gateway.model.systems import MESSAGE_ID
from gateway.signing.messages import format_instant, message_header

RESPONSE_CODES = ("ok", "transient-error", "fatal-error")


def response_message(*, answers: str, code: str, source: str, destination: str, now: dt.datetime,
                     text: str | None = None, event: dict | None = None, message_uuid: str | None = None) -> dict:
    """Return a response message Bundle (unsigned) answering the MessageHeader with id ``answers``.

    ``source`` and ``destination`` are agency URIs; ``text``, when given,
    goes into an OperationOutcome referenced from ``response.details``.
    ``message_uuid`` fixes the Bundle id (so a notice made twice is the
    same message); by default it is random. Raises :class:`ValueError`
    for a code that is not a FHIR response code.
    """
    if code not in RESPONSE_CODES:
        raise ValueError(f"response code {code!r} is not one of {', '.join(RESPONSE_CODES)}")
    bundle_id = message_uuid or str(uuid.uuid4())
    header_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"header:{bundle_id}"))
    header = {"resourceType": "MessageHeader", "id": header_id,
              "eventCoding": event or {"system": "http://terminology.hl7.org/CodeSystem/message-events",
                                       "code": "acknowledgement"},
              "destination": [{"endpoint": destination}],
              "source": {"name": "Safeguarding gateway" if ":gateway:" in source else source, "endpoint": source},
              "response": {"identifier": answers, "code": code}}
    entries = [{"fullUrl": f"urn:uuid:{header_id}", "resource": header}]
    if text:
        outcome_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"outcome:{bundle_id}"))
        severity = "information" if code == "ok" else "error"
        issue_code = {"ok": "informational", "transient-error": "transient", "fatal-error": "processing"}[code]
        entries.append({"fullUrl": f"urn:uuid:{outcome_id}",
                        "resource": {"resourceType": "OperationOutcome", "id": outcome_id,
                                     "issue": [{"severity": severity, "code": issue_code, "diagnostics": text,
                                                "details": {"text": text}}]}})
        header["response"]["details"] = {"reference": f"urn:uuid:{outcome_id}"}
    return {"resourceType": "Bundle", "id": bundle_id,
            "identifier": {"system": MESSAGE_ID, "value": f"urn:uuid:{bundle_id}"},
            "type": "message", "timestamp": format_instant(now), "entry": entries}


@dataclasses.dataclass(frozen=True)
class Acknowledgement:
    """A receiver's answer to one delivered message: its response code and any explanation."""

    code: str
    text: str | None = None


def read_acknowledgement(body: bytes, header_id: str) -> Acknowledgement | None:
    """Return the acknowledgement in ``body`` for the message whose MessageHeader id is ``header_id``.

    Returns ``None`` when ``body`` is not a response message answering that
    header (not JSON, not a message Bundle, another ``response.identifier``,
    an unknown code): the caller treats that as no answer at all.
    """
    try:
        bundle = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return None
    header = message_header(bundle)
    response = header.get("response") if header else None
    if not isinstance(response, dict) or response.get("identifier") != header_id:
        return None
    code = response.get("code")
    if code not in RESPONSE_CODES:
        return None
    return Acknowledgement(code, _outcome_text(bundle, response))


def _outcome_text(bundle: dict, response: dict) -> str | None:
    details = response.get("details")
    reference = details.get("reference") if isinstance(details, dict) else None
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            continue
        if reference is not None and entry.get("fullUrl") != reference:
            continue
        texts = [issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                 for issue in resource.get("issue") or () if isinstance(issue, dict)]
        return "; ".join(t for t in texts if isinstance(t, str)) or None
    return None
