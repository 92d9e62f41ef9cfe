"""Who a message is about, as person-index records: one per Patient and RelatedPerson.

Each record keeps, in the few known columns of ``message_person``, only what
finding the same person again needs, normalised by the matching model
(:func:`gateway.linkage.matching.normalise`): valid NHS numbers and UPNs
(an identifier that failed its check is never stored here: it must never
link), folded names, date of birth, sex, home postcode and its district,
school, and the referral's event and recorded times. Linking searches these
columns; it never needs to parse stored messages.
"""

from __future__ import annotations

from gateway.linkage.matching import PersonRecord, normalise
from gateway.model import systems as S
from gateway.model.identifiers import postcode_district
from gateway.routing import bundles as B

#: The record columns the matching model compares (PersonRecord's fields), in message_person.
RECORD_FIELDS = tuple(PersonRecord.__dataclass_fields__)


def kind_of(role: str) -> str:
    """Return ``child`` for the child and their siblings (HL7 v3 RoleCode SIB, BRO, SIS, their half-, natural-
    and step- forms, twins), else ``adult``: a record is only ever matched with people of its kind."""
    if role == "child":
        return "child"
    code = role.upper()
    return "child" if any(part in code for part in ("SIB", "BRO", "SIS", "TWIN")) else "adult"


def _identifier(resource: dict, system: str) -> str | None:
    """The first value in ``system`` not marked invalid by the translation (normalise checks it again)."""
    for ident in resource.get("identifier") or ():
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            if any(isinstance(e, dict) and e.get("url") == S.EXT_IDENTIFIER_INVALID
                   for e in ident.get("extension") or ()):
                continue
            return str(ident["value"])
    return None


def _first(value) -> dict:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}


def person_record(resource: dict, *, school_urn: str | None = None) -> PersonRecord:
    """Return the normalised record of a FHIR Patient or RelatedPerson (never raises for odd values:
    a birth date or sex the model cannot read is left out)."""
    name = _first(resource.get("name"))
    address = _first(resource.get("address"))
    given = name.get("given") if isinstance(name.get("given"), list) else None
    values = dict(given=[str(g) for g in given or () if g], family=name.get("family"),
                  birth_date=resource.get("birthDate"), sex=resource.get("gender"),
                  postcode=address.get("postalCode"), nhs_number=_identifier(resource, S.NHS_NUMBER),
                  upn=_identifier(resource, S.UPN), school_urn=school_urn)
    try:
        return normalise(**values)
    except ValueError:
        for field in ("birth_date", "sex"):
            try:
                normalise(**{field: values[field]})
            except ValueError:
                values[field] = None
        return normalise(**values)


def people_of(bundle: dict) -> list[dict]:
    """Return the ``message_person`` values of every Patient and RelatedPerson in ``bundle``, the child first.

    Each holds ``role`` (``child`` or the RoleCode to the child, e.g.
    ``MTH``), ``resource`` (``Patient/<id>``), the record fields, the postcode
    district and the referral's ids and times.
    """
    resources = [e.get("resource") for e in bundle.get("entry") or () if isinstance(e, dict)]
    resources = [r for r in resources if isinstance(r, dict)]
    request = B.focus_request(bundle) or next((r for r in resources if r.get("resourceType") == "ServiceRequest"),
                                              {})
    out = []
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype not in ("Patient", "RelatedPerson"):
            continue
        school_urn = None
        if rtype == "Patient":
            role = "child"
            school = B.child_school(bundle, resource)
            school_urn = B.identifier_value(school, S.SCHOOL_URN) if school is not None else None
        else:
            codings = [c for rel in resource.get("relationship") or () if isinstance(rel, dict)
                       for c in rel.get("coding") or () if isinstance(c, dict)]
            role = (codings[0].get("code") if codings else None) or "related"
        record = person_record(resource, school_urn=school_urn)
        out.append({
            "record_id": request.get("id"),
            "resource": f"{rtype}/{resource.get('id')}",
            "role": str(role)[:64],
            **{field: getattr(record, field) for field in RECORD_FIELDS},
            "postcode_district": postcode_district(record.postcode) if record.postcode else None,
            "occurred_at": B.extension_value(request, S.EXT_OCCURRED),
            "recorded_at": request.get("authoredOn"),
        })
    out.sort(key=lambda p: p["role"] != "child")
    return out
