"""Synthetic ``schoolsafe-csv`` incident exports: fictional, deterministic, streamed.

UTF-8 with a byte-order mark, CRLF line ends, RFC 4180 quoting (by
``csv.writer``). One row per pupil per incident: an incident about several
siblings is written once per pupil with the same ``Incident ID`` and the
others in ``Linked Students``. Pupils come back in later incidents, drawn
from a pool of families whose size is capped, so memory stays flat whatever
``count`` is. With ``quirks`` the file also carries what the spec lists
under "Seen in the field" (the encoding and trailing-delimiter variants
excepted: those are properties of a whole file).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from typing import BinaryIO

from gateway.adapters.synth import fictional as fx

HEADER = ("Incident ID", "School URN", "Student", "UPN", "Date of Birth", "Gender", "Year Group",
          "Home Postcode", "Incident Date", "Date Added", "Categories", "Incident", "Action Taken",
          "Linked Students", "Parents/Carers", "Reported By", "Status", "Referral")
# Labels a school made up itself; they are on no ConceptMap.
SCHOOL_OWN_CATEGORIES = ("Young Carer", "Private Fostering", "Elective Home Education")

# quirk -> (share of rows, index of a row that always has it): every quirk is
# in any file of 25 rows or more.
QUIRKS = {
    "quotes_and_commas": (0.15, 1),
    "multi_line": (0.08, 2),
    "single_digit_dates": (0.05, 3),
    "upn_blank": (0.08, 4),
    "odd_postcode": (0.10, 5),
    "upn_untidy": (0.04, 6),
    "two_digit_year": (0.03, 8),
    "upn_bad_check_letter": (0.02, 9),
    "school_category": (0.04, 10),
    "one_part_name": (0.02, 12),
    "referred_without_referral": (0.02, 14),
    "impossible_date": (0.005, 17),
    "future_date_of_birth": (0.005, 19),
}

# main vendor category -> (what staff saw, what the child said, a follow-up line)
_INCIDENTS = {
    "Domestic Abuse": ("{name} told the class teacher about a fight at home last night",
                       "Daddy pushed Mummy, and she cried on the floor",
                       "{name} asked whether they would have to go home tonight."),
    "Physical Abuse": ("A bruise was seen on {name}'s upper arm during PE",
                       "He grabbed me, really hard, because I wouldn't go upstairs",
                       "The mark looked like finger marks, about 3 cm across."),
    "Neglect": ("{name} arrived without breakfast for the third day this week",
                "There's no food, and Mum's been asleep all morning",
                "Uniform unwashed; {name} ate two portions at breakfast club."),
    "Emotional Abuse": ("{name} was tearful and said they were scared to go home",
                        "She says I'm useless, that nobody wants me",
                        "{name} drew a picture of the family with themselves outside the house."),
    "Online Safety": ("{name} showed a friend messages from an adult met in a game",
                      "He said he's 14, and that I mustn't tell anyone",
                      "The account asked for photos and offered gift cards."),
    "Self Harm": ("Fresh scratches were noticed on {name}'s forearm",
                  "It's nothing, it's just the cat",
                  "There is no cat at home, according to the sibling."),
    "Child on Child Abuse": ("{name} reported being held against the fence by older pupils at lunch",
                             "They took my phone, and said they'd do it again",
                             "Two witnesses gave the same account."),
    "Mental Health": ("{name} wrote in a wellbeing session that they did not want to be here",
                      "I just don't want to be here any more",
                      "{name} has felt like this for several weeks."),
    "Missing Education": ("{name} has not attended for three days and home has not answered",
                          "We're going to live at my auntie's, I think",
                          "Home visit: nobody answered; neighbour said the family may have moved."),
    "CCE": ("{name} was seen being collected by unknown older youths in a car",
            "I'm just doing a favour for a mate, it's fine",
            "{name} had a new phone and new trainers."),
}
_SECONDARY = ("Disclosure", "Emotional Abuse", "Neglect", "Attendance", "Behaviour", "Bullying", "Medical",
              "Sexual Abuse", "CSE", "FGM", "Radicalisation", "Other")
_RELATIONSHIPS = (("Mother", True), ("Father", True), ("Stepfather", False), ("Grandmother", False),
                  ("Foster carer", False))
_POOL_SIZE = 400


def generate(out: BinaryIO, count: int, seed: int = 0, quirks: bool = True) -> None:
    """Write a schoolsafe-csv export of ``count`` data rows (fictional pupils) to ``out``.

    The same ``seed`` always gives the same bytes. Returns ``None``; raises
    ``ValueError`` for a negative ``count`` and whatever ``out.write``
    raises. ``out`` is left open.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    rng = random.Random(f"schoolsafe-csv:{seed}")
    # utf-8-sig writes the byte-order mark; newline="" leaves line ends to the csv module.
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(HEADER)
        school = _School(rng)
        written = 0
        while written < count:
            for row in _incident(rng, school, written, count, quirks):
                writer.writerow(row)
                written += 1
        text.flush()
    finally:
        text.detach()  # hand ``out`` back open; closing it is the caller's business


