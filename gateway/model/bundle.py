"""Build FHIR R4 message Bundles from canonical records.

One canonical record (see :mod:`gateway.model.canonical`) becomes one message
Bundle: MessageHeader first, then the sending Organization, the referrer
(Practitioner + PractitionerRole), the child (Patient), the people around the
child (RelatedPerson), the referral or concern (ServiceRequest), risk and
evidence (Observation), attachment metadata (DocumentReference), the incident
location (Location) and a Provenance naming the source file, place and
mapping version.

Ids are deterministic: the same source record gives the same resource ids on
every run (UUIDv5 of format, sender, record id and role), and the same Bundle
id while its content is unchanged, so a re-export is recognised as the same
record and an edited one as a new version of the same ServiceRequest.
"""

from __future__ import annotations

import datetime as dt
import uuid

from gateway import __version__
from gateway.model import systems as S
from gateway.model.canonical import content_digest
from gateway.model.identifiers import check_nhs_number, check_postcode, check_upn, is_temporary_upn
from gateway.model.terminology import MESSAGE_EVENTS

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, S.BASE)

EVENT_DISPLAY = {code: display for code, (display, _definition) in MESSAGE_EVENTS.items()}

AGENCY_ORG_TYPE = {"school": "school", "police": "police", "la": "local-authority", "gateway": "gateway"}


def deterministic_id(*parts: object) -> str:
    """Return a UUIDv5 (as text) from ``parts``; the same parts give the same id."""
    return str(uuid.uuid5(_NAMESPACE, "|".join("" if p is None else str(p) for p in parts)))


def _ext(url: str, **value) -> dict:
    (key, val), = value.items()
    return {"url": url, key: val}


