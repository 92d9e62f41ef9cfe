"""Fictional people and their records, with known truth, for training and testing the matching model.

:func:`generate` returns records from several sources (school, health,
police, children's services) about fictional people in fictional families,
each record knowing the person it is about. Deterministic for a seed.

What makes it hard, on purpose, and in what proportion (per person or per
record, as marked; the figures are the module's constants below):

- **common names**: given names and surnames are drawn from lists of popular
  ones with a steep (Zipf) popularity, so that a few surnames ("Smith",
  "Jones") cover a large share and name alone never identifies a child.
  Names alone are fine: no generated person is a real one;
- **families**: children share a household (postcode) and most often a
  surname and a school with their siblings; parents are records too;
- **twins**: 3% of families with children have twins (about 1.5% of births in
  England are twins): same surname, date of birth, address and school,
  different given names, a third of them close (Ella and Emma, Mia and Mya);
- **double-barrelled surnames**: 8% of families; a record uses one part of
  it 40% of the time;
- per record: a typo in the given name 4%, in the family name 4%; a nickname
  10% (when the name has one); a middle name present 40% of the time for the
  25% of people who have one; initial only 2% (police); given and family
  swapped 1.5%; case changed 30%; accents dropped 50% of the time for names
  that have them; date of birth day and month transposed 2%, one component
  wrong 2%, missing 3%; sex missing 10%; postcode missing 10%;
- **moves**: 20% of people moved house once; each record is dated before or
  after the move. 10% changed school;
- identifiers by source: health has the NHS number 90% of the time, schools
  the UPN 85%, children's services the NHS number 50% and UPN 30%, police the
  NHS number 10%; 1% of identifiers are mistyped (an invalid check digit,
  dropped by :func:`~gateway.linkage.matching.normalise`).

NHS numbers are in the 999 range and unique per person; UPNs have a correct
check letter (python-stdnum) and a DfE number from a small list; school URNs
are 999xxx.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator

from gateway.adapters.synth import fictional
from gateway.linkage.matching import PersonRecord, nickname_groups, nicknames_by_formal_name, normalise

BOY_NAMES = (
    "oliver", "george", "noah", "arthur", "harry", "leo", "muhammad", "jack", "charlie", "oscar",
    "jacob", "henry", "thomas", "freddie", "alfie", "theo", "william", "theodore", "archie", "joshua",
    "alexander", "james", "isaac", "edward", "lucas", "tommy", "finley", "max", "logan", "ethan",
    "mohammed", "teddy", "benjamin", "arlo", "joseph", "sebastian", "harrison", "elijah", "adam", "daniel",
    "samuel", "louie", "mason", "reuben", "albie", "rory", "jaxon", "hugo", "luca", "zachary",
    "jayden", "jaden", "matthew", "michael", "david", "ryan", "nathan", "dylan", "rhys", "kai",
)
GIRL_NAMES = (
    "olivia", "amelia", "isla", "ava", "ivy", "freya", "lily", "florence", "mia", "willow",
    "rosie", "sophia", "isabella", "grace", "daisy", "sienna", "poppy", "elsie", "emily", "ella",
    "evelyn", "phoebe", "sofia", "evie", "charlotte", "harper", "millie", "matilda", "maya", "sophie",
    "alice", "emma", "isabelle", "esme", "ruby", "chloé", "zoë", "renée", "aoife", "niamh",
    "lucy", "jessica", "hannah", "eleanor", "elizabeth", "victoria", "abigail", "mya", "lila", "layla",
)
MIDDLE_NAMES = {
    "female": ("rose", "grace", "mae", "louise", "marie", "jane", "anne"),
    "male": ("james", "john", "lee", "thomas", "paul", "david", "lewis"),
}
ADULT_MEN = (
    "david", "paul", "mark", "andrew", "richard", "stephen", "michael", "christopher", "robert", "john", "daniel", "lee",
)
ADULT_WOMEN = (
    "sarah", "claire", "emma", "nicola", "rebecca", "kelly", "lisa", "laura", "samantha", "victoria", "jennifer", "susan",
)
SURNAMES = (
    "smith", "jones", "williams", "taylor", "brown", "davies", "evans", "wilson", "thomas", "johnson",
    "roberts", "robinson", "thompson", "wright", "walker", "white", "edwards", "hughes", "green", "hall",
    "lewis", "harris", "clarke", "patel", "jackson", "wood", "turner", "martin", "cooper", "hill",
    "ward", "morris", "moore", "clark", "lee", "king", "baker", "harrison", "morgan", "allen",
    "james", "scott", "phillips", "watson", "davis", "parker", "price", "bennett", "young", "griffiths",
    "mitchell", "kelly", "cook", "carter", "richardson", "bailey", "collins", "bell", "shaw", "murphy",
    "miller", "cox", "richards", "khan", "marshall", "anderson", "simpson", "ellis", "adams", "singh",
    "begum", "wilkinson", "foster", "chapman", "powell", "webb", "rogers", "gray", "mason", "ali",
    "hunt", "hussain", "campbell", "matthews", "owen", "palmer", "holmes", "mills", "barnes", "knight",
    "lloyd", "butler", "russell", "barker", "fisher", "stevens", "jenkins", "murray", "dixon", "harvey",
    "o'brien", "mcdonald", "nowak", "kowalski", "da silva", "o'connor", "ó súilleabháin", "müller",
)
#: Twins with close given names: the trap the twins rule is for.
CLOSE_TWIN_NAMES = (
    ("ella", "emma"), ("mia", "mya"), ("lily", "lila"), ("isla", "ivy"), ("jayden", "jaden"),
    ("ava", "eva"), ("evie", "elsie"), ("maya", "mia"),
)
LA_NUMBERS = ("850", "851", "852", "335", "919")
DISTRICTS = ("SP10", "SP11", "SO20", "RG28", "SO51", "SP4")
SOURCES = ("school", "health", "police", "childrens-services")

TWIN_FAMILY_RATE = 0.03
DOUBLE_BARRELLED_RATE = 0.08
PART_OF_DOUBLE_BARRELLED = 0.40
GIVEN_TYPO, FAMILY_TYPO = 0.04, 0.04
NICKNAME = 0.10
MIDDLE_NAME_PERSON, MIDDLE_NAME_SHOWN = 0.25, 0.40
INITIAL_ONLY_POLICE = 0.02
SWAPPED = 0.015
CASE_CHANGED, ACCENTS_DROPPED = 0.30, 0.50
DOB_TRANSPOSED, DOB_COMPONENT, DOB_MISSING = 0.02, 0.02, 0.03
SEX_MISSING, POSTCODE_MISSING = 0.10, 0.10
MOVED, CHANGED_SCHOOL = 0.20, 0.10
MISTYPED_IDENTIFIER = 0.01
IDENTIFIERS = {  # source: (P(NHS number), P(UPN))
    "school": (0.05, 0.85),
    "health": (0.90, 0.0),
    "police": (0.10, 0.0),
    "childrens-services": (0.50, 0.30),
}


@dataclasses.dataclass(frozen=True)
class Person:
    """One fictional person as they truly are."""

    person_id: str
    family_id: str
    given: str
    middle: str | None
    family: str
    birth_date: dt.date
    sex: str
    postcodes: tuple[str, ...]   # the first, then after a move
    schools: tuple[str, ...]
    nhs_number: str | None
    upn: str | None
    twin_key: str | None = None   # the same for both of a pair of twins


@dataclasses.dataclass(frozen=True)
class SynthRecord:
    """One record a source holds about a person: the raw values, normalised, and the truth."""

    record_id: str
    person_id: str
    family_id: str
    source: str
    raw: dict
    record: PersonRecord
    twin_key: str | None   # the same for the records of a set of twins (and differs by person)


def _zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


class _Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.nhs_used: set[str] = set()
        self.upn_used: set[str] = set()
        self.surname_weights = _zipf_weights(len(SURNAMES), 0.6)
        self.boy_weights = _zipf_weights(len(BOY_NAMES), 0.7)
        self.girl_weights = _zipf_weights(len(GIRL_NAMES), 0.7)
        self.schools = [f"999{n:03d}" for n in self.rng.sample(range(1000), 40)]
        self.nicknames = nicknames_by_formal_name()

    # -- people ---------------------------------------------------------

    def postcode(self) -> str:
        letters = fictional.POSTCODE_LETTERS
        r = self.rng
        return f"{r.choice(DISTRICTS)} {r.randrange(1, 10)}{r.choice(letters)}{r.choice(letters)}"

    def nhs_number(self) -> str:
        while True:
            value = fictional.nhs_number(self.rng)
            if value not in self.nhs_used:
                self.nhs_used.add(value)
                return value

    def upn(self, birth: dt.date) -> str:
        while True:
            value = fictional.upn(self.rng, self.rng.choice(LA_NUMBERS), birth.year + 4)
            if value not in self.upn_used:
                self.upn_used.add(value)
                return value

    def given(self, sex: str, avoid: set[str] = frozenset()) -> str:
        """Return a given name that is not one of ``avoid`` nor a nickname of one (no Theo beside a Theodore)."""
        names, weights = (BOY_NAMES, self.boy_weights) if sex == "male" else (GIRL_NAMES, self.girl_weights)
        groups = nickname_groups()
        taken = set().union(*(groups.get(n, {n}) for n in avoid)) if avoid else set()
        while True:
            name = self.rng.choices(names, weights)[0]
            if name not in avoid and not (groups.get(name, {name}) & taken):
                return name

    def family(self, family_id: str) -> list[Person]:
        r = self.rng
        surname = r.choices(SURNAMES, self.surname_weights)[0]
        if r.random() < DOUBLE_BARRELLED_RATE:
            other = r.choices(SURNAMES, self.surname_weights)[0]
            if other != surname:
                surname = f"{surname}-{other}"
        home = self.postcode()
        moved_to = self.postcode() if r.random() < MOVED else None
        postcodes = (home, moved_to) if moved_to else (home,)
        school = r.choice(self.schools)
        people: list[Person] = []
        n = len(people)

        def add(given, sex, birth, family=surname, middle=None, schools=(), upn=True, twin_key=None) -> Person:
            nonlocal n
            n += 1
            person = Person(
                person_id=f"{family_id}-{n}",
                family_id=family_id,
                given=given,
                middle=middle,
                family=family,
                birth_date=birth,
                sex=sex,
                postcodes=postcodes,
                schools=schools,
                nhs_number=self.nhs_number(),
                upn=self.upn(birth) if upn else None,
                twin_key=twin_key,
            )
            people.append(person)
            return person

        adults = r.choice((1, 2, 2))
        for i in range(adults):
            sex = "female" if i == 0 else "male"
            given = r.choice(ADULT_WOMEN if sex == "female" else ADULT_MEN)
            birth = dt.date(1965, 1, 1) + dt.timedelta(days=r.randrange(365 * 35))
            own = surname if r.random() < 0.7 else r.choices(SURNAMES, self.surname_weights)[0]
            add(given, sex, birth, family=own, upn=False)
        children = r.choice((1, 1, 2, 2, 2, 3, 3, 4))
        used: set[str] = set()
        births: list[dt.date] = []
        for _ in range(children):
            births.append(dt.date(2005, 1, 1) + dt.timedelta(days=r.randrange(365 * 20)))
        twins = r.random() < TWIN_FAMILY_RATE
        for i, birth in enumerate(births):
            sex = r.choice(("male", "female"))
            given = self.given(sex, used)
            used.add(given)
            schools = (school, r.choice(self.schools)) if r.random() < CHANGED_SCHOOL else (school,)
            middle = r.choice(MIDDLE_NAMES[sex]) if r.random() < MIDDLE_NAME_PERSON else None
            child = add(given, sex, birth, middle=middle, schools=schools)
            if twins and i == 0:
                key = f"{family_id}-twins"
                if r.random() < 1 / 3:
                    first, second = r.choice(CLOSE_TWIN_NAMES)
                    sex = "male" if first in BOY_NAMES else "female"
                    child = dataclasses.replace(child, given=first, sex=sex, twin_key=key)
                    twin_given, twin_sex = second, sex
                else:
                    child = dataclasses.replace(child, twin_key=key)
                    twin_sex = r.choice(("male", "female"))
                    twin_given = self.given(twin_sex, used | {child.given})
                people[-1] = child
                used.update((child.given, twin_given))
                add(twin_given, twin_sex, birth, middle=None, schools=child.schools, twin_key=key)
        return people

    # -- records --------------------------------------------------------

    def typo(self, text: str) -> str:
        r = self.rng
        if len(text) < 3:
            return text
        i = r.randrange(1, len(text) - 1)
        kind = r.randrange(4)
        letters = "abcdefghijklmnopqrstuvwxyz"
        if kind == 0:
            return text[:i] + r.choice(letters) + text[i + 1:]
        if kind == 1:
            return text[:i] + text[i + 1:]
        if kind == 2:
            return text[:i] + text[i + 1] + text[i] + text[i + 2:]
        return text[:i] + r.choice(letters) + text[i:]

    def case(self, text: str) -> str:
        r = self.rng
        if r.random() >= CASE_CHANGED:
            return text.title()
        return r.choice((text.upper(), text.lower(), text.title().swapcase()))

    def records(self, person: Person, count: int) -> Iterator[tuple[str, dict]]:
        r = self.rng
        is_child = person.upn is not None
        for _ in range(count):
            source = r.choice(SOURCES if is_child else ("police", "childrens-services", "health"))
            given = person.given
            if given in self.nicknames and r.random() < NICKNAME:
                given = r.choice(self.nicknames[given])
            if r.random() < GIVEN_TYPO:
                given = self.typo(given)
            if person.middle and r.random() < MIDDLE_NAME_SHOWN:
                given = f"{given} {person.middle}"
            if source == "police" and r.random() < INITIAL_ONLY_POLICE:
                given = given[0]
            family = person.family
            if "-" in family and r.random() < PART_OF_DOUBLE_BARRELLED:
                family = r.choice(family.split("-"))
            if r.random() < FAMILY_TYPO:
                family = self.typo(family)
            given, family = self.case(given), self.case(family)
            if r.random() < ACCENTS_DROPPED:
                plain = str.maketrans("ëéóüá", "eeoua")
                given, family = given.translate(plain), family.translate(plain)
            if r.random() < SWAPPED:
                given, family = family, given
            birth = person.birth_date
            roll = r.random()
            if roll < DOB_MISSING:
                birth_text = None
            else:
                if roll < DOB_MISSING + DOB_TRANSPOSED and birth.day <= 12 and birth.day != birth.month:
                    birth = birth.replace(month=birth.day, day=birth.month)
                elif roll < DOB_MISSING + DOB_TRANSPOSED + DOB_COMPONENT:
                    birth = _wrong_component(r, birth)
                birth_text = birth.strftime("%d/%m/%Y") if r.random() < 0.3 else birth.isoformat()
            codes = {"male": ("M", "male", "1"), "female": ("F", "female", "2")}[person.sex]
            sex = None if r.random() < SEX_MISSING else r.choice(codes)
            postcode = r.choice(person.postcodes)
            if r.random() < POSTCODE_MISSING:
                postcode = None
            elif r.random() < 0.3:
                postcode = postcode.lower().replace(" ", "")
            p_nhs, p_upn = IDENTIFIERS[source]
            nhs = person.nhs_number if r.random() < p_nhs else None
            upn = person.upn if person.upn and r.random() < p_upn else None
            if nhs and r.random() < MISTYPED_IDENTIFIER:
                nhs = nhs[:-1] + str((int(nhs[-1]) + 1) % 10)
            if upn and r.random() < MISTYPED_IDENTIFIER:
                upn = fictional.break_upn(upn)
            school = r.choice(person.schools) if person.schools and source in ("school", "childrens-services") else None
            yield source, {
                "given": given,
                "family": family,
                "birth_date": birth_text,
                "sex": sex,
                "postcode": postcode,
                "nhs_number": f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if nhs and r.random() < 0.5 else nhs,
                "upn": upn,
                "school_urn": school,
            }


def _wrong_component(rng: random.Random, birth: dt.date) -> dt.date:
    for _ in range(20):
        which = rng.randrange(3)
        try:
            if which == 0:
                wrong = birth.replace(year=birth.year + rng.choice((-1, 1)))
            elif which == 1:
                wrong = birth.replace(month=rng.choice([m for m in range(1, 13) if m != birth.month]))
            else:
                wrong = birth.replace(day=rng.choice([d for d in range(1, 29) if d != birth.day]))
        except ValueError:
            continue
        return wrong
    return birth


def generate(records: int = 20_000, seed: int = 0) -> list[SynthRecord]:
    """Return about ``records`` records (exactly that many) about fictional people, in random order.

    Each person has 1 to 5 records (2.4 on average) from the sources above.
    The same ``seed`` gives the same records.
    """
    if records < 1:
        raise ValueError(f"records must be at least 1 (got {records})")
    gen = _Generator(seed)
    out: list[SynthRecord] = []
    families = 0
    while len(out) < records:
        families += 1
        family_id = f"F{seed}-{families:06d}"
        for person in gen.family(family_id):
            count = gen.rng.choices((1, 2, 3, 4, 5), (25, 30, 25, 12, 8))[0]
            for source, raw in gen.records(person, count):
                out.append(
                    SynthRecord(
                        record_id=f"R{seed}-{len(out) + 1:07d}",
                        person_id=person.person_id,
                        family_id=family_id,
                        source=source,
                        raw=raw,
                        record=normalise(**raw),
                        twin_key=person.twin_key,
                    )
                )
    out = out[:records]
    gen.rng.shuffle(out)
    return out
