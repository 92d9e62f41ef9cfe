"""FHIR response messages: the one builder for acknowledgements and other answers.

A response message is a message Bundle whose MessageHeader has ``response``:
``identifier`` is the MessageHeader id of the message it answers and
``code`` one of ``ok``, ``transient-error``, ``fatal-error``. The intake's
answers, receivers' acknowledgements, the outbox's fatal-error notices and
routing's acknowledgements are all built here.
"""

from __future__ import annotations

import datetime as dt
import uuid

from gateway.model.systems import MESSAGE_ID

RESPONSE_CODES = ("ok", "transient-error", "fatal-error")
ACKNOWLEDGEMENT_EVENT = {"system": "http://terminology.hl7.org/CodeSystem/message-events", "code": "acknowledgement"}
# A response's one-line explanation: severity and issue code by response code.
_ISSUE = {"ok": ("information", "informational"), "transient-error": ("error", "transient"),
          "fatal-error": ("error", "processing")}


def format_instant(value: dt.datetime) -> str:
    """Return an aware datetime as a FHIR instant in UTC with milliseconds (``...Z``)."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def response_message(*, answers: str, code: str, source: str, destination: str, now: dt.datetime,
                     text: str | None = None, details: dict | None = None, event: dict | None = None,
                     message_uuid: str | None = None, sender: dict | None = None,
                     source_name: str | None = None) -> dict:
    """Return a response message Bundle (unsigned) answering the MessageHeader with id ``answers``.

    ``source`` and ``destination`` are agency URIs. ``details`` (a whole
    OperationOutcome) or else ``text`` (one issue saying it) is referenced
    from ``response.details``. ``event`` is the MessageHeader's eventCoding
    (default: acknowledgement); ``sender`` an Organization to include and
    reference from ``MessageHeader.sender``. ``message_uuid`` fixes the
    Bundle id, from which every other id follows (a response made twice is
    the same message); by default it is random. Raises :class:`ValueError`
    for a code that is not a FHIR response code or a naive ``now``.
    """
    if code not in RESPONSE_CODES:
        raise ValueError(f"response code {code!r} is not one of {', '.join(RESPONSE_CODES)}")
    bundle_id = message_uuid or str(uuid.uuid4())

    def derived(role: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{role}:{bundle_id}"))

    header = {"resourceType": "MessageHeader", "id": derived("header"),
              "eventCoding": event or ACKNOWLEDGEMENT_EVENT,
              "destination": [{"endpoint": destination}],
              "source": {"name": source_name or ("Safeguarding gateway" if ":gateway:" in source else source),
                         "endpoint": source},
              "response": {"identifier": answers, "code": code}}
    entries = [{"fullUrl": f"urn:uuid:{header['id']}", "resource": header}]
    if sender is not None:
        entries.append({"fullUrl": f"urn:uuid:{sender['id']}", "resource": sender})
        header["sender"] = {"reference": f"urn:uuid:{sender['id']}"}
    if details is None and text:
        severity, issue_code = _ISSUE[code]
        details = {"resourceType": "OperationOutcome",
                   "issue": [{"severity": severity, "code": issue_code, "diagnostics": text, "details": {"text": text}}]}
    if details is not None:
        outcome_id = derived("outcome")
        entries.append({"fullUrl": f"urn:uuid:{outcome_id}", "resource": dict(details, id=outcome_id)})
        header["response"]["details"] = {"reference": f"urn:uuid:{outcome_id}"}
    return {"resourceType": "Bundle", "id": bundle_id,
            "identifier": {"system": MESSAGE_ID, "value": f"urn:uuid:{bundle_id}"},
            "type": "message", "timestamp": format_instant(now), "entry": entries}
