"""Reading what routing needs from a message Bundle (a JSON dict).

Every function tolerates a malformed Bundle and returns ``None`` (or an
empty result) rather than raising: a message routing cannot read is
*unroutable*, with a reason, never an exception that loses it.
"""

from __future__ import annotations

from gateway.model import systems as S
# The readers every message handler shares (defined once, in the signing layer).
from gateway.signing.messages import message_header, message_id, resolve_reference, source_endpoint  # noqa: F401


def resources(bundle: dict, resource_type: str) -> list[dict]:
    """Return the Bundle's resources of ``resource_type``, in entry order."""
    out = []
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
            out.append(resource)
    return out


def resolve(bundle: dict, reference: object) -> dict | None:
    """Return the resource a Reference (or its ``reference`` text) points at inside ``bundle``, or ``None``."""
    if isinstance(reference, dict):
        reference = reference.get("reference")
    return resolve_reference(bundle, reference) if isinstance(reference, str) else None


def event_code(header: dict) -> str | None:
    """Return ``MessageHeader.eventCoding.code``, or ``None``."""
    coding = header.get("eventCoding")
    return coding.get("code") if isinstance(coding, dict) and isinstance(coding.get("code"), str) else None


def destination_endpoints(header: dict) -> list[str]:
    """Return every ``MessageHeader.destination[].endpoint``."""
    return [d["endpoint"] for d in header.get("destination") or ()
            if isinstance(d, dict) and isinstance(d.get("endpoint"), str)]


def focus_request(bundle: dict) -> dict | None:
    """Return the ServiceRequest the MessageHeader focuses on, else the only ServiceRequest, else ``None``."""
    header = message_header(bundle) or {}
    for ref in header.get("focus") or ():
        resource = resolve(bundle, ref)
        if resource is not None and resource.get("resourceType") == "ServiceRequest":
            return resource
    requests = resources(bundle, "ServiceRequest")
    return requests[0] if len(requests) == 1 else None


def child(bundle: dict) -> dict | None:
    """Return the child: the focus ServiceRequest's subject, else the only Patient, else ``None``."""
    request = focus_request(bundle)
    if request is not None:
        subject = resolve(bundle, request.get("subject"))
        if subject is not None and subject.get("resourceType") == "Patient":
            return subject
    patients = resources(bundle, "Patient")
    return patients[0] if len(patients) == 1 else None


def home_postcode(patient: dict) -> str | None:
    """Return the postcode of the child's home address, or ``None``.

    A home address is one with ``use`` home or no ``use``; an ``old``,
    ``temp`` or ``billing`` address is not where the child lives now.
    """
    for address in patient.get("address") or ():
        if not isinstance(address, dict) or address.get("use") not in (None, "home"):
            continue
        if isinstance(address.get("period"), dict) and address["period"].get("end"):
            continue
        postcode = address.get("postalCode")
        if isinstance(postcode, str) and postcode.strip():
            return postcode.strip()
    return None


def child_school(bundle: dict, patient: dict) -> dict | None:
    """Return the Organization the Patient's ``school`` extension points at, or ``None``."""
    for ext in patient.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == S.EXT_SCHOOL:
            school = resolve(bundle, ext.get("valueReference"))
            if school is not None and school.get("resourceType") == "Organization":
                return school
    return None


def identifier_value(resource: dict, system: str) -> str | None:
    """Return the value of the resource's first identifier in ``system``, or ``None``."""
    for identifier in resource.get("identifier") or ():
        if isinstance(identifier, dict) and identifier.get("system") == system and identifier.get("value"):
            return str(identifier["value"])
    return None


def extension_value(resource: dict, url: str) -> object:
    """Return the value[x] of the resource's first extension with ``url``, or ``None``."""
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None
