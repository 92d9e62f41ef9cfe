"""Synthetic police PPN XML: deterministic, fictional, streamed.

``generate`` writes a ``NoticeBatch`` one notice at a time, so it can write a
1 GB file in constant memory, for tests, benchmarks and vendors. Every notice
validates against ``mappings/ppn-xml/ppn.xsd``. Everything in it is made up:
names come from small lists of invented names, NHS numbers start with 999
(the range NHS England never issues), school URNs start with 999.

With ``quirks=True`` a small, fixed share of notices shows what the format
description lists under "Seen in the field": late submissions, one notice per
child sharing a Reference, the same NoticeId sent twice, times without an
offset, children without a BirthDate or Address, DomesticAbuse without a
RiskAssessment, DASH not completed, evidence not secured, several given
names, names with apostrophes and accents, and a few NHS numbers whose check
digit is wrong.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import BinaryIO

PPN_NS = "urn:x-police-uk:ppn:1"

# How often each quirk appears when quirks are on (per notice, or per
# person where it is about a person). Low, so most notices are ordinary.
RATES = {
    "late_submission": 0.05,
    "household": 0.08,          # an incident with 2-3 children, one notice each
    "resend": 0.015,            # the previous notice sent again, byte for byte
    "no_offset": 0.04,
    "child_no_birthdate": 0.06,
    "child_no_address": 0.06,
    "da_no_risk": 0.05,
    "dash_not_completed": 0.08,
    "evidence_unsecured": 0.15,  # per evidence item
    "several_given": 0.10,      # per person
    "unusual_name": 0.06,       # per person: apostrophe or accent
    "bad_nhs_check": 0.03,      # per NHS number
}

# Invented names only, so no generated record can be mistaken for a person.
GIVEN_F = ["Ambrelle", "Brisanne", "Corvella", "Delphira", "Elowenna", "Fenwyra", "Gilliora", "Halcyra",
           "Isobeth", "Jorunna", "Kestrelle", "Lumira", "Marivelle", "Nerissande"]
GIVEN_M = ["Arvelin", "Bramwick", "Corbinet", "Dashford", "Eldrinor", "Fennick", "Garrowin", "Hollisand",
           "Iverto", "Jasperin", "Kelvarro", "Lorcanto", "Merrivan", "Nestorin"]
GIVEN_ACCENTED = ["Zoëlle", "Renéa", "Anaïssa", "Éliora", "Sébastin", "Björnar", "Joséfin", "Małgorzelka"]
FAMILY = ["Testwood", "Exampleford", "Samplemore", "Fictonby", "Placeholme", "Mockbridge", "Dummersby",
          "Demoleigh", "Specimore", "Trialworth", "Pretendale", "Madeupton"]
FAMILY_UNUSUAL = ["O'Testerly", "D'Examplon", "Fictonby-O'Neverly", "Pérez-Sampleton", "Ní Demoleigh",
                  "Müllersample"]
STREETS = ["Example Road", "Sample Street", "Fiction Lane", "Testing Close", "Placeholder Avenue",
           "Demo Crescent", "Specimen Way", "Madeup Gardens"]
SCHOOL_KINDS = ["Infant School", "Primary School", "Junior School", "Academy", "Community College"]
RANKS = ["PC", "PC", "PC", "DC", "PS", "DS"]

# Each force with towns in its area and their real postcode districts; the
# inward part is made up, so addresses look right but point nowhere real.
FORCES = {
    "HAM": [("Andover", "SP10"), ("Southampton", "SO14"), ("Portsmouth", "PO1"), ("Winchester", "SO23"),
            ("Basingstoke", "RG21")],
    "DOR": [("Bournemouth", "BH1"), ("Poole", "BH15"), ("Dorchester", "DT1"), ("Weymouth", "DT4")],
    "TVP": [("Reading", "RG1"), ("Oxford", "OX4"), ("Slough", "SL1"), ("Aylesbury", "HP20"),
            ("Milton Keynes", "MK9")],
    "MET": [("London", "E1"), ("London", "N1"), ("London", "SE1"), ("London", "SW9"), ("London", "NW10")],
}
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters Royal Mail uses in the inward code

NOTICE_TYPES = [("DomesticAbuse", 50), ("ChildConcern", 30), ("AdultAtRisk", 10), ("MissingPerson", 10)]
EVIDENCE = [("BodyWorn", "Body-worn video of officer attendance"), ("Photographs", "Photographs of injuries"),
            ("Statement", "First account from the caller"), ("CCTV", "Shop CCTV covering the street"),
            ("Other", "Text messages shown to officers")]
PLACES = ["Home address", "Street outside a takeaway", "Car park of a retail park", "Flat, shared stairwell",
          "Bus station", "Park near the play area"]

_FIRST = datetime(2018, 1, 1, tzinfo=timezone.utc)
_SPAN_SECONDS = 7 * 365 * 24 * 3600


def nhs_check_digit(nine_digits: str) -> int | None:
    """Return the mod-11 check digit for the first nine digits of an NHS number, or ``None`` when none exists."""
    total = sum(int(d) * w for d, w in zip(nine_digits, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def generate(out: BinaryIO, count: int, seed: int = 0, quirks: bool = True) -> None:
    """Write a fictional ``NoticeBatch`` of exactly ``count`` notices to ``out``.

    The same ``seed`` and ``quirks`` give the same bytes. The batch is written
    notice by notice (never held whole in memory). Returns ``None``; raises
    ``ValueError`` when ``count`` is negative and whatever ``out.write``
    raises.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    _Synth(out, seed, quirks).write(count)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(text: str) -> str:
    return _esc(text).replace('"', "&quot;")


