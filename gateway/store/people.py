"""Who a message is about, normalised and searchable (an accept step).

Every accepted message's Patient and RelatedPersons are written to
``message_person`` in the accepting transaction: valid NHS numbers and
UPNs, names folded for comparison, date of birth, home postcode and its
district, and the referral's event and recorded times. Linking the same
child across agencies (a later step) searches these columns; it never needs
to parse stored messages, and never sees an identifier that failed its check.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import insert

from gateway.model import systems as S
from gateway.model.identifiers import check_nhs_number, check_postcode, check_upn, postcode_district
from gateway.store.interfaces import AcceptedMessage, UnitOfWork
from gateway.store.models import MessagePersonRow


def fold(text: str | None) -> str | None:
    """Return ``text`` case-folded, accents removed and white space collapsed; None when empty."""
    if not text:
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split()) or None


def _valid(identifiers: list, system: str, check) -> str | None:
    for ident in identifiers or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            if any(e.get("url") == S.EXT_IDENTIFIER_INVALID for e in ident.get("extension", [])):
                continue
            checked = check(str(ident["value"]))
            if checked.valid:
                return checked.value
    return None


def _ext(resource: dict, url: str):
    for e in resource.get("extension", []) or []:
        if e.get("url") == url:
            return e.get("valueDateTime") or e.get("valueDate")
    return None


def people_of(bundle: dict) -> list[dict]:
    """Return the ``message_person`` values for every Patient and RelatedPerson in ``bundle``."""
    resources = [e.get("resource") or {} for e in bundle.get("entry", []) if isinstance(e, dict)]
    request = next((r for r in resources if r.get("resourceType") == "ServiceRequest"), {})
    out = []
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype not in ("Patient", "RelatedPerson"):
            continue
        name = (resource.get("name") or [{}])[0] if isinstance(resource.get("name"), list) else {}
        address = (resource.get("address") or [{}])[0] if isinstance(resource.get("address"), list) else {}
        postcode = address.get("postalCode")
        checked = check_postcode(postcode) if postcode else None
        if rtype == "Patient":
            role = "child"
        else:
            codings = [c for rel in resource.get("relationship", []) or [] for c in rel.get("coding", []) or []]
            role = (codings[0].get("code") if codings else None) or "related"
        out.append({
            "record_id": request.get("id"),
            "resource": f"{rtype}/{resource.get('id')}",
            "role": role,
            "nhs_number": _valid(resource.get("identifier"), S.NHS_NUMBER, check_nhs_number),
            "upn": _valid(resource.get("identifier"), S.UPN, check_upn),
            "family": fold(name.get("family")),
            "given": fold(" ".join(name.get("given") or [])),
            "birth_date": resource.get("birthDate"),
            "postcode": checked.value if checked and checked.valid else None,
            "postcode_district": postcode_district(postcode) if postcode else None,
            "occurred_at": _ext(request, S.EXT_OCCURRED),
            "recorded_at": request.get("authoredOn"),
        })
    return out


def record_people(unit: UnitOfWork, accepted: AcceptedMessage, bundle: dict) -> None:
    """Accept step: write who ``bundle`` is about to ``message_person`` in the accepting transaction."""
    rows = [dict(values, message_id=accepted.message_id) for values in people_of(bundle)]
    if rows:  # one statement for all of them (executemany), not the ORM's unit of work
        unit.session.connection().execute(insert(MessagePersonRow.__table__), rows)
