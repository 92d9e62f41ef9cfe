"""The canonical record: what every adapter produces and the model builds from.

A canonical record is a plain ``dict`` (JSON-serialisable, so mapping goldens
and vendor adapters can write it as data) with the keys below. Every key but
``format``, ``source``, ``kind``, ``sender`` and ``child`` is optional; a
missing or ``None`` value means "the source did not say", never "no".

``format``, ``mapping_version``
    the source format id and the version of the mapping that produced it.
``source``
    ``{"file", "location", "line", "record_id", "signature_present"}``: where
    the record came from (``location`` is a row, JSON pointer or XPath).
``kind``
    ``"referral"`` or ``"concern"`` (a record that the source does not mark as
    a referral; translated only with ``--all``). ``skip_reason`` says why a
    record is not a referral.
``sender``
    ``{"kind": "school"|"police"|"la", "code", "name", "la_number"}``.
``referrer``
    ``{"name", "role", "email", "phone", "identifier": {"system", "value"}}``.
``child``
    a PERSON (below) with, for children, ``school: {"urn", "name"}``,
    ``year_group``, ``sen``, ``looked_after``, ``present_at_incident``.
``people``
    PERSONs around the child, each with ``relationship: {"code", "display",
    "text"}`` (HL7 v3 RoleCode, the related person's role *to the child*),
    ``parental_responsibility``, ``lives_with_child``, ``alleged_harm`` (bool)
    and ``role`` (PPN role: Victim, Suspect, Child, OtherAdult).
``concern``
    ``{"local_id", "reference", "summary", "narrative", "categories": [{"code",
    "display", "label", "mapped"}], "disclosure", "occurred", "recorded",
    "submitted", "reported", "child_voice", "child_spoken_to",
    "parents_informed", "action_taken", "actions": [{"at", "by", "type",
    "notes"}], "status", "referred_to", "referred_at", "notice_type",
    "notice_id", "crime_reference", "location": {"description", "postcode"},
    "consent_to_share", "safeguarding_actions", "immediate_risk"}``. Times are
    ISO 8601 strings as normalised by the mapping (a date alone when the
    source gave no time; an offset when the source gave one or the mapping
    assumed UK local time, which it records as an issue).
``risk``
    a list of ``{"kind": "dash", "completed", "level", "answers": {q: answer},
    "judgement"}`` or ``{"kind": "school-rating", "value"}``.
``evidence``
    ``[{"type", "secured", "description"}]``.
``attachments``
    ``[{"filename", "content_type", "sha256", "size"}]`` (metadata only).
``issues``
    translation issues kept with the message: ``[{"field", "location",
    "reason", "action", "code"}]`` (an unmapped category, an invalid
    identifier kept and marked, an assumed time zone).

PERSON: ``{"local_id", "given": [..], "family", "text", "birth_date",
"gender": "female"|"male"|"other"|"unknown", "nhs_number", "upn",
"address": {"lines": [..], "town", "postcode"}, "phone", "email"}``.
"""

from __future__ import annotations

import hashlib
import json

REQUIRED_KEYS = ("format", "source", "kind", "sender", "child")

# Keys that say where a record was read, not what it says: a re-export of the
# same record in another file or row is the same record.
_LOCATION_KEYS = ("source",)


def content_digest(record: dict) -> str:
    """Return a SHA-256 hex digest of what the record says (not where it was read)."""
    body = {k: v for k, v in record.items() if k not in _LOCATION_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
