"""Synthetic ``concernhub-json`` exports: fictional, deterministic, streamed.

Each concern is written as soon as it is made, so an export of any size (a
1 GB benchmark file) needs no more memory than one concern. The output is a
2.3 export of one fictional school; with ``quirks`` it also carries what the
spec lists under "Seen in the field".
"""

from __future__ import annotations

import datetime as dt
import json
import random
import unicodedata
import uuid
from typing import Any, BinaryIO

from gateway.adapters.synth import fictional as fx

EXPORT_VERSION = "2.3"
CATEGORIES = ("physical", "emotional", "sexual", "neglect", "domestic-abuse", "child-on-child", "online",
              "self-harm", "mental-health", "radicalisation", "fgm", "cse", "cce", "missing",
              "honour-based", "other")
# Codes a newer ConcernHub sends that the spec (and so the gateway's map) does not list.
UNKNOWN_CATEGORIES = ("gaming-addiction", "cyber-flashing", "county-lines")

# quirk -> (share of concerns, index of a concern that always has it), so every
# quirk shows up in any file of 25 concerns or more.
QUIRKS = {
    "raised_at_without_offset": (0.05, 3),
    "happened_after_raised": (0.04, 5),
    "nhs_number_spaces": (0.20, 1),
    "nhs_number_bad_check_digit": (0.03, 7),
    "empty_strings": (0.10, 2),
    "unknown_category": (0.03, 11),
    "one_part_name": (0.02, 13),
}

_TEMPLATES = {
    "physical": ("Bruise on {name}'s cheek; says it was from a fall.",
                 "{name} arrived with a bruise on the left cheek. Said \"I fell off the sofa\", then later "
                 "told a friend it was \"because I was naughty\".",
                 "I fell off the sofa. It doesn't hurt."),
    "emotional": ("{name} withdrawn and tearful after the weekend.",
                  "{name} cried twice during the morning and would not say why. Told the TA that home is "
                  "\"really shouty\" at the moment.",
                  "Everyone is always shouting at home."),
    "neglect": ("{name} hungry and in the same clothes all week.",
                "{name} has worn the same uniform since Monday, and ate two breakfasts at breakfast club. "
                "Said there was \"nothing in the cupboards\".",
                "There's nothing in the cupboards."),
    "domestic-abuse": ("{name} describes an argument at home with someone hurt.",
                       "At drop-off {name} said a grown-up at home \"pushed Mum into the door\" last night. "
                       "{name} hid upstairs with a younger sibling.",
                       "He pushed Mum into the door and she was crying."),
    "online": ("{name} has been messaged by an unknown adult in a game.",
               "{name} showed a friend messages from an account claiming to be 14, asking for photos and "
               "to keep it secret.",
               "He said he was 14 and that I mustn't tell anyone."),
    "self-harm": ("Marks seen on {name}'s forearm.",
                  "During PE a member of staff noticed fresh scratches on {name}'s forearm. {name} said they "
                  "were from the cat, but there is no cat at home.",
                  ""),
    "child-on-child": ("{name} reports being hurt by older pupils.",
                       "{name} said two older pupils pinned them against the fence at lunch and took their "
                       "phone. Friends confirmed it.",
                       "They held me and said they'd do it again."),
    "missing": ("{name} missing from school for three days, no contact from home.",
                "{name} has not attended since Tuesday; calls to both contacts went unanswered and the "
                "home visit found nobody in.",
                ""),
    "mental-health": ("{name} says they do not want to be here any more.",
                      "In a wellbeing session {name} wrote \"I don't want to be here any more\" and later "
                      "said they have felt this way for weeks.",
                      "I just don't want to be here any more."),
    "other": ("Concern about {name}'s home situation.",
              "{name} mentioned staying with a family friend for several weeks; the school had not been told "
              "of any change of carer.",
              ""),
}
_SECONDARY = ("emotional", "neglect", "disclosure", "mental-health", "cce", "cse", "radicalisation",
              "honour-based", "fgm", "sexual")
