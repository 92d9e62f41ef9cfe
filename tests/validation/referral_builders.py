"""Complete referral messages for the validation tests, and helpers to take things out of them.

Everything is fictional: NHS numbers start with 999, school URNs with 999.
"""

from __future__ import annotations

import copy
import re
import json
import datetime as dt

from gateway.model import build_bundle
from gateway.model import systems as S
from gateway.validation import extensions as X

NOW = dt.datetime(2019, 6, 10, 12, 0, tzinfo=dt.timezone.utc)
NHS_OK = "9990000018"
UPN_OK = "K850210117001"
UPN_TEMPORARY_OK = "W85021011700A"


def _people() -> list[dict]:
    return [
        {"local_id": "m", "given": ["Ottoline"], "family": "Quillfeather", "relationship": {"code": "MTH", "display": "mother"},
         "parental_responsibility": True, "lives_with_child": True, "alleged_harm": False, "phone": "07700 900123"},
        {"local_id": "s", "given": ["Torquil"], "family": "Marrowby", "relationship": {"code": "STPFTH", "display": "stepfather"},
         "parental_responsibility": False, "lives_with_child": True, "alleged_harm": True},
    ]


def _child(**extra) -> dict:
    child = {"local_id": "c", "given": ["Elowen"], "family": "Quillfeather", "birth_date": "2012-04-03",
             "gender": "female", "nhs_number": NHS_OK, "upn": UPN_OK,
             "address": {"lines": ["4 Example Close"], "town": "Andover", "postcode": "SP10 2BB"}}
    child.update(extra)
    return child


def school_record() -> dict:
    """Return a canonical school referral that holds every item of the standard the model can carry."""
    return {
        "format": "test", "mapping_version": "1", "kind": "referral",
        "source": {"file": "test.json", "location": "/concerns/0", "record_id": "r1"},
        "sender": {"kind": "school", "code": "999101", "name": "Quillmere Primary School", "la_number": "850"},
        "referrer": {"name": "Verity Thistlecombe", "role": "Designated Safeguarding Lead",
                     "email": "dsl@quillmere.example", "phone": "07700 900456"},
        "child": _child(),
        "people": _people(),
        "concern": {
            "local_id": "r1", "summary": "Bruising to upper arm.",
            "narrative": "A teaching assistant saw bruises on Elowen's arm during PE.",
            "categories": [{"code": "physical", "display": "Physical abuse", "label": "physical", "mapped": True},
                           {"system": S.CONCERN_CONTEXT, "code": "disclosure", "display": "Disclosure",
                            "label": "disclosure", "mapped": True}],
            "occurred": "2019-06-05T13:00:00+01:00", "recorded": "2019-06-05T14:32:00+01:00",
            "child_voice": "He grabbed me really hard.", "child_spoken_to": True, "parents_informed": "not-safe",
            "action_taken": "DSL spoke to the child; body map completed.", "immediate_risk": False,
            "consent_to_share": "yes",
        },
    }


def police_record() -> dict:
    """Return a canonical police DomesticAbuse notice that holds every item of the standard."""
    return {
        "format": "test", "mapping_version": "1", "kind": "referral",
        "source": {"file": "test.xml", "location": "/ppn:PublicProtectionNotice[1]", "record_id": "n1"},
        "sender": {"kind": "police", "code": "DOR", "name": "Dorset Police"},
        "referrer": {"name": "A. Officer", "role": "PC", "phone": "07700 900789",
                     "identifier": {"system": S.COLLAR_NUMBER, "value": "4521"}},
        "child": _child(school={"urn": "999101", "name": "Quillmere Primary School"}, present_at_incident=True),
        "people": _people(),
        "concern": {
            "notice_id": "3f6c2a1e-0000-4000-8000-000000000001", "reference": "DOR/2019/000001",
            "notice_type": "DomesticAbuse",
            "narrative": "Officers attended a report of shouting; the child was in the household.",
            "categories": [{"code": "domestic-abuse", "display": "Domestic abuse", "label": "DomesticAbuse",
                            "mapped": True}],
            "occurred": "2019-06-05T03:00:00+01:00", "reported": "2019-06-05T03:04:00+01:00",
            "submitted": "2019-06-05T11:00:00+01:00", "recorded": "2019-06-05T11:00:00+01:00",
            "child_voice": "I hid under the bed.", "child_spoken_to": True, "parents_informed": "yes",
            "safeguarding_actions": "Suspect removed from the address overnight.", "immediate_risk": True,
            "consent_to_share": "Yes",
        },
        "risk": [{"kind": "dash", "completed": True, "level": "high", "answers": {"1": "Yes"}}],
        "evidence": [{"type": "BodyWorn", "secured": True, "description": "Body-worn video of attendance"}],
    }


