"""Read the parts of a FHIR message Bundle (a JSON dict) that trust depends on.

These work on the JSON exactly as received: never on a re-dumped model,
whose serialisation differs (``+00:00`` becomes ``Z``) and would break
signatures.
"""

from __future__ import annotations

import datetime as dt

from gateway.model.systems import AGENCY_IDENTIFIER_SYSTEM, parse_agency_uri
from gateway.model.responses import format_instant  # noqa: F401  (one definition, re-exported)


def message_header(bundle: dict) -> dict | None:
    """Return the Bundle's MessageHeader (its first entry), or ``None``."""
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        return None
    resource = entries[0].get("resource")
    if isinstance(resource, dict) and resource.get("resourceType") == "MessageHeader":
        return resource
    return None


def message_id(bundle: dict) -> str | None:
    """Return the message id: ``Bundle.identifier.value``, else ``Bundle.id``, else ``None``."""
    identifier = bundle.get("identifier")
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str) and identifier["value"]:
        return identifier["value"]
    value = bundle.get("id")
    return value if isinstance(value, str) and value else None


def source_endpoint(header: dict) -> str | None:
    """Return ``MessageHeader.source.endpoint``, or ``None``."""
    source = header.get("source")
    endpoint = source.get("endpoint") if isinstance(source, dict) else None
    return endpoint if isinstance(endpoint, str) else None


def resolve_reference(bundle: dict, reference: str) -> dict | None:
    """Return the Bundle entry's resource that ``reference`` points at, or ``None``.

    Matches an entry's ``fullUrl`` exactly, or ``Type/id`` against a
    resource's type and id.
    """
    for entry in bundle.get("entry") or ():
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if entry.get("fullUrl") == reference:
            return resource
        if reference == f"{resource.get('resourceType')}/{resource.get('id')}":
            return resource
    return None


def agency_identifier(agency: str) -> dict:
    """Return the FHIR Identifier (system, value) of an agency URI.

    Raises :class:`ValueError` when ``agency`` is not an agency URI.
    """
    parsed = parse_agency_uri(agency)
    if parsed is None:
        raise ValueError(f"{agency!r} is not an agency identity (urn:x-safeguarding:agency:<kind>:<code>)")
    kind, code = parsed
    return {"system": AGENCY_IDENTIFIER_SYSTEM[kind], "value": code}


def identifies_agency(resource: dict, agency: str) -> bool:
    """Return whether an Organization (or Reference) identifies ``agency`` and no other agency.

    True when it carries ``agency``'s identifier and every identifier it
    carries in an agency system (school URN, police force, DfE LA number,
    gateway id) is that one: an Organization that is a school and a police
    force at once identifies no single agency. A school's DfE LA number (the
    LA the school belongs to, which school exports carry) is the one
    exception: it places the school and claims nothing. Identifiers in other systems
    are not agencies and do not count. Raises :class:`ValueError` when
    ``agency`` is not an agency URI.
    """
    wanted = agency_identifier(agency)
    # A school's Organization may name the local authority it belongs to (the DfE LA number school exports
    # carry): that places the school, it is no claim to be the LA. Any other second agency identifier is.
    belongs_to = {AGENCY_IDENTIFIER_SYSTEM["la"]} if wanted["system"] == AGENCY_IDENTIFIER_SYSTEM["school"] else set()
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return False
    agency_systems = set(AGENCY_IDENTIFIER_SYSTEM.values())
    # Only well-formed identifiers count (a system or value of another JSON type identifies nobody); one of
    # them in an agency system with a value that is not text makes the Organization no single agency.
    in_agency_systems = [i for i in identifiers
                         if isinstance(i, dict) and isinstance(i.get("system"), str) and i["system"] in agency_systems
                         and i["system"] not in belongs_to]
    if any(not isinstance(i.get("value"), str) for i in in_agency_systems):
        return False
    named = {(i["system"], i["value"]) for i in in_agency_systems}
    return named == {(wanted["system"], wanted["value"])}


def parse_instant(value: object) -> dt.datetime | None:
    """Return a FHIR ``instant`` as an aware datetime, or ``None`` when it is not one."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
