"""Fictional people, places and identifiers shared by the synthetic-data generators.

Every surname is invented, so no generated name is a real person's; the
lists include apostrophes, accents and hyphens on purpose. NHS numbers start
with 999 (never issued to patients); UPNs carry a correct DfE check letter
unless a generator deliberately breaks one; phone numbers are in Ofcom's
range reserved for drama (07700 900000-900999); e-mail domains end in
``.example``.
"""

from __future__ import annotations

import datetime as dt
import random

from stdnum.gb import upn as _upn

CHILD_FIRST_NAMES = (
    "Elowen", "Tobiah", "Zoë", "Maëlle", "Oisín", "Kestrel", "Piran", "Liora", "Corwen", "Anouk",
    "Séverine", "Tamsin", "Bryony", "Idris", "Wren", "Solenne", "Jory", "Ambrie", "Dashiell", "Renée",
    "Ffion", "Kit", "Nuala", "Teodor",
)
WOMEN_FIRST_NAMES = ("Marigold", "Ottoline", "Delphine", "Rosamund", "Inès", "Philippa", "Sunniva", "Verity")
MEN_FIRST_NAMES = ("Caspian", "Barnaby", "Ewan", "Hollis", "Lachlan", "Rhodri", "Torquil", "Yannick")
ADULT_FIRST_NAMES = WOMEN_FIRST_NAMES + MEN_FIRST_NAMES
SURNAMES = (
    "Quillfeather", "Marrowby", "Thistlecombe", "O'Harnett", "D'Avrenne", "Brackenridge-Lowe",
    "Pennywhistle", "Amberlode", "Fernsby-Oakes", "Oakhallow", "Ravensmere", "Mulberrow",
    "Côté-Varnish", "Élanvale", "Nightingrove", "Wrenfield-Ashe", "Mac an Tsaoir-Lunn", "Ó Briaindle",
    "Gorsebeck", "Lindqvíst-Tapp",
)
STAFF_ROLES = (
    "Class Teacher", "Teaching Assistant", "Head of Year", "Designated Safeguarding Lead",
    "Deputy DSL", "Pastoral Lead", "Midday Supervisor", "School Nurse", "SENCo",
)
SCHOOL_NAMES = (
    "Quillmere Primary School", "Thistledown Junior School", "Larkhollow Academy",
    "St Aldric's Church of England Infant School", "Brackenmoor Community College",
)
STREETS = ("Example Close", "Lantern Row", "Pipistrelle Way", "Gorse Hollow", "Millrace Lane", "Tumbledown Walk")
TOWNS = ("Andover", "Lower Brackley", "Fernhaven", "Stourwick")
OUTWARD_CODES = ("SP10", "SP11", "SO20", "RG28")
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters allowed in an inward code


def school_urn(rng: random.Random) -> str:
    """Return a fictional 6-digit school URN starting with 999."""
    return f"999{rng.randrange(1000):03d}"


def nhs_check_digit(nine: str) -> int:
    """Return the mod-11 check digit of a 9-digit NHS number stem, or 10 when no number is possible."""
    total = sum(int(digit) * weight for digit, weight in zip(nine, range(10, 1, -1)))
    check = 11 - total % 11
    return 0 if check == 11 else check


def nhs_number(rng: random.Random, valid: bool = True) -> str:
    """Return a 10-digit NHS number starting 999; with ``valid=False`` its check digit is wrong."""
    while True:
        stem = f"999{rng.randrange(1_000_000):06d}"
        check = nhs_check_digit(stem)
        if check != 10:
            break
    if not valid:
        check = (check + 1 + rng.randrange(9)) % 10
    return f"{stem}{check}"


def upn(rng: random.Random, la_number: str, admitted: int) -> str:
    """Return a valid UPN for a child admitted in year ``admitted`` by LA ``la_number``."""
    body = f"{la_number}{rng.randrange(2000, 7000):04d}{admitted % 100:02d}{rng.randrange(1000):03d}"
    return _upn.calc_check_digit(body) + body


def break_upn(value: str) -> str:
    """Return ``value`` with a wrong check letter."""
    alphabet = "ABCDEFGHJKLMNPQRTUVWXYZ"
    return alphabet[(alphabet.index(value[0]) + 7) % len(alphabet)] + value[1:]


def postcode(rng: random.Random) -> str:
    """Return a postcode in the standard form, e.g. ``SP10 2BB``."""
    return f"{rng.choice(OUTWARD_CODES)} {rng.randrange(1, 10)}{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}"


def phone(rng: random.Random) -> str:
    """Return a mobile number from the range reserved for drama."""
    return f"07700 900{rng.randrange(1000):03d}"


def date_of_birth(rng: random.Random, on: dt.date, min_age: int = 2, max_age: int = 17) -> dt.date:
    """Return a date of birth for a child aged ``min_age``..``max_age`` (whole years) on ``on``."""
    # 366 and 365 days a year keep both ends inside the range whatever the leap years.
    return on - dt.timedelta(days=rng.randrange(366 * min_age, 365 * (max_age + 1) - 1))


def year_group(dob: dt.date, on: dt.date) -> str:
    """Return the English school year group of a child born ``dob`` on date ``on``."""
    school_year = on.year if on.month >= 9 else on.year - 1
    age_on_31_august = school_year - dob.year - (1 if (dob.month, dob.day) > (8, 31) else 0)
    if age_on_31_august <= 3:
        return "Nursery"
    if age_on_31_august == 4:
        return "Reception"
    return f"Year {min(age_on_31_august - 4, 13)}"


def uk_offset(moment: dt.datetime) -> str:
    """Return ``+01:00`` during British Summer Time, else ``+00:00`` (changes at 01:00 UTC)."""
    def last_sunday(month: int) -> dt.datetime:
        day = dt.date(moment.year, month, 31)
        return dt.datetime.combine(day - dt.timedelta(days=(day.weekday() + 1) % 7), dt.time(1))
    return "+01:00" if last_sunday(3) <= moment < last_sunday(10) else "+00:00"