def _bst(moment: datetime) -> bool:
    # British Summer Time runs from 01:00 UTC on the last Sunday of March to
    # 01:00 UTC on the last Sunday of October.
    def last_sunday(month: int) -> datetime:
        d = date(moment.year, month, 31)
        d -= timedelta(days=(d.weekday() + 1) % 7)
        return datetime(d.year, d.month, d.day, 1, tzinfo=timezone.utc)

    return last_sunday(3) <= moment < last_sunday(10)


class _Synth:
    def __init__(self, out: BinaryIO, seed: int, quirks: bool):
        self.out = out
        self.rng = random.Random(seed)
        self.quirks = quirks
        self.sequence = {force: 1000 + i * 97 for i, force in enumerate(FORCES)}
        self.last_notice: bytes | None = None

    def quirk(self, name: str) -> bool:
        # Draw even when quirks are off, so that switching them off changes
        # only the quirks, not every value after the first one.
        hit = self.rng.random() < RATES[name]
        return hit and self.quirks

    # Output -----------------------------------------------------------------

    def write(self, count: int) -> None:
        self.out.write(
            b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<ppn:NoticeBatch xmlns:ppn="' + PPN_NS.encode() + b'" generatedAt="2025-01-06T06:00:00+00:00">\n'
        )
        written = 0
        while written < count:
            if self.last_notice is not None and self.quirk("resend"):
                # A retry after a timeout: the very same notice again.
                self.out.write(self.last_notice)
                written += 1
                continue
            for notice in self.incident():
                if written == count:
                    break
                data = notice.encode("utf-8")
                self.out.write(data)
                self.last_notice = data
                written += 1
        self.out.write(b"</ppn:NoticeBatch>\n")

    # One incident: one notice, or one per child of a household ------------

    def incident(self) -> list[str]:
        rng = self.rng
        force = rng.choice(list(FORCES))
        town, district = rng.choice(FORCES[force])
        notice_type = rng.choices([t for t, _ in NOTICE_TYPES], [w for _, w in NOTICE_TYPES])[0]
        occurred = _FIRST + timedelta(seconds=rng.randrange(_SPAN_SECONDS))
        occurred = occurred.replace(second=0)
        reported = occurred + timedelta(minutes=rng.randint(1, 90))
        submitted = reported + timedelta(minutes=rng.randint(30, 36 * 60))
        if self.quirk("late_submission"):
            submitted = occurred + timedelta(days=rng.randint(7, 42), minutes=rng.randint(0, 600))
        no_offset = self.quirk("no_offset")
        self.sequence[force] += rng.randint(1, 40)
        reference = f"{force}/{occurred.year}/{self.sequence[force] % 1000000:06d}"
        crime = f"CR/{occurred.year}/{rng.randint(1, 999999):06d}" if rng.random() < 0.4 else None
        family = self.family_name()
        home = self.address(town, district)
        officer = (str(rng.randint(1000, 9999)), f"{rng.choice('ABCDEFGHJKLMNPRSTW')}. {rng.choice(FAMILY)}",
                   rng.choice(RANKS))
        place = rng.choice(PLACES)
        place_postcode = self.postcode(district)
        household = self.quirk("household")
        n_children = rng.randint(2, 3) if household else (rng.randint(0, 1) if notice_type != "AdultAtRisk" else 0)
        if notice_type in ("ChildConcern", "MissingPerson"):
            n_children = max(n_children, 1)
        children = [self.child(family, home, occurred, i) for i in range(n_children)]

        adults: list[dict] = []
        relationships: list[tuple[str, str, str]] = []
        if notice_type == "DomesticAbuse":
            victim = self.adult("p1", "Victim", "F" if rng.random() < 0.8 else "M", family, home, occurred)
            suspect = self.adult("p2", "Suspect", "M" if victim["gender"] == "F" else "F",
                                 family if rng.random() < 0.6 else self.family_name(),
                                 home if rng.random() < 0.6 else None, occurred)
            adults = [victim, suspect]
            relationships.append(("p2", "p1", rng.choice(["Spouse", "Partner", "ExPartner"])))
        elif notice_type == "AdultAtRisk":
            adults = [self.adult("p1", "Victim", rng.choice("FM"), family, home, occurred, older=True)]
            if rng.random() < 0.5:
                adults.append(self.adult("p2", "OtherAdult", rng.choice("FM"), self.family_name(), None, occurred))
                relationships.append(("p2", "p1", "Other"))
        else:
            adults = [self.adult("p1", "OtherAdult", rng.choice("FM"), family, home, occurred)]

        narrative = self.narrative(notice_type, place, town, len(children))
        risk = self.risk() if notice_type == "DomesticAbuse" and not self.quirk("da_no_risk") else None
        consent = rng.choice(["Yes", "No", "NotAsked"]) if notice_type in ("DomesticAbuse", "AdultAtRisk") else None
        actions = rng.choice([None, "Safeguarding advice given; referral to IDVA offered.",
                              "Suspect removed from the address; bail conditions not to attend.",
                              "Child seen and spoken to; no injuries noted."])
        evidence = [self.evidence_item() for _ in range(rng.choice([0, 0, 1, 1, 2]))]
        common = dict(force=force, reference=reference, notice_type=notice_type, occurred=occurred,
                      reported=reported, submitted=submitted, no_offset=no_offset, place=place,
                      place_postcode=place_postcode, narrative=narrative, crime=crime, officer=officer,
                      adults=adults, risk=risk, consent=consent, actions=actions, evidence=evidence)

        if household:
            # One PPN per person at risk, all under the incident's reference.
            notices = []
            for i, child in enumerate(children):
                rels = relationships + self.parent_links(adults, child)
                notices.append(self.notice(**common, children=[child], relationships=rels,
                                           submitted_delay=timedelta(minutes=5 * i)))
            return notices
        rels = list(relationships)
        for child in children:
            rels += self.parent_links(adults, child)
        return [self.notice(**common, children=children, relationships=rels, submitted_delay=timedelta())]

    # People ------------------------------------------------------------------

    def family_name(self) -> str:
        return self.rng.choice(FAMILY_UNUSUAL) if self.quirk("unusual_name") else self.rng.choice(FAMILY)

    def given_names(self, gender: str) -> list[str]:
        rng = self.rng
        pool = GIVEN_F if gender == "F" else GIVEN_M
        first = rng.choice(GIVEN_ACCENTED) if self.quirk("unusual_name") else rng.choice(pool)
        names = [first]
        if self.quirk("several_given"):
            names.append(rng.choice(pool))
        return names

    def postcode(self, district: str) -> str:
        rng = self.rng
        return f"{district} {rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"

    def address(self, town: str, district: str) -> dict:
        line = f"{self.rng.randint(1, 220)} {self.rng.choice(STREETS)}"
        return {"lines": [line], "town": town, "postcode": self.postcode(district)}

    def nhs_number(self) -> str:
        rng = self.rng
        while True:
            body = "999" + f"{rng.randrange(1000000):06d}"
            check = nhs_check_digit(body)
            if check is not None:
                break
        if self.quirk("bad_nhs_check"):
            check = (check + rng.randint(1, 9)) % 10
        return body + str(check)

    def adult(self, pid: str, role: str, gender: str, family: str, home: dict | None, occurred: datetime,
              older: bool = False) -> dict:
        rng = self.rng
        age = rng.randint(68, 94) if older else rng.randint(19, 55)
        born = occurred.date() - timedelta(days=age * 365 + rng.randrange(365))
        return {"id": pid, "role": role, "given": self.given_names(gender), "family": family, "gender": gender,
                "birth": born if rng.random() < 0.9 else None, "address": home,
                "nhs": self.nhs_number() if rng.random() < 0.3 else None, "school": None, "present": None}

    def child(self, family: str, home: dict, occurred: datetime, index: int) -> dict:
        rng = self.rng
        gender = rng.choice("FM")
        age_days = rng.randrange(0, 17 * 365)
        born = occurred.date() - timedelta(days=age_days)
        school = None
        if age_days > 4 * 365 and rng.random() < 0.85:
            school = (f"999{rng.randrange(1000):03d}", f"{rng.choice(FAMILY)} {rng.choice(SCHOOL_KINDS)}")
        return {"id": f"c{index + 1}", "role": "Child", "given": self.given_names(gender), "family": family,
                "gender": gender,
                "birth": None if self.quirk("child_no_birthdate") else born,
                "address": None if self.quirk("child_no_address") else home,
                "nhs": self.nhs_number() if rng.random() < 0.7 else None,
                "school": school, "present": rng.random() < 0.6}

    def parent_links(self, adults: list[dict], child: dict) -> list[tuple[str, str, str]]:
        links = []
        for adult in adults:
            if adult["role"] in ("Victim", "Suspect", "OtherAdult") and adult["family"] == child["family"]:
                links.append((adult["id"], child["id"], "Parent"))
            elif adult["role"] == "Suspect":
                links.append((adult["id"], child["id"], "StepParent"))
        return links

    # Risk, evidence, narrative ------------------------------------------------

    def risk(self) -> dict:
        rng = self.rng
        if self.quirk("dash_not_completed"):
            return {"completed": False, "level": None, "answers": [],
                    "judgement": rng.choice(["Victim would not engage with DASH questions.",
                                             "DASH not completed: victim intoxicated; to be revisited.",
                                             None])}
        answers = [(q, rng.choices(["Yes", "No", "NotKnown"], [3, 6, 1])[0]) for q in range(1, 28)]
        yes = sum(1 for _, a in answers if a == "Yes")
        level = "High" if yes >= 14 else "Medium" if yes >= 10 else "Standard"
        return {"completed": True, "level": level, "answers": answers,
                "judgement": "Officer agrees with the DASH level." if rng.random() < 0.5 else None}

    def evidence_item(self) -> tuple[str, bool, str]:
        kind, text = self.rng.choice(EVIDENCE)
        return kind, not self.quirk("evidence_unsecured"), text

    def narrative(self, notice_type: str, place: str, town: str, children: int) -> str:
        rng = self.rng
        kids = {0: "No children present.", 1: "One child in the household."}.get(
            children, f"{children} children in the household.")
        if notice_type == "DomesticAbuse":
            start = rng.choice(["999 call from a neighbour reporting shouting & banging.",
                                "Caller reported their partner had pushed them against a door.",
                                "Third-party report of an argument in the street, one party crying."])
            end = rng.choice(["Victim declined to make a complaint.", "Suspect arrested on suspicion of assault.",
                              "Both parties gave conflicting accounts."])
        elif notice_type == "ChildConcern":
            start = rng.choice(["Child found alone at the address late at night.",
                                "Officers attending an unrelated call found the home in a poor state.",
                                "School reported a child with an unexplained bruise <2cm on the arm."])
            end = rng.choice(["Parent returned 40 minutes later.", "Child taken to a relative's address.",
                              "Words of advice given to the carer."])
        elif notice_type == "AdultAtRisk":
            start = rng.choice(["Elderly resident reported as confused and without food.",
                                "Concern that a carer is taking the resident's money."])
            end = rng.choice(["Adult social care informed.", "Resident's GP to be contacted."])
        else:
            start = rng.choice(["Child reported missing by a parent after not returning from school.",
                                "Child missing overnight, found the next morning at a friend's house."])
            end = rng.choice(["Return interview to be arranged.", "Third missing episode this month."])
        return f"{start} Location: {place}, {town}. {kids} {end}"

    # Serialising one notice --------------------------------------------------

    def when(self, moment: datetime, no_offset: bool) -> str:
        local = moment + timedelta(hours=1) if _bst(moment) else moment
        text = local.strftime("%Y-%m-%dT%H:%M:%S")
        if no_offset:
            return text
        return text + ("+01:00" if _bst(moment) else "+00:00")

    def notice(self, *, force, reference, notice_type, occurred, reported, submitted, submitted_delay, no_offset,
               place, place_postcode, narrative, crime, officer, adults, children, relationships, risk, consent,
               actions, evidence) -> str:
        notice_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        version = "1.1" if self.rng.random() < 0.3 else "1.0"
        p = [f'  <ppn:PublicProtectionNotice schemaVersion="{version}">\n',
             f"    <ppn:NoticeId>{notice_id}</ppn:NoticeId>\n",
             f"    <ppn:ForceCode>{force}</ppn:ForceCode>\n",
             f"    <ppn:Reference>{_esc(reference)}</ppn:Reference>\n",
             f"    <ppn:NoticeType>{notice_type}</ppn:NoticeType>\n",
             "    <ppn:Incident>\n",
             f"      <ppn:OccurredAt>{self.when(occurred, no_offset)}</ppn:OccurredAt>\n",
             f"      <ppn:ReportedAt>{self.when(reported, no_offset)}</ppn:ReportedAt>\n",
             "      <ppn:Location>\n",
             f"        <ppn:Description>{_esc(place)}</ppn:Description>\n",
             f"        <ppn:Postcode>{place_postcode}</ppn:Postcode>\n",
             "      </ppn:Location>\n",
             f"      <ppn:Narrative>{_esc(narrative)}</ppn:Narrative>\n"]
        if crime:
            p.append(f"      <ppn:CrimeReference>{_esc(crime)}</ppn:CrimeReference>\n")
        p += ["    </ppn:Incident>\n",
              f"    <ppn:SubmittedAt>{self.when(submitted + submitted_delay, no_offset)}</ppn:SubmittedAt>\n",
              "    <ppn:Officer>\n",
              f"      <ppn:CollarNumber>{officer[0]}</ppn:CollarNumber>\n",
              f"      <ppn:Name>{_esc(officer[1])}</ppn:Name>\n",
              f"      <ppn:Rank>{officer[2]}</ppn:Rank>\n",
              "    </ppn:Officer>\n",
              "    <ppn:Persons>\n"]
        for person in adults + children:
            p.append(self.person(person))
        p.append("    </ppn:Persons>\n")
        if relationships:
            p.append("    <ppn:Relationships>\n")
            p += [f'      <ppn:Relationship from="{a}" to="{b}" type="{t}"/>\n' for a, b, t in relationships]
            p.append("    </ppn:Relationships>\n")
        if risk is not None:
            p.append('    <ppn:RiskAssessment type="DASH">\n')
            p.append(f"      <ppn:Completed>{'true' if risk['completed'] else 'false'}</ppn:Completed>\n")
            if risk["level"]:
                p.append(f"      <ppn:Level>{risk['level']}</ppn:Level>\n")
            if risk["answers"]:
                p.append("      <ppn:Answers>")
                p += [f'<ppn:Answer q="{q}">{a}</ppn:Answer>' for q, a in risk["answers"]]
                p.append("</ppn:Answers>\n")
            if risk["judgement"]:
                p.append(f"      <ppn:OfficerJudgement>{_esc(risk['judgement'])}</ppn:OfficerJudgement>\n")
            p.append("    </ppn:RiskAssessment>\n")
        if consent:
            p.append(f"    <ppn:VictimConsentToShare>{consent}</ppn:VictimConsentToShare>\n")
        if actions:
            p.append(f"    <ppn:SafeguardingActions>{_esc(actions)}</ppn:SafeguardingActions>\n")
        if evidence:
            p.append("    <ppn:Evidence>\n")
            p += [f'      <ppn:Item type="{kind}" secured="{"true" if secured else "false"}">{_esc(text)}</ppn:Item>\n'
                  for kind, secured, text in evidence]
            p.append("    </ppn:Evidence>\n")
        p.append("  </ppn:PublicProtectionNotice>\n")
        return "".join(p)

    def person(self, person: dict) -> str:
        given = "".join(f"<ppn:Given>{_esc(g)}</ppn:Given>" for g in person["given"])
        p = [f'      <ppn:Person id="{person["id"]}" role="{person["role"]}">\n',
             f"        <ppn:Name>{given}<ppn:Family>{_esc(person['family'])}</ppn:Family></ppn:Name>\n"]
        if person["birth"]:
            p.append(f"        <ppn:BirthDate>{person['birth'].isoformat()}</ppn:BirthDate>\n")
        p.append(f"        <ppn:Gender>{person['gender']}</ppn:Gender>\n")
        address = person["address"]
        if address:
            lines = "".join(f"<ppn:Line>{_esc(line)}</ppn:Line>" for line in address["lines"])
            p.append(f"        <ppn:Address>{lines}<ppn:Town>{_esc(address['town'])}</ppn:Town>"
                     f"<ppn:Postcode>{address['postcode']}</ppn:Postcode></ppn:Address>\n")
        if person["nhs"]:
            p.append(f"        <ppn:NHSNumber>{person['nhs']}</ppn:NHSNumber>\n")
        if person["school"]:
            urn, name = person["school"]
            p.append(f'        <ppn:School urn="{urn}">{_esc(name)}</ppn:School>\n')
        if person["present"] is not None:
            p.append(f"        <ppn:PresentAtIncident>{'true' if person['present'] else 'false'}</ppn:PresentAtIncident>\n")
        p.append("      </ppn:Person>\n")
        return "".join(p)