class _Family:
    def __init__(self, rng: random.Random, school: "_School", on: dt.date):
        self.surname = rng.choice(fx.SURNAMES)
        self.postcode = fx.postcode(rng)
        self.carers = []
        for relationship, pr in rng.sample(_RELATIONSHIPS[:2], rng.randrange(1, 3)) + (
                [rng.choice(_RELATIONSHIPS[2:])] if rng.random() < 0.3 else []):
            names = fx.MEN_FIRST_NAMES if relationship in ("Father", "Stepfather") else fx.WOMEN_FIRST_NAMES
            last = self.surname if relationship in ("Mother", "Father", "Grandmother") else rng.choice(fx.SURNAMES)
            self.carers.append(f"{rng.choice(names)} {last} ({relationship}, {'PR' if pr else 'no PR'})")
        self.children = []
        for _ in range(rng.choices((1, 2, 3), (55, 35, 10))[0]):
            dob = fx.date_of_birth(rng, on, 3, 16)
            middle = rng.choice(fx.CHILD_FIRST_NAMES) if rng.random() < 0.3 else ""
            self.children.append({"first": rng.choice(fx.CHILD_FIRST_NAMES), "middle": middle, "dob": dob,
                                  "upn": fx.upn(rng, school.la_number, dob.year + 4),
                                  "gender": rng.choice(("F", "M", "F", "M", "X", ""))})


class _School:
    def __init__(self, rng: random.Random):
        self.urn = fx.school_urn(rng)
        self.la_number = rng.choice(("850", "851", "852"))
        self.start = dt.date(2018, 9, 3) + dt.timedelta(days=rng.randrange(0, 365 * 3))
        self.staff = [f"{rng.choice(fx.ADULT_FIRST_NAMES)} {rng.choice(fx.SURNAMES)} ({role})"
                      for role in fx.STAFF_ROLES]
        self.families: list[_Family] = []
        self.next_id = 4000 + rng.randrange(1000)


def _quirk(rng: random.Random, enabled: bool, name: str, index: int) -> bool:
    share, always_at = QUIRKS[name]
    roll = rng.random()  # drawn even when quirks are off, so both files share their other content
    return enabled and (index == always_at or roll < share)


def _date(day: dt.date, *, single_digits: bool = False, two_digit_year: bool = False) -> str:
    if single_digits:
        return f"{day.day}/{day.month}/{day.year}"
    return f"{day:%d/%m/%y}" if two_digit_year else f"{day:%d/%m/%Y}"


def _time(moment: dt.datetime, single_digits: bool = False) -> str:
    return f"{moment.hour}:{moment.minute:02d}" if single_digits else f"{moment:%H:%M}"


def _student(child: dict, surname: str, one_part: bool) -> str:
    if one_part:
        return child["first"]
    return f"{surname.upper()}, {child['first']}" + (f" {child['middle']}" if child["middle"] else "")