def _drop_empty(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


def _human_name(person: dict) -> list[dict]:
    given = [g for g in (person.get("given") or []) if g]
    family = person.get("family")
    text = person.get("text") or " ".join(given + ([family] if family else []))
    if not (given or family or text):
        return []
    return [_drop_empty({"use": "official", "family": family, "given": given, "text": text})]


def _address(address: dict | None) -> list[dict]:
    if not address:
        return []
    postcode = address.get("postcode")
    out = _drop_empty({
        "use": "home",
        "line": [l for l in address.get("lines") or [] if l],
        "city": address.get("town"),
        "postalCode": check_postcode(postcode).value if postcode else None,
        "country": "GB" if (address.get("lines") or address.get("town") or postcode) else None,
    })
    return [out] if len(out) > 1 else []


def _telecom(person: dict) -> list[dict]:
    out = []
    if person.get("phone"):
        out.append({"system": "phone", "value": person["phone"]})
    if person.get("email"):
        out.append({"system": "email", "value": person["email"]})
    return out


def person_identifiers(person: dict, local_system: str | None = None, scope: str | None = None) -> list[dict]:
    """Return FHIR Identifiers for a canonical person.

    An identifier that fails its check is kept, marked with the
    ``identifier-invalid`` extension and ``use: secondary`` so that linkage
    never relies on it. The person's ``local_id`` is written as
    ``<scope>/<local_id>`` when ``scope`` (the source record id) is given.
    """
    out = []
    for key, system, check in (("nhs_number", S.NHS_NUMBER, check_nhs_number), ("upn", S.UPN, check_upn)):
        raw = person.get(key)
        if not raw:
            continue
        checked = check(raw)
        ident = {"system": system, "value": checked.value}
        if not checked.valid:
            ident["use"] = "secondary"
            ident["extension"] = [_ext(S.EXT_IDENTIFIER_INVALID, valueString=checked.problem)]
        elif key == "upn" and is_temporary_upn(checked.value):
            ident["use"] = "temp"
        else:
            ident["use"] = "official"
        out.append(ident)
    if local_system and person.get("local_id"):
        value = f"{scope}/{person['local_id']}" if scope else str(person["local_id"])
        out.append({"system": local_system, "value": value, "use": "secondary"})
    return out


def _organization(rid: str, kind: str, code: str | None, name: str | None, la_number: str | None = None) -> dict:
    identifiers = []
    if code:
        identifiers.append({"system": S.AGENCY_IDENTIFIER_SYSTEM[kind], "value": code})
    if la_number and kind == "school":
        identifiers.append({"system": S.DFE_LA, "value": la_number})
    return _drop_empty({
        "resourceType": "Organization", "id": rid,
        "identifier": identifiers,
        "type": [{"coding": [{"system": f"{S.BASE}/CodeSystem/agency-kind", "code": AGENCY_ORG_TYPE[kind]}]}],
        "name": name,
    })


class _Entries:
    """Collects Bundle entries with urn:uuid full URLs."""

    def __init__(self):
        self.items: list[dict] = []

    def add(self, resource: dict) -> dict:
        self.items.append({"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource})
        return {"reference": f"urn:uuid:{resource['id']}"}


def _event_coding(event: str) -> dict:
    return {"system": S.MESSAGE_EVENT, "code": event, "display": EVENT_DISPLAY[event]}


def _datetime_ext(url: str, value: str | None) -> list[dict]:
    if not value:
        return []
    return [_ext(url, valueDate=value) if len(value) == 10 else _ext(url, valueDateTime=value)]


def build_bundle(record: dict, *, now: dt.datetime) -> dict:
    """Return the FHIR message Bundle (a dict) for one canonical record.

    ``now`` is the sending time (``Bundle.timestamp``) and the Provenance
    recording time: the only values that change between runs. Raises
    ``KeyError`` when a required canonical key is missing (a mapping defect,
    not bad input: mappings reject records before they get here).
    """
    fmt = record["format"]
    sender = record["sender"]
    source = record["source"]
    sender_code = sender.get("code") or "unknown"
    record_key = (fmt, sender["kind"], sender_code, source["record_id"], record.get("child_key", ""))

    def rid(role: str, n: object = "") -> str:
        return deterministic_id(*record_key, role, n)

    local_system = S.local_id_system(fmt, sender_code, "person")
    # A person's local id (a PPN Person @id, "p1") is unique only inside its source record,
    # so the record id scopes it: two notices' "p3" are different people.
    person_scope = str(source["record_id"])
    entries = _Entries()
    event = S.EVENT_REFERRAL if record["kind"] == "referral" else S.EVENT_CONCERN
    # An issue names the place it was found (a row, a JSON pointer): where, not what, so it
    # must not make a re-export at another place look like a new version of the record.
    digest = content_digest(dict(record, issues=[{k: v for k, v in issue.items() if k != "location"}
                                                 for issue in record.get("issues") or []]))
    bundle_id = deterministic_id(*record_key, "bundle", digest)
    header_id = deterministic_id(*record_key, "message-header", digest)

    header: dict = {"resourceType": "MessageHeader", "id": header_id}
    entries.add(header)

    org_ref = entries.add(_organization(rid("sender"), sender["kind"], sender.get("code"), sender.get("name"),
                                        sender.get("la_number")))

    # The referrer: a Practitioner in a role at the sending organisation.
    referrer = record.get("referrer") or {}
    role_ref = None
    if referrer:
        prac_ident = referrer.get("identifier")
        practitioner = _drop_empty({
            "resourceType": "Practitioner", "id": rid("referrer"),
            "identifier": [prac_ident] if prac_ident else [],
            "name": [{"text": referrer["name"]}] if referrer.get("name") else [],
            "telecom": _telecom(referrer),
        })
        prac_ref = entries.add(practitioner)
        role_ref = entries.add(_drop_empty({
            "resourceType": "PractitionerRole", "id": rid("referrer-role"),
            "practitioner": prac_ref, "organization": org_ref,
            "code": [{"text": referrer["role"]}] if referrer.get("role") else [],
            "telecom": _telecom(referrer),
        }))

    # The child.
    child = record["child"]
    patient_ext = []
    if child.get("year_group"):
        patient_ext.append(_ext(S.EXT_YEAR_GROUP, valueString=child["year_group"]))
    school = child.get("school") or {}
    if school.get("urn") or school.get("name"):
        if sender["kind"] == "school" and school.get("urn") == sender.get("code"):
            school_ref = org_ref
        else:
            school_ref = entries.add(_organization(rid("school"), "school", school.get("urn"), school.get("name")))
        patient_ext.append(_ext(S.EXT_SCHOOL, valueReference=school_ref))
    if child.get("expected_due_date"):
        patient_ext.append(_ext(S.EXT_EXPECTED_DUE_DATE, valueDate=child["expected_due_date"]))
    if child.get("nhs_number_absent_reason"):
        patient_ext.append(_ext(S.EXT_NHS_NUMBER_ABSENT_REASON, valueString=child["nhs_number_absent_reason"]))
    patient = _drop_empty({
        "resourceType": "Patient", "id": rid("child", child.get("local_id", "")),
        "extension": patient_ext,
        "identifier": person_identifiers(child, local_system, person_scope),
        "name": _human_name(child),
        "gender": child.get("gender"),
        "birthDate": child.get("birth_date"),
        "address": _address(child.get("address")),
        "telecom": _telecom(child),
    })
    child_ref = entries.add(patient)

    # The people around the child.
    for i, person in enumerate(record.get("people") or []):
        rel = person.get("relationship") or {}
        relationship = []
        if rel.get("code") or rel.get("text"):
            coding = [{"system": S.RELATIONSHIP, "code": rel["code"], "display": rel.get("display") or rel["code"]}] \
                if rel.get("code") else []
            relationship.append(_drop_empty({"coding": coding, "text": rel.get("text")}))
        ext = []
        for key, url in (("parental_responsibility", S.EXT_PARENTAL_RESPONSIBILITY),
                         ("lives_with_child", S.EXT_LIVES_WITH_CHILD),
                         ("alleged_harm", S.EXT_ALLEGED_HARM)):
            if person.get(key) is not None:
                ext.append(_ext(url, valueBoolean=bool(person[key])))
        if person.get("role"):
            ext.append(_ext(S.EXT_PARTICIPANT_ROLE, valueCoding={"system": S.PARTICIPANT_ROLE, "code": person["role"]}))
        entries.add(_drop_empty({
            "resourceType": "RelatedPerson", "id": rid("person", person.get("local_id") or i),
            "extension": ext,
            "identifier": person_identifiers(person, local_system, person_scope),
            "patient": child_ref,
            "relationship": relationship,
            "name": _human_name(person),
            "gender": person.get("gender"),
            "birthDate": person.get("birth_date"),
            "address": _address(person.get("address")),
            "telecom": _telecom(person),
        }))

    concern = record.get("concern") or {}
    supporting: list[dict] = []

    # Risk: DASH for police notices, the school's own rating for schools.
    for i, risk in enumerate(record.get("risk") or []):
        if risk["kind"] == "dash":
            components = [{"code": {"coding": [{"system": S.DASH_QUESTION, "code": "completed"}]},
                           "valueBoolean": bool(risk.get("completed"))}]
            for q, answer in sorted((risk.get("answers") or {}).items(), key=lambda kv: int(kv[0])):
                components.append({"code": {"coding": [{"system": S.DASH_QUESTION, "code": str(q)}]},
                                   "valueCodeableConcept": {"coding": [{"system": S.DASH_QUESTION + "-answer",
                                                                        "code": answer}]}})
            obs = {"resourceType": "Observation", "id": rid("risk", i), "status": "final",
                   "code": {"coding": [{"system": S.RISK_KIND, "code": "dash", "display": "DASH risk assessment"}]},
                   "subject": child_ref, "component": components}
            if risk.get("level"):
                obs["valueCodeableConcept"] = {"coding": [{"system": S.DASH_LEVEL, "code": risk["level"]}]}
            else:
                obs["dataAbsentReason"] = {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": "not-performed" if not risk.get("completed") else "unknown"}]}
            if risk.get("judgement"):
                obs["note"] = [{"text": risk["judgement"]}]
        else:
            obs = {"resourceType": "Observation", "id": rid("risk", i), "status": "final",
                   "code": {"coding": [{"system": S.RISK_KIND, "code": "school-rating",
                                        "display": "School's own risk rating"}]},
                   "subject": child_ref,
                   "valueCodeableConcept": {"coding": [{"system": S.RISK_RATING, "code": risk["value"]}]}}
        supporting.append(entries.add(obs))

    for i, item in enumerate(record.get("evidence") or []):
        components = []
        if item.get("secured") is not None:
            components.append({"code": {"coding": [{"system": S.EVIDENCE_TYPE, "code": "secured"}]},
                               "valueBoolean": bool(item["secured"])})
        supporting.append(entries.add(_drop_empty({
            "resourceType": "Observation", "id": rid("evidence", i), "status": "final",
            "code": {"coding": [{"system": S.EVIDENCE_TYPE, "code": S.EVIDENCE_ITEM, "display": "Evidence item"}]},
            "category": [{"coding": [{"system": S.EVIDENCE_TYPE, "code": item.get("type") or "Other"}]}],
            "subject": child_ref,
            "valueString": item.get("description") or None,
            "component": components,
        })))

    for i, att in enumerate(record.get("attachments") or []):
        attachment = _drop_empty({"contentType": att.get("content_type"), "title": att.get("filename"),
                                  "size": att.get("size")})
        identifiers = [{"system": "urn:ietf:rfc:6920", "value": f"ni:///sha-256;{att['sha256']}"}] \
            if att.get("sha256") else []
        supporting.append(entries.add(_drop_empty({
            "resourceType": "DocumentReference", "id": rid("attachment", i), "status": "current",
            "identifier": identifiers, "subject": child_ref,
            "description": "Attachment metadata only; the content was not exported",
            "content": [{"attachment": attachment}],
        })))

    location = concern.get("location") or {}
    if location.get("description") or location.get("postcode"):
        supporting.append(entries.add(_drop_empty({
            "resourceType": "Location", "id": rid("incident-location"),
            "description": location.get("description"), "name": "Incident location",
            "address": _drop_empty({"postalCode": location.get("postcode"), "country": "GB"})
            if location.get("postcode") else None,
        })))

    # The referral (or concern record) itself.
    categories = []
    for cat in concern.get("categories") or []:
        if cat.get("mapped"):
            categories.append({"coding": [{"system": cat.get("system") or S.CONCERN_CATEGORY, "code": cat["code"],
                                           "display": cat.get("display") or cat["code"]}],
                               "text": cat.get("label")})
        else:
            # Kept verbatim and flagged, never dropped.
            categories.append({"extension": [_ext(S.EXT_UNMAPPED_CATEGORY, valueBoolean=True)],
                               "text": cat.get("label")})
    if concern.get("notice_type"):
        categories.append({"coding": [{"system": S.NOTICE_TYPE, "code": concern["notice_type"]}]})

    sr_ext = []
    sr_ext += _datetime_ext(S.EXT_OCCURRED, concern.get("occurred"))
    sr_ext += _datetime_ext(S.EXT_REPORTED, concern.get("reported"))
    sr_ext += _datetime_ext(S.EXT_SUBMITTED, concern.get("submitted"))
    if concern.get("child_voice"):
        sr_ext.append(_ext(S.EXT_CHILDS_VOICE, valueString=concern["child_voice"]))
    for key, url in (("child_spoken_to", S.EXT_CHILD_SPOKEN_TO), ("disclosure", S.EXT_DISCLOSURE),
                     ("immediate_risk", S.EXT_IMMEDIATE_RISK)):
        if concern.get(key) is not None:
            sr_ext.append(_ext(url, valueBoolean=bool(concern[key])))
    if child.get("present_at_incident") is not None:
        sr_ext.append(_ext(S.EXT_PRESENT_AT_INCIDENT, valueBoolean=bool(child["present_at_incident"])))
    if concern.get("parents_informed"):
        sr_ext.append(_ext(S.EXT_PARENTS_INFORMED, valueCoding={"system": S.PARENTS_INFORMED,
                                                                 "code": concern["parents_informed"]}))
    if concern.get("consent_to_share"):
        sr_ext.append(_ext(S.EXT_CONSENT_TO_SHARE, valueCode=concern["consent_to_share"]))
    if concern.get("requested_action"):
        sr_ext.append(_ext(S.EXT_REQUESTED_ACTION, valueString=concern["requested_action"]))
    if concern.get("lawful_basis"):
        sr_ext.append(_ext(S.EXT_LAWFUL_BASIS, valueString=concern["lawful_basis"]))
    if concern.get("child_voice_absent_reason"):
        sr_ext.append(_ext(S.EXT_CHILDS_VOICE_ABSENT_REASON, valueCoding={
            "system": S.CHILDS_VOICE_ABSENT, "code": concern["child_voice_absent_reason"]}))
    if concern.get("parents_not_informed_reason"):
        sr_ext.append(_ext(S.EXT_PARENTS_NOT_INFORMED_REASON, valueString=concern["parents_not_informed_reason"]))
    if concern.get("referred_to"):
        sr_ext.append(_ext(S.EXT_REFERRED_TO, valueString=concern["referred_to"]))
    if concern.get("status"):
        sr_ext.append(_ext(S.EXT_SOURCE_STATUS, valueString=concern["status"]))

    sr_ident = []
    if concern.get("local_id"):
        sr_ident.append({"system": S.local_id_system(fmt, sender_code), "value": str(concern["local_id"])})
    if concern.get("notice_id"):
        sr_ident.append({"system": S.PPN_NOTICE_ID, "value": concern["notice_id"]})
    if concern.get("reference"):
        system = S.PPN_REFERENCE if sender["kind"] == "police" else S.local_id_system(fmt, sender_code, "reference")
        sr_ident.append({"system": system, "value": concern["reference"]})
    if concern.get("crime_reference"):
        sr_ident.append({"system": S.CRIME_REFERENCE, "value": concern["crime_reference"]})

    notes = []
    if concern.get("narrative"):
        notes.append({"text": concern["narrative"]})
    if concern.get("action_taken"):
        notes.append({"text": f"Action taken: {concern['action_taken']}"})
    if concern.get("safeguarding_actions"):
        notes.append({"text": f"Safeguarding actions: {concern['safeguarding_actions']}"})
    for action in concern.get("actions") or []:
        note = _drop_empty({"time": action.get("at"), "authorString": action.get("by"),
                            "text": f"{action.get('type') or 'action'}: {action.get('notes') or ''}".strip()})
        notes.append(note)

    service_request = _drop_empty({
        "resourceType": "ServiceRequest", "id": rid("service-request"),
        "extension": sr_ext,
        "identifier": sr_ident,
        "status": "active",
        "intent": "order" if record["kind"] == "referral" else "proposal",
        "category": categories,
        "code": {"coding": [_event_coding(event)], "text": EVENT_DISPLAY[event]},
        "subject": child_ref,
        "authoredOn": concern.get("recorded"),
        "requester": role_ref or org_ref,
        "reasonCode": [{"text": concern["summary"]}] if concern.get("summary") else [],
        "supportingInfo": supporting,
        "note": notes,
    })
    focus_ref = entries.add(service_request)

    header.update(_drop_empty({
        "eventCoding": _event_coding(event),
        "source": {"name": sender.get("name") or sender_code,
                   "endpoint": S.agency_uri(sender["kind"], sender_code),
                   "software": "safeguarding-gateway", "version": __version__},
        "sender": org_ref,
        "author": role_ref,
        "focus": [focus_ref],
    }))

    provenance_ext = [
        _ext(S.EXT_MAPPING_VERSION, valueString=f"{fmt} {record.get('mapping_version', '')}".strip()),
        _ext(S.EXT_SOURCE_LOCATION, valueString=source["location"]),
        _ext(S.EXT_SIGNATURE_PRESENT, valueBoolean=bool(source.get("signature_present"))),
    ]
    for issue in record.get("issues") or []:
        provenance_ext.append(_ext(S.EXT_TRANSLATION_ISSUE, valueString=f"{issue['field']}: {issue['reason']}"))
    targets = [{"reference": e["fullUrl"]} for e in entries.items if e["resource"]["resourceType"] != "MessageHeader"]
    recorded = now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    entries.add({
        "resourceType": "Provenance", "id": rid("provenance"),
        "extension": provenance_ext,
        "target": targets,
        "recorded": recorded,
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "CREATE", "display": "create"}], "text": "translated from source format"},
        "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                        "code": "assembler"}]},
                   "who": {"identifier": {"system": S.GATEWAY_ID, "value": "translator"},
                           "display": f"safeguarding-gateway {__version__}"}},
                  {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                        "code": "author"}]},
                   "who": org_ref}],
        "entity": [{"role": "source", "what": {
            "identifier": {"system": S.local_id_system(fmt, sender_code), "value": str(source["record_id"])},
            "display": f"{fmt} file {source.get('file')}, {source['location']}"}}],
    })

    return {
        "resourceType": "Bundle", "id": bundle_id,
        "meta": {"profile": [f"{S.BASE}/StructureDefinition/safeguarding-message"]},
        "identifier": {"system": S.MESSAGE_ID, "value": f"urn:uuid:{bundle_id}"},
        "type": "message",
        "timestamp": recorded,
        "entry": entries.items,
    }