RECORDS = {"school": school_record, "police": police_record}


def complete_bundle(kind: str) -> dict:
    """Return a message Bundle of ``kind`` (school or police) with every item present.

    The builder cannot carry the standard's new extensions yet, so they are added here.
    """
    bundle = build_bundle(RECORDS[kind](), now=NOW)
    sr = first(bundle, "ServiceRequest")
    sr["extension"].append({"url": X.EXT_REQUESTED_ACTION, "valueString": "Assessment under section 47"})
    return bundle


def entries(bundle: dict, rtype: str) -> list[tuple[int, dict]]:
    """Return ``(index, resource)`` of every entry of ``rtype``."""
    return [(i, e["resource"]) for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == rtype]


def first(bundle: dict, rtype: str) -> dict:
    """Return the first resource of ``rtype``; raises IndexError when there is none."""
    return entries(bundle, rtype)[0][1]


def index_of(bundle: dict, rtype: str) -> int | None:
    """Return the entry index of the first resource of ``rtype``, or None."""
    found = entries(bundle, rtype)
    return found[0][0] if found else None


def drop_ext(resource: dict, *urls: str) -> None:
    """Remove the top-level extensions ``urls`` from ``resource``."""
    resource["extension"] = [e for e in resource.get("extension", []) if e["url"] not in urls]
    if not resource["extension"]:
        del resource["extension"]


def issues_for(outcome: dict, item_id: str) -> list[dict]:
    """Return the issues of ``outcome`` that name ``item_id``."""
    return [i for i in outcome["issue"]
            if any(c.get("code") == item_id for c in i.get("details", {}).get("coding", []))]


def flagged(outcome: dict) -> set[str]:
    """Return the ids of every item, check or flag the outcome's issues name."""
    return {c["code"] for i in outcome["issue"] for c in i.get("details", {}).get("coding", [])}


def clone(bundle: dict) -> dict:
    return copy.deepcopy(bundle)


def quality_input(tmp_path):
    """An NDJSON file for ``gateway quality``: three school referrals (complete to lacking), a police one, a bad line."""
    school = complete_bundle("school")
    lacking = clone(school)
    sr = first(lacking, "ServiceRequest")
    sr["extension"] = [e for e in sr["extension"] if e["url"] not in (S.EXT_CHILDS_VOICE, S.EXT_IMMEDIATE_RISK)]
    lacking_more = clone(lacking)
    first(lacking_more, "PractitionerRole").pop("telecom")
    first(lacking_more, "Practitioner").pop("telecom")
    sr = first(lacking_more, "ServiceRequest")
    sr["extension"] = [e for e in sr["extension"]
                       if e["url"] not in (S.EXT_OCCURRED, S.EXT_PARENTS_INFORMED, S.EXT_CONSENT_TO_SHARE)]
    police = complete_bundle("police")
    path = tmp_path / "messages.ndjson"
    path.write_text("".join(json.dumps(b) + "\n" for b in (school, lacking, lacking_more, police)) + "[1]\n")
    return path


_SIMPLE = re.compile(r"^Bundle(\.[A-Za-z]+(\[\d+\])?)*$")


def place(issue: dict) -> str:
    """Return the FHIRPath an issue names: its ``location`` (the fuller form) or else its ``expression``.

    Asserts that ``expression`` is R4's simple form (element names and indexes only).
    """
    (expression,) = issue["expression"]
    assert _SIMPLE.match(expression), f"issue.expression {expression!r} is not R4's simple form"
    return (issue.get("location") or issue["expression"])[0]