def _incident(rng: random.Random, school: _School, first_row: int, count: int, quirks: bool) -> list[list[str]]:
    day = school.start + dt.timedelta(days=first_row * 300 // max(count, 1) + rng.randrange(3))
    if school.families and rng.random() < 0.35:
        family = rng.choice(school.families)
    else:
        family = _Family(rng, school, day)
        if len(school.families) < _POOL_SIZE:
            school.families.append(family)
        else:
            school.families[rng.randrange(_POOL_SIZE)] = family
    if len(family.children) > 1 and rng.random() < 0.25:
        pupils = family.children[:count - first_row]
    else:
        pupils = [rng.choice(family.children)]
    school.next_id += rng.randrange(1, 9)

    happened = dt.datetime.combine(day, dt.time(rng.randrange(8, 16), rng.randrange(60)))
    added = happened + dt.timedelta(minutes=rng.randrange(10, 60 * 6))
    time_known = rng.random() < 0.7
    main = rng.choice(tuple(_INCIDENTS))
    categories = [main]
    if rng.random() < 0.5:
        extra = rng.choice(_SECONDARY)
        if extra != main:
            categories.append(extra)
    seen, said, follow_up = _INCIDENTS[main]
    referral = rng.choices(("MASH", "None", "Early Help", "Police"), (30, 55, 10, 5))[0]
    status = {"MASH": "Referred", "Police": "Referred", "Early Help": rng.choice(("Open", "Referred"))}.get(
        referral, rng.choice(("Open", "Open", "Closed")))
    action = {"MASH": "Referral made to MASH by DSL.", "Police": "Police informed; DSL to follow up.",
              "Early Help": "Early Help assessment offered to the family."}.get(
        referral, rng.choice(("Logged for DSL review.", "DSL spoke to the child; monitoring for two weeks.")))
    reporter = rng.choice(school.staff)

    rows = []
    for index, child in enumerate(pupils):
        row_index = first_row + index
        q = {name: _quirk(rng, quirks, name, row_index) for name in QUIRKS}
        name = child["first"]
        text = seen.format(name=name) + "."
        if q["quotes_and_commas"] and said:
            text += f' {name} said "{said}".'
        if q["multi_line"]:
            text += "\n" + follow_up.format(name=name)
        cats = categories + ([rng.choice(SCHOOL_OWN_CATEGORIES)] if q["school_category"] else [])

        upn = child["upn"]
        if q["upn_bad_check_letter"]:
            upn = fx.break_upn(upn)
        if q["upn_untidy"]:
            upn = rng.choice((upn.lower(), f"{upn[:4]} {upn[4:8]} {upn[8:]}"))
        if q["upn_blank"]:
            upn = ""
        dob = child["dob"]
        if q["future_date_of_birth"]:
            dob = dob.replace(year=day.year + 1, day=min(dob.day, 28))
        dob_text = _date(dob, single_digits=q["single_digit_dates"],
                         two_digit_year=q["two_digit_year"])

        incident_date = _date(happened.date(), single_digits=q["single_digit_dates"],
                              two_digit_year=q["two_digit_year"])
        if q["impossible_date"]:
            incident_date = f"{rng.choice((30, 31))}/02/{happened.year}"
        if time_known:
            incident_date += " " + _time(happened, q["single_digit_dates"])
        date_added = f"{_date(added.date(), single_digits=q['single_digit_dates'])} {_time(added, q['single_digit_dates'])}"

        postcode = family.postcode
        if q["odd_postcode"]:
            postcode = rng.choice((postcode.lower(), postcode.replace(" ", ""), postcode.replace(" ", "  "),
                                   " " + postcode.lower().replace(" ", "")))
        others = [c for c in pupils if c is not child] or (
            [c for c in family.children if c is not child] if rng.random() < 0.5 else [])
        linked = "; ".join(f"{family.surname.upper()}, {c['first']}" + (f" ({c['upn']})" if rng.random() < 0.8 else "")
                           for c in others)
        row_status, row_referral = status, referral
        if q["referred_without_referral"]:
            row_status, row_referral = "Referred", ""
        rows.append([
            str(school.next_id), school.urn, _student(child, family.surname, q["one_part_name"]), upn, dob_text,
            child["gender"], fx.year_group(child["dob"], day), postcode, incident_date, date_added,
            "; ".join(cats), text, action, linked, "; ".join(family.carers), reporter, row_status, row_referral,
        ])
    return rows
