"""FHIR response messages: acknowledgements from receivers, fatal-error notices to senders.

A response message is a message Bundle whose MessageHeader has ``response``:
``identifier`` is the MessageHeader id of the message it answers and
``code`` one of ``ok``, ``transient-error``, ``fatal-error``.
"""

from __future__ import annotations

import dataclasses
import json

from gateway.model.responses import RESPONSE_CODES, response_message  # noqa: F401  (one builder, re-exported)
from gateway.signing.messages import message_header

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