_ACTION_NOTES = {
    "dsl-review": "Passed to the DSL the same day.",
    "call-parent": "Spoke to parent by phone; explanation recorded.",
    "monitor": "Added to the monitoring list for two weeks.",
    "referral": "Referral made by phone; written referral to follow.",
    "police-contacted": "Police informed on 101; log number recorded.",
    "other": "Discussed with the school nurse.",
}
_ATTACHMENTS = (("bodymap.pdf", "application/pdf"), ("photo-of-note.jpg", "image/jpeg"),
                ("dsl-notes.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))


def generate(out: BinaryIO, count: int, seed: int = 0, quirks: bool = True) -> None:
    """Write a concernhub-json 2.3 export of ``count`` fictional concerns to ``out``.

    The same ``seed`` always gives the same bytes (UTF-8, no BOM). Returns
    ``None``; raises ``ValueError`` for a negative ``count`` and whatever
    ``out.write`` raises.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    # A string seed is hashed the same way on every run and platform.
    rng = random.Random(f"concernhub-json:{seed}")
    school = _School(rng)
    exported = school.start + dt.timedelta(days=310)
    header = {"exportVersion": EXPORT_VERSION, "exportedAt": f"{exported:%Y-%m-%d}T10:15:00Z",
              "organisation": school.organisation}
    out.write(b"{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {_dumps(value)},\n".encode())
    out.write(b'  "concerns": [')
    for index in range(count):
        out.write((b"\n    " if index == 0 else b",\n    ") + _dumps(_concern(rng, school, index, count, quirks)).encode())
    out.write(b"\n  ]\n}\n" if count else b"]\n}\n")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _School:
    def __init__(self, rng: random.Random):
        name = rng.choice(fx.SCHOOL_NAMES)
        self.la_number = rng.choice(("850", "851", "852"))
        self.organisation = {"urn": fx.school_urn(rng), "name": name, "laNumber": self.la_number}
        self.domain = name.lower().replace("'", "").split()[0] + ".example"
        self.start = dt.date(2018, 9, 3) + dt.timedelta(days=rng.randrange(0, 365 * 3))
        self.staff = [(f"{rng.choice(fx.ADULT_FIRST_NAMES)} {rng.choice(fx.SURNAMES)}", role)
                      for role in fx.STAFF_ROLES]
        self.dsl = self.staff[3][0]


def _quirk(rng: random.Random, enabled: bool, name: str, index: int) -> bool:
    share, always_at = QUIRKS[name]
    roll = rng.random()  # drawn even when quirks are off, so both files share their other content
    return enabled and (index == always_at or roll < share)


def _stamp(moment: dt.datetime, with_offset: bool = True) -> str:
    text = f"{moment:%Y-%m-%dT%H:%M:%S}"
    return text + fx.uk_offset(moment) if with_offset else text


def _concern(rng: random.Random, school: _School, index: int, count: int, quirks: bool) -> dict:
    q = {name: _quirk(rng, quirks, name, index) for name in QUIRKS}
    blank = q["empty_strings"]

    day = school.start + dt.timedelta(days=index * 300 // max(count, 1) + rng.randrange(3))
    raised = dt.datetime.combine(day, dt.time(rng.randrange(8, 17), rng.randrange(60)))
    dob = fx.date_of_birth(rng, day)
    surname = rng.choice(fx.SURNAMES)
    first = rng.choice(fx.CHILD_FIRST_NAMES)

    nhs = fx.nhs_number(rng, valid=not q["nhs_number_bad_check_digit"])
    if q["nhs_number_spaces"]:
        nhs = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    subject: dict[str, Any] = {
        "firstName": first,
        "lastName": "" if q["one_part_name"] else surname,
        "dateOfBirth": dob.isoformat(),
        "upn": "" if blank else fx.upn(rng, school.la_number, dob.year + 4),
        "nhsNumber": nhs,
        "gender": "" if blank else rng.choice(("female", "male", "female", "male", "other", "unknown")),
        "address": {"line1": f"{rng.randrange(1, 120)} {rng.choice(fx.STREETS)}",
                    "line2": "",
                    "town": rng.choice(fx.TOWNS),
                    "postcode": fx.postcode(rng)},
        "yearGroup": fx.year_group(dob, day),
        "sen": rng.random() < 0.15,
        "lookedAfter": rng.random() < 0.06,
    }
    if not blank:
        del subject["address"]["line2"]  # unknown fields are left out, except in the quirk

    main = rng.choice(tuple(_TEMPLATES))
    categories = [main]
    if rng.random() < 0.4:
        extra = rng.choice(_SECONDARY)
        if extra not in categories:
            categories.append(extra)
    if q["unknown_category"]:
        categories.append(rng.choice(UNKNOWN_CATEGORIES))
    summary, details, voice = (text.format(name=first) for text in _TEMPLATES[main])

    reporter, role = rng.choice(school.staff)
    raised_by = {"name": reporter, "role": role,
                 "email": "" if blank else f"{reporter[0].lower()}.{_slug(reporter.split(' ', 1)[1])}@{school.domain}"}

    if q["happened_after_raised"]:
        happened = (raised + dt.timedelta(days=rng.randrange(1, 3))).date().isoformat()
    elif blank:
        happened = ""
    elif rng.random() < 0.5:
        happened = (day - dt.timedelta(days=rng.randrange(0, 4))).isoformat()
    else:
        happened = _stamp(raised - dt.timedelta(hours=rng.randrange(1, 30)))

    status = rng.choices(("referred", "open", "monitoring", "closed", "nfa"), (30, 25, 25, 15, 5))[0]
    outcome: dict[str, Any] = {"status": status}
    kinds = ["dsl-review"]
    if status == "referred":
        referred_at = raised + dt.timedelta(minutes=rng.randrange(20, 600))
        outcome["referredTo"] = rng.choices(("MASH", "childrens-services", "early-help", "police"), (60, 25, 10, 5))[0]
        outcome["referredAt"] = _stamp(referred_at)
        kinds.append("referral")
        if outcome["referredTo"] == "police" or main == "domestic-abuse" and rng.random() < 0.5:
            kinds.append("police-contacted")
    elif status == "monitoring":
        kinds.append("monitor")
    elif rng.random() < 0.5:
        kinds.append(rng.choice(("call-parent", "other")))
    actions = []
    at = raised
    for kind in kinds:
        at += dt.timedelta(minutes=rng.randrange(5, 90))
        actions.append({"at": _stamp(at), "by": school.dsl if kind != "dsl-review" else reporter,
                        "type": kind, "notes": _ACTION_NOTES[kind]})

    concern: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "reference": f"CH-{day.year}-{index + 1:05d}",
        "subject": subject,
        "raisedBy": raised_by,
        "raisedAt": _stamp(raised, with_offset=not q["raised_at_without_offset"]),
        "happenedAt": happened,
        "categories": categories,
        "riskRating": "" if blank else rng.choice(("green", "amber", "amber", "red")),
        "summary": summary,
        "details": details,
        "childsVoice": voice,
        "childSpokenTo": rng.random() < 0.8,
        "parentsInformed": rng.choice(("yes", "yes", "no", "not-safe")),
        "actions": actions,
        "outcome": outcome,
        "family": _family(rng, surname, subject, day, school),
        "attachments": [_attachment(rng) for _ in range(rng.choices((0, 1, 2), (60, 30, 10))[0])],
    }
    if not voice and not blank:
        del concern["childsVoice"]
    return concern


def _family(rng: random.Random, surname: str, subject: dict, day: dt.date, school: _School) -> list[dict]:
    family = []
    harm_alleged = rng.random() < 0.3

    def person(relationship: str, last: str, pr: bool, lives: bool, **extra: Any) -> dict:
        names = {"mother": fx.WOMEN_FIRST_NAMES, "father": fx.MEN_FIRST_NAMES,
                 "stepfather": fx.MEN_FIRST_NAMES}.get(relationship, fx.ADULT_FIRST_NAMES)
        member = {"name": f"{rng.choice(names)} {last}", "relationship": relationship,
                  "parentalResponsibility": pr, "livesWithChild": lives}
        if rng.random() < 0.7:
            member["phone"] = fx.phone(rng)
        member.update(extra)
        return member

    if subject["lookedAfter"]:
        family.append(person("carer", rng.choice(fx.SURNAMES), False, True))
        family.append(person("mother", surname, True, False))
    else:
        family.append(person("mother", surname, True, True))
        shape = rng.choice(("father", "stepfather", "partner-of-parent", "none"))
        if shape == "father":
            family.append(person("father", surname, True, rng.random() < 0.7))
        elif shape != "none":
            family.append(person(shape, rng.choice(fx.SURNAMES), False, True))
        if rng.random() < 0.2:
            family.append(person("grandparent", surname, False, rng.random() < 0.3))
    if harm_alleged and len(family) > 1:
        family[-1]["concernsAbout"] = True
    for _ in range(rng.choices((0, 1, 2), (40, 45, 15))[0]):
        dob = fx.date_of_birth(rng, day)
        family.append({"name": f"{rng.choice(fx.CHILD_FIRST_NAMES)} {surname}", "relationship": "sibling",
                       "parentalResponsibility": False, "livesWithChild": True,
                       "dateOfBirth": dob.isoformat(), "upn": fx.upn(rng, school.la_number, dob.year + 4)})
    return family


def _attachment(rng: random.Random) -> dict:
    filename, content_type = rng.choice(_ATTACHMENTS)
    return {"filename": filename, "contentType": content_type, "sha256": f"{rng.getrandbits(256):064x}",
            "size": rng.randrange(8_000, 2_000_000)}


def _slug(text: str) -> str:
    # E-mail local parts stay ASCII: "Côté-Varnish" -> "cotevarnish".
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())
