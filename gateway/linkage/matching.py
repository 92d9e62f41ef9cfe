"""The person-matching model: a Fellegi-Sunter comparison of two person records.

Pure Python on purpose: the live index calls :func:`decide` inside the
transaction that accepts a message, so nothing here imports Splink, DuckDB or
pandas. The model's weights are *data* (``data/match-model.json``), estimated
offline by ``gateway.linkage.train`` with Splink from the comparison levels
defined in :data:`COMPARISONS`; each level carries both the Python test used
here and the SQL condition Splink is given, side by side, so that the two can
be checked against each other (tests/linkage/test_matching.py compares them
level by level on generated pairs).

How a record is linked (:func:`decide`), in the order the rules apply:

1. a candidate a person has rejected for this record is never proposed;
2. the same valid NHS number or UPN as a candidate links deterministically,
   unless the candidate holds a *different* valid value of the other
   identifier (then it is only proposed);
3. a different valid NHS number or UPN means two different people, whatever
   the names say;
4. the twins rule: two records with the same or a close family name (a
   typo, one part of a double-barrelled name) and the same or a close birth
   date (transposed, one component wrong), whose given names are not the
   same person's (not equal, not nickname-equivalent, not one of several),
   are two children of one family, twins or siblings, unless one given name
   is a slip of the other: never linked automatically, whatever the address
   or school say (twins share both; the issue's rule also asks for one of
   them, this one is stricter, since a record may lack them). A given name
   that is not a known one (``data/given-names.txt`` and the nickname table)
   is read as the one known name a single keystroke away ("Olvia" is
   Olivia); when it is one keystroke from two known names ("Esie": Elsie or
   Evie?) or from none, or is an initial, it cannot tell twins apart and the
   pair is proposed ("unsure-name"). Clearly different names (Ella and Emma,
   and Mia and Mya, just below the "similar" level) are not even proposed,
   as hmpps-person-match does (it sets such pairs' weight to -5): twins
   would otherwise fill the review queue; close ones (Lily and Lila) are
   proposed ("possible-twins");
5. neither the given nor the family name agreeing at any level (and not
   one record with the two swapped) is never linked automatically, however
   much the date of birth, address and school agree: a foster child or a
   friend can share all three;
6. otherwise the best score over the candidate's records: above the link
   threshold links, above the possible threshold proposes. Two candidates
   above the link threshold are one person split earlier (a move and a
   nickname arrived before the record that bridges them) when nothing tells
   them apart and they score at least the possible threshold against each
   other (:func:`same_person`): the record links to the best and the index
   joins them; otherwise they are proposed, never silently picked.

The thresholds are those of an index of the size the model was chosen for;
:meth:`MatchModel.at_size` raises them for a larger one.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import functools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import jellyfish
from anyascii import anyascii
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler

from gateway.model.identifiers import check_nhs_number, check_postcode, check_upn, check_urn

DATA = Path(__file__).parent / "data"
MODEL_PATH = DATA / "match-model.json"
NICKNAMES_PATH = DATA / "nicknames.csv"
GIVEN_NAMES_PATH = DATA / "given-names.txt"

#: Jaro-Winkler cut-offs of the "similar" levels (DuckDB's jaro_winkler_similarity
#: and rapidfuzz's JaroWinkler give the same figures: both prefix weight 0.1).
JW_CLOSE = 0.92
JW_NEAR = 0.80


# ---------------------------------------------------------------------------
# Records and normalisation


@dataclasses.dataclass(frozen=True)
class PersonRecord:
    """One person as one source knows them, normalised for matching (see normalise())."""

    given: str | None
    family: str | None
    birth_date: str | None
    sex: str | None
    postcode: str | None
    nhs_number: str | None
    upn: str | None
    school_urn: str | None


_SEX_CODES = {
    "male": ("m", "male", "1", "boy", "man"),
    "female": ("f", "female", "2", "girl", "woman"),
    "other": ("o", "other", "i", "indeterminate", "x"),
    "unknown": ("u", "unknown", "0", "9", "not known", "not specified", "unspecified"),
}
_SEX = {code: sex for sex, codes in _SEX_CODES.items() for code in codes}


def fold_name(raw: str | None) -> str | None:
    """Return a name folded for matching, or None when nothing is left.

    Accents and other scripts are transliterated to ASCII (anyascii), case is
    folded, apostrophes and full stops vanish (O'Brien -> obrien), other
    punctuation becomes a space, except hyphens, which are kept between letters
    (double-barrelled names), and runs of white space become one space.
    """
    if raw is None:
        return None
    text = anyascii(unicodedata.normalize("NFKC", str(raw))).casefold()
    text = re.sub(r"['`.]", "", text)
    text = re.sub(r"[^a-z\- ]+", " ", text)
    text = re.sub(r"\s*-\s*", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip("- ")
    text = re.sub(r"\s+", " ", text)
    return text or None


def _birth_date(raw: str | None) -> str | None:
    if raw is None or not str(raw).strip():
        return None
    text = str(raw).strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text[:10] if pattern == "%Y-%m-%d" else text, pattern).date().isoformat()
        except ValueError:
            continue
    if re.fullmatch(r"\d{4}(-\d{2})?", text):
        return None  # a partial FHIR date (year, or year and month): not enough to compare days
    raise ValueError(f"birth date {text!r} is not a date: write it as YYYY-MM-DD or dd/mm/yyyy")


def _sex(raw: str | None) -> str | None:
    if raw is None or not str(raw).strip():
        return None
    code = re.sub(r"\s+", " ", str(raw).strip().casefold())
    try:
        return _SEX[code]
    except KeyError:
        raise ValueError(
            f"sex {raw!r} is not a recognised code: use male/female/other/unknown, M/F/U or 1/2/9/0"
        ) from None


def _valid(check: Callable, raw: str | None) -> str | None:
    if raw is None or not str(raw).strip():
        return None
    checked = check(str(raw))
    return checked.value if checked.valid else None


def normalise(
    *,
    given: str | Sequence[str] | None = None,
    family: str | None = None,
    birth_date: str | None = None,
    sex: str | None = None,
    postcode: str | None = None,
    nhs_number: str | None = None,
    upn: str | None = None,
    school_urn: str | None = None,
) -> PersonRecord:
    """Return a :class:`PersonRecord` from raw values as a CSV or a FHIR resource gives them.

    ``given`` may be one string or the list of given names (FHIR
    ``HumanName.given``). Names are folded (:func:`fold_name`); the birth date
    is read as ISO ``YYYY-MM-DD`` (a FHIR dateTime's date part too) or
    ``dd/mm/yyyy`` / ``dd-mm-yyyy``, and a partial FHIR date (``2015`` or
    ``2015-03``) gives None; sex codes M/F/1/2/0/9/U/O and words are
    accepted. Invalid NHS numbers, UPNs, postcodes and school URNs are dropped
    (None): an invalid identifier must never link two records.

    Raises ValueError, naming the field and the value, for a birth date that is
    not a date or a sex code that is not known.
    """
    if given is not None and not isinstance(given, str):
        given = " ".join(str(part) for part in given if part)
    return PersonRecord(
        given=fold_name(given),
        family=fold_name(family),
        birth_date=_birth_date(birth_date),
        sex=_sex(sex),
        postcode=_valid(check_postcode, postcode),
        nhs_number=_valid(check_nhs_number, nhs_number),
        upn=_valid(check_upn, upn),
        school_urn=_valid(check_urn, school_urn),
    )


# ---------------------------------------------------------------------------
# Nicknames


@functools.cache
def nickname_groups() -> dict[str, frozenset[str]]:
    """Return, for each name in ``data/nicknames.csv``, the formal names it can stand for.

    A formal name stands for itself; ``alex`` stands for ``alexander`` and
    ``alexandra``. Two given names are nickname-equivalent when their sets
    meet, so ``alexander`` and ``alexandra`` are not (they only share a
    diminutive).
    """
    groups: dict[str, set[str]] = {}
    with NICKNAMES_PATH.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, nickname = fold_name(row["name"]), fold_name(row["nickname"])
            groups.setdefault(name, set()).add(name)
            groups.setdefault(nickname, set()).add(name)
    return {name: frozenset(formal) for name, formal in groups.items()}


@functools.cache
def nicknames_by_formal_name() -> dict[str, tuple[str, ...]]:
    """Return, for each formal name of :func:`nickname_groups`, the other names that stand for it, sorted
    (``alexander``: ``al``, ``alex``, ...): what the synthetic data generators call a person instead."""
    nicknames: dict[str, list[str]] = {}
    for name, formal in nickname_groups().items():
        for f in formal:
            if name != f:
                nicknames.setdefault(f, []).append(name)
    return {formal: tuple(sorted(names)) for formal, names in nicknames.items()}


@functools.cache
def known_given_names() -> frozenset[str]:
    """Return the given names of ``data/given-names.txt`` and of the nickname table (folded).

    The twins rule reads it: two known given names that differ are two
    children; a name that is not known is more likely a slip of the keyboard.
    """
    names = {line.strip() for line in GIVEN_NAMES_PATH.read_text(encoding="utf-8").splitlines()}
    names = {fold_name(n) for n in names if n and not n.startswith("#")}
    return frozenset(names | set(nickname_groups()))


# ---------------------------------------------------------------------------
# Features: what each comparison reads, computed once per record


@dataclasses.dataclass(frozen=True)
class Features:
    """The values the comparison levels read, derived from one :class:`PersonRecord`.

    The training script gives Splink exactly these columns (:meth:`as_row`),
    so Python and Splink compare the same derived values.
    """

    given: str | None
    given_first: str | None
    given_tokens: tuple[str, ...]
    given_groups: tuple[str, ...]
    family: str | None
    family_parts: tuple[str, ...]
    family_groups: tuple[str, ...]   # nickname groups of the family name, for records with the two swapped
    birth_date: str | None
    birth_year: str | None
    birth_month: str | None
    birth_day: str | None
    sex: str | None
    postcode: str | None
    postcode_district: str | None
    school_urn: str | None
    nhs_number: str | None
    upn: str | None

    def as_row(self) -> dict:
        """Return the features as one row of Splink's input table (lists for the tuples)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


@functools.lru_cache(maxsize=1 << 16)
def features(record: PersonRecord) -> Features:
    """Return the comparison features of ``record`` (cached: records are immutable)."""
    tokens = tuple(t for t in re.split(r"[ -]", record.given) if t) if record.given else ()
    first = tokens[0] if tokens else None
    groups = tuple(sorted(nickname_groups().get(first, ()))) if first else ()
    parts = tuple(p for p in re.split(r"[ -]", record.family) if p) if record.family else ()
    year = month = day = None
    if record.birth_date:
        year, month, day = record.birth_date.split("-")
    sex = record.sex if record.sex in ("male", "female", "other") else None
    return Features(
        given=record.given,
        given_first=first,
        given_tokens=tokens,
        given_groups=groups,
        family=record.family,
        family_parts=parts,
        family_groups=tuple(sorted(nickname_groups().get(record.family, ()))) if record.family else (),
        birth_date=record.birth_date,
        birth_year=year,
        birth_month=month,
        birth_day=day,
        sex=sex,
        postcode=record.postcode,
        postcode_district=record.postcode.split(" ")[0] if record.postcode else None,
        school_urn=record.school_urn,
        nhs_number=record.nhs_number,
        upn=record.upn,
    )


# ---------------------------------------------------------------------------
# Comparison levels: the Python test and Splink's SQL condition, side by side


@dataclasses.dataclass(frozen=True)
class Level:
    """One comparison level: its label, and its condition in Splink's SQL (None: the else level).

    ``tf_column`` names the feature whose term frequency adjusts the level's
    weight (see :meth:`MatchModel.compare`): an agreement on a common name is
    worth less than the level's average, on a rare one more.
    """

    label: str
    sql: str | None
    tf_column: str | None = None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One field's comparison: ``levels[0]`` is the missing (null) level, the last the else level.

    ``level_of(a, b)`` returns the index in ``levels`` that the pair falls in,
    testing in order, as Splink's CASE expression does.
    """

    field: str
    description: str
    levels: tuple[Level, ...]
    level_of: Callable[[Features, Features], int]
    shows: Callable[[Features], str | None]


def _jw(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b)


def _crosses(a: Features, b: Features) -> bool:
    """Return True when ``a``'s given name reads as ``b``'s family name (see :data:`_SWAPPED_SQL`)."""
    return (
        b.family == a.given
        or b.family == a.given_first
        or a.given_first in b.family_parts
        or not set(a.given_groups).isdisjoint(b.family_groups)
        or _jw(a.given, b.family) >= JW_CLOSE
    )


def _given_level(a: Features, b: Features) -> int:
    if a.given is None or b.given is None:
        return 0
    if a.given == b.given:
        return 1
    if _crosses(a, b) and _crosses(b, a):
        return 2
    if set(a.given_groups) & set(b.given_groups):
        return 3
    if set(a.given_tokens) & set(b.given_tokens):
        return 4
    jw = _jw(a.given_first, b.given_first)
    if jw >= JW_CLOSE:
        return 5
    if jw >= JW_NEAR:
        return 6
    if (len(a.given_first) == 1 or len(b.given_first) == 1) and a.given_first[0] == b.given_first[0]:
        return 7
    return 8


def _family_level(a: Features, b: Features) -> int:
    if a.family is None or b.family is None:
        return 0
    if a.family == b.family:
        return 1
    if set(a.family_parts) & set(b.family_parts):
        return 2
    jw = _jw(a.family, b.family)
    if jw >= JW_CLOSE:
        return 3
    if jw >= JW_NEAR:
        return 4
    return 5


def _birth_date_level(a: Features, b: Features) -> int:
    if a.birth_date is None or b.birth_date is None:
        return 0
    if a.birth_date == b.birth_date:
        return 1
    same_year = a.birth_year == b.birth_year
    if same_year and a.birth_month == b.birth_day and a.birth_day == b.birth_month:
        return 2
    if same_year + (a.birth_month == b.birth_month) + (a.birth_day == b.birth_day) == 2:
        return 3
    if same_year:
        return 4
    return 5


def _equal_level(name: str) -> Callable[[Features, Features], int]:
    def level_of(a: Features, b: Features) -> int:
        left, right = getattr(a, name), getattr(b, name)
        if left is None or right is None:
            return 0
        return 1 if left == right else 2

    return level_of


def _postcode_level(a: Features, b: Features) -> int:
    if a.postcode is None or b.postcode is None:
        return 0
    if a.postcode == b.postcode:
        return 1
    if a.postcode_district == b.postcode_district:
        return 2
    return 3


def _null(*columns: str) -> str:
    return " OR ".join(f"{c}_l IS NULL OR {c}_r IS NULL" for c in columns)


#: Given and family swapped is one level of the given-name comparison only: as a level
#: of both comparisons the one swap would be counted twice (Splink's comparisons are
#: taken as independent), and two common names swapped outweighed a different address.
#: A given name "crosses" to the other's family name when it equals it (whole or first
#: given name), is one part of it, shares a nickname group with it or is as close as a typo.
_CROSSES_SQL = (
    "(family_{r} = given_{l} OR family_{r} = given_first_{l} OR list_contains(family_parts_{r}, given_first_{l})"
    " OR len(list_intersect(given_groups_{l}, family_groups_{r})) > 0"
    f" OR jaro_winkler_similarity(given_{{l}}, family_{{r}}) >= {JW_CLOSE})"
)
_SWAPPED_SQL = _CROSSES_SQL.format(l="l", r="r") + " AND " + _CROSSES_SQL.format(l="r", r="l")

#: The comparisons, in the order of the model file and of Splink's settings.
COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "given",
        "given names",
        (
            Level("missing", _null("given")),
            Level("exact", "given_l = given_r", tf_column="given_first"),
            Level("given and family swapped", _SWAPPED_SQL),
            Level("nickname", "len(list_intersect(given_groups_l, given_groups_r)) > 0"),
            Level("one of several given names", "len(list_intersect(given_tokens_l, given_tokens_r)) > 0"),
            Level(
                f"similar (Jaro-Winkler >= {JW_CLOSE:.2f})",
                f"jaro_winkler_similarity(given_first_l, given_first_r) >= {JW_CLOSE}",
            ),
            Level(
                f"similar (Jaro-Winkler >= {JW_NEAR:.2f})",
                f"jaro_winkler_similarity(given_first_l, given_first_r) >= {JW_NEAR}",
            ),
            Level(
                "initial only",
                "(length(given_first_l) = 1 OR length(given_first_r) = 1)"
                " AND left(given_first_l, 1) = left(given_first_r, 1)",
            ),
            Level("different", None),
        ),
        _given_level,
        lambda f: f.given,
    ),
    Comparison(
        "family",
        "family name",
        (
            Level("missing", _null("family")),
            Level("exact", "family_l = family_r", tf_column="family"),
            Level("one part of a double-barrelled name", "len(list_intersect(family_parts_l, family_parts_r)) > 0"),
            Level(f"similar (Jaro-Winkler >= {JW_CLOSE:.2f})", f"jaro_winkler_similarity(family_l, family_r) >= {JW_CLOSE}"),
            Level(f"similar (Jaro-Winkler >= {JW_NEAR:.2f})", f"jaro_winkler_similarity(family_l, family_r) >= {JW_NEAR}"),
            Level("different", None),
        ),
        _family_level,
        lambda f: f.family,
    ),
    Comparison(
        "birth_date",
        "date of birth",
        (
            Level("missing", _null("birth_date")),
            Level("exact", "birth_date_l = birth_date_r"),
            Level(
                "day and month transposed",
                "birth_year_l = birth_year_r AND birth_month_l = birth_day_r AND birth_day_l = birth_month_r",
            ),
            Level(
                "one of day, month, year differs",
                "(birth_year_l = birth_year_r)::INT + (birth_month_l = birth_month_r)::INT"
                " + (birth_day_l = birth_day_r)::INT = 2",
            ),
            Level("same year only", "birth_year_l = birth_year_r"),
            Level("different", None),
        ),
        _birth_date_level,
        lambda f: f.birth_date,
    ),
    Comparison(
        "sex",
        "sex",
        (Level("missing", _null("sex")), Level("exact", "sex_l = sex_r"), Level("different", None)),
        _equal_level("sex"),
        lambda f: f.sex,
    ),
    Comparison(
        "postcode",
        "postcode",
        (
            Level("missing", _null("postcode")),
            Level("exact", "postcode_l = postcode_r"),
            Level("same district", "postcode_district_l = postcode_district_r"),
            Level("different", None),
        ),
        _postcode_level,
        lambda f: f.postcode,
    ),
    Comparison(
        "school",
        "school",
        (Level("missing", _null("school_urn")), Level("same", "school_urn_l = school_urn_r"), Level("different", None)),
        _equal_level("school_urn"),
        lambda f: f.school_urn,
    ),
    Comparison(
        "nhs_number",
        "NHS number",
        (Level("missing", _null("nhs_number")), Level("same", "nhs_number_l = nhs_number_r"), Level("different", None)),
        _equal_level("nhs_number"),
        lambda f: f.nhs_number,
    ),
    Comparison(
        "upn",
        "UPN",
        (Level("missing", _null("upn")), Level("same", "upn_l = upn_r"), Level("different", None)),
        _equal_level("upn"),
        lambda f: f.upn,
    ),
)

#: Given-name levels that say "the same person's given names".
SAME_GIVEN = frozenset({"exact", "nickname", "one of several given names"})
#: Family-name and birth-date levels under which clearly different given names mean two
#: children of one family (twins, or siblings with a mistyped date), never one.
CLOSE_FAMILY = frozenset({"exact", "one part of a double-barrelled name", f"similar (Jaro-Winkler >= {JW_CLOSE:.2f})"})
CLOSE_BIRTH = frozenset({"exact", "day and month transposed", "one of day, month, year differs"})


def gamma(comparison: Comparison, level_index: int) -> int:
    """Return Splink's comparison vector value for ``levels[level_index]`` (-1 for missing)."""
    return -1 if level_index == 0 else len(comparison.levels) - 1 - level_index


# ---------------------------------------------------------------------------
# Scores


@dataclasses.dataclass(frozen=True)
class FieldComparison:
    """How one field of two records compared: the level, its weight and the two values."""

    field: str
    level: str
    weight: float
    left: str | None
    right: str | None


@dataclasses.dataclass(frozen=True)
class MatchScore:
    """The comparison of two records: total weight (log2 odds), probability, each field, any rule."""

    weight: float
    probability: float
    fields: tuple[FieldComparison, ...]
    rule: str | None
    prior: float = 0.0

    def field(self, name: str) -> FieldComparison:
        """Return the comparison of field ``name``; raises KeyError when there is none."""
        for item in self.fields:
            if item.field == name:
                return item
        raise KeyError(name)

    def explain(self) -> str:
        """Return a multi-line text a social worker can read: each field's level and weight."""
        labels = {c.field: c.description for c in COMPARISONS}
        lines = [
            f"Match weight {self.weight:+.1f} (probability {self.probability:.1%}),"
            f" starting from {self.prior:+.1f} for two records picked at random:"
        ]
        for item in self.fields:
            values = f"{item.left or '-'} / {item.right or '-'}"
            lines.append(f"  {labels.get(item.field, item.field):<15} {item.level:<38} {item.weight:+6.1f}   ({values})")
        if self.rule:
            lines.append(f"Rule applied: {RULES.get(self.rule, self.rule)}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """Return the score as JSON-able data, for storing with a decision and the API."""
        return {
            "weight": round(self.weight, 6),
            "probability": self.probability,
            "prior": round(self.prior, 6),
            "rule": self.rule,
            "fields": [dataclasses.asdict(item) for item in self.fields],
        }


#: What each rule means, in words (MatchScore.rule and LinkDecision reasons).
RULES = {
    "nhs-number-match": "same valid NHS number",
    "upn-match": "same valid UPN",
    "nhs-number-conflict": "different valid NHS numbers: two different people",
    "upn-conflict": "different valid UPNs: two different people",
    "identifier-conflict": "one identifier is the same and the other different: a person must confirm",
    "names-differ": "neither given nor family name agrees: never linked automatically, a person must confirm",
    "unsure-name": "twins rule: an initial, or a misspelt given name that could be more than one name,"
    " in one family born the same day: a person must confirm",
    "twins": "twins rule: same or close family name and birth date, clearly different given names: two children",
    "possible-twins": "twins rule: close family names and birth dates, close but different known given names"
    " (twins or siblings, or a slip): a person must confirm",
}


#: Of the rise of the link threshold with the index's size, the share the possible threshold follows: the
#: band below the link threshold that goes to a person widens by the rest, so that what no longer links
#: automatically in a large index (a child who moved house and school, with a common name) is reviewed.
POSSIBLE_SHARE = 0.5


def size_shift(people: int, reference_people: int) -> float:
    """Return how much the thresholds rise (log2 odds) for an index of ``people`` chosen among ``reference_people``.

    The Fellegi-Sunter prior: the chance that a new record is one given
    person of the index falls as the index grows (each candidate a block
    finds competes with the more people who share its name and birth date),
    so keeping the probability a threshold stands for means raising it by
    log2(people / reference_people). Never below 0: a smaller index than
    the one the thresholds were chosen among keeps them, since the people
    most like a child (siblings, twins, parents) do not thin out with it.
    """
    if reference_people < 1:
        raise ValueError(f"reference people must be at least 1 (got {reference_people})")
    return max(0.0, math.log2(max(people, 1) / reference_people))


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0
    odds = 2.0**weight
    return odds / (1.0 + odds)


class MatchModel:
    """The trained comparison weights and the decision thresholds, read from the model file."""

    def __init__(self, data: dict, *, source: str = "match model"):
        self.data = data
        self.source = source
        try:
            self.prior = float(data["prior"]["weight"])
            self.link_threshold = float(data["thresholds"]["link"])
            self.possible_threshold = float(data["thresholds"]["possible"])
            reference = data["thresholds"].get("reference_people")
            self.reference_people = int(reference) if reference is not None else None
            by_field = {item["field"]: item for item in data["comparisons"]}
            frequencies = {column: {str(k): float(v) for k, v in table.items()}
                           for column, table in data.get("term_frequencies", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{source}: not a match model file ({exc!r} missing or wrong)") from None
        #: People of the index the thresholds apply to (see :meth:`at_size`); None: as chosen.
        self.people: int | None = None
        self._weights: list[tuple[float, ...]] = []
        #: Per comparison: {level index: (feature, its term frequencies, log2 of the level's u)}.
        self._tf: list[dict[int, tuple[str, dict[str, float], float]]] = []
        for comparison in COMPARISONS:
            item = by_field.get(comparison.field)
            labels = [level.label for level in comparison.levels]
            if item is None or [level["label"] for level in item["levels"]] != labels:
                raise ValueError(
                    f"{source}: the levels of {comparison.field!r} do not match gateway/linkage/matching.py"
                    f" ({labels}); retrain with `python -m gateway.linkage.train`"
                )
            self._weights.append(tuple(0.0 if i == 0 else float(level["weight"]) for i, level in enumerate(item["levels"])))
            self._tf.append({
                i: (level.tf_column, frequencies[level.tf_column], math.log2(float(item["levels"][i]["u"])))
                for i, level in enumerate(comparison.levels) if level.tf_column and level.tf_column in frequencies})

    def at_size(self, people: int) -> "MatchModel":
        """Return this model with its thresholds for an index of ``people`` people (see :func:`size_shift`).

        The link threshold rises by the shift, the possible threshold by
        :data:`POSSIBLE_SHARE` of it. A model file without
        ``reference_people`` keeps its thresholds. Cheap: the weights are
        shared, not copied.
        """
        if self.reference_people is None:
            return self
        shift = size_shift(people, self.reference_people)
        sized = copy.copy(self)
        sized.people = people
        sized.link_threshold = float(self.data["thresholds"]["link"]) + shift
        sized.possible_threshold = float(self.data["thresholds"]["possible"]) + shift * POSSIBLE_SHARE
        return sized

    def tf_adjustment(self, comparison_index: int, level_index: int, a: Features, b: Features) -> float:
        """Return the term-frequency adjustment of a level (0 for a level without one), as Splink computes it.

        log2(u of the level) - log2(the greater of the two values' frequencies):
        an exact agreement on a name a tenth of people share weighs less than
        the level's average, on a rare one more. A value the table does not
        hold (seen fewer than twice in training) is not adjusted.
        """
        tf = self._tf[comparison_index].get(level_index)
        if tf is None:
            return 0.0
        column, table, log2_u = tf
        found = [table[v] for v in (getattr(a, column), getattr(b, column)) if v in table]
        return log2_u - math.log2(max(found)) if found else 0.0

    @classmethod
    def load(cls, path: Path | None = None) -> "MatchModel":
        """Return the model in ``path`` (default: the shipped ``data/match-model.json``).

        Raises ValueError naming the file when it is not a model for these comparison levels.
        """
        path = Path(path) if path is not None else MODEL_PATH
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the match model: {exc}") from None
        return cls(data, source=str(path))

    def level_weights(self, field: str) -> dict[str, float]:
        """Return each level label of ``field`` with its weight; raises KeyError for an unknown field."""
        for comparison, weights in zip(COMPARISONS, self._weights):
            if comparison.field == field:
                return {level.label: weight for level, weight in zip(comparison.levels, weights)}
        raise KeyError(field)

    def compare(self, a: PersonRecord, b: PersonRecord) -> MatchScore:
        """Return the comparison of two records: levels, weights, total and any override rule."""
        fa, fb = features(a), features(b)
        total = self.prior
        fields = []
        levels = {}
        for number, (comparison, weights) in enumerate(zip(COMPARISONS, self._weights)):
            index = comparison.level_of(fa, fb)
            weight = weights[index]
            if self._tf[number]:
                weight += self.tf_adjustment(number, index, fa, fb)
            total += weight
            label = comparison.levels[index].label
            levels[comparison.field] = label
            fields.append(FieldComparison(comparison.field, label, weight, comparison.shows(fa), comparison.shows(fb)))
        return MatchScore(total, _probability(total), tuple(fields), _rule(levels, fa, fb), self.prior)


def _rule(levels: dict[str, str], a: Features, b: Features) -> str | None:
    """Return the override rule the pair falls under (see the module docstring and :data:`RULES`), or None."""
    nhs, upn = levels["nhs_number"], levels["upn"]
    if (nhs == "same" and upn == "different") or (upn == "same" and nhs == "different"):
        return "identifier-conflict"
    if nhs == "same":
        return "nhs-number-match"
    if upn == "same":
        return "upn-match"
    if nhs == "different":
        return "nhs-number-conflict"
    if upn == "different":
        return "upn-conflict"
    if levels["given"] == "different" and levels["family"] == "different" and not _crossed(a, b):
        return "names-differ"
    if levels["birth_date"] not in CLOSE_BIRTH and levels["birth_date"] != "missing":
        return None
    given, family = levels["given"], levels["family"]
    first_a, first_b = a.given_first, b.given_first
    if given == "different" and family == "different" and a.family and b.family:
        # One record may have given and family swapped: then compare its family name
        # (really its given name) with the other's given name.
        if b.family in a.given_tokens:
            first_a, family = a.family, "exact"
        elif a.family in b.given_tokens:
            first_b, family = b.family, "exact"
        if family == "exact":
            jw = _jw(first_a, first_b)
            given = "same" if first_a == first_b else "close" if jw >= JW_NEAR else "different"
    if given == "given and family swapped":
        # One record has the two names swapped, so each record's family name is compared with the other's
        # given name. One of the two crossings is the family name, the other the given name: when that one is
        # not the same name (equal or a nickname), the two may be twins written one the wrong way round
        # (Jayden O'Connor and "O'Connor Jaden"), and the twins rule reads them as it reads any pair.
        crossings = [(a.given_first, b.family), (a.family, b.given_first)]
        if all(_same_name(x, y) for x, y in crossings):
            return None
        first_a, first_b = min(crossings, key=lambda pair: (_same_name(*pair), _jw(pair[0] or "", pair[1] or "")))
        if not first_a or not first_b:
            return "unsure-name"
        given = "close" if _jw(first_a, first_b) >= JW_NEAR else "different"
        family = "exact"
    if family not in CLOSE_FAMILY or given in SAME_GIVEN or given in ("missing", "same"):
        return None
    if given == "initial only":
        return "unsure-name"  # an initial cannot tell Mia from Maya
    # Different given names in one family, born the same day or nearly: twins or siblings,
    # unless one name is a slip of the other. A name that is no one's is read as the one
    # known name a single keystroke away; when there are two such names, or none, it
    # cannot be read.
    read_a, read_b = _readings(first_a), _readings(first_b)
    if read_a is None or read_b is None:
        return "unsure-name"
    if not read_a.isdisjoint(read_b):
        return None  # a slip of the other's name or of a nickname of it ("Lwuke" for Luke, Lucas)
    if given == "different" and levels["birth_date"] != "missing":
        return "twins"
    return "possible-twins"


def _same_name(x: str | None, y: str | None) -> bool:
    """Whether two single names are one person's: equal, or sharing a formal name in the nickname table."""
    if not x or not y:
        return False
    return x == y or not nickname_groups().get(x, frozenset({x})).isdisjoint(nickname_groups().get(y, frozenset({y})))


def _crossed(a: Features, b: Features) -> bool:
    """Return True when one record's family name is among the other's given names (one may be swapped)."""
    return bool(a.family and b.family) and (b.family in a.given_tokens or a.family in b.given_tokens)


def _is_known(name: str | None) -> bool:
    return name in known_given_names()


@functools.lru_cache(maxsize=1 << 14)
def _readings(name: str) -> frozenset[str] | None:
    """Return the known given names ``name`` stands for; None when it cannot be read.

    A known name stands for itself; a name that is not known stands for the
    one known name a single keystroke away (a letter changed, added, dropped
    or two swapped: optimal string alignment distance 1). When two known
    names are a keystroke away ("Esie": Elsie or Evie?), or none is ("Abcby"),
    it cannot be read. Nicknames stand for their formal names too, so that a
    slip of "Alex" can be "Alexander".
    """
    if _is_known(name):
        nearest = name
    else:
        scored = process.extract(name, _KNOWN_SORTED(), scorer=OSA.distance, limit=2)
        if not scored or scored[0][1] > 1 or (len(scored) == 2 and scored[1][1] == scored[0][1]):
            return None
        nearest = scored[0][0]
    return frozenset({nearest} | nickname_groups().get(nearest, frozenset()))


@functools.cache
def _KNOWN_SORTED() -> tuple[str, ...]:
    return tuple(sorted(known_given_names()))


# ---------------------------------------------------------------------------
# Blocking keys


#: The most keys a record is filed under.
MAX_KEYS = 8


def _phonetic(name: str | None) -> str | None:
    if not name:
        return None
    code = jellyfish.metaphone(name.replace("-", "").replace(" ", ""))
    return code[:8] or None


def blocking_keys(record: PersonRecord) -> list[str]:
    """Return the keys under which the index files ``record`` and looks up its candidates.

    At most :data:`MAX_KEYS` keys of at most 64 characters. Two records are
    compared only when they share a key, so each key is narrow on its own (a
    handful of people in an index of a million) while, together, they tolerate
    one or two things going wrong at once:

    - ``nhs:`` and ``upn:`` the identifiers, for the deterministic links;
    - ``dob:<date>|n:<sound>``, one for the first given name and one for each
      part of a double-barrelled family name (so either part alone still
      meets it): a typo or nickname in one name, a move or a new school leave
      the other; the two names swapped give the same keys;
    - ``dob:<date>|i:<the initials of given and family, sorted>``: a typo in
      one name and a nickname with the same initial in the other (Alex
      Smiht, Alexander Smith) still meet. About 140 people share a birth date
      in a million spread over 20 years; a name sound or a pair of initials
      narrows that to a few;
    - ``pc:<postcode>|<sound of the family name>``: a wrong or missing date
      of birth, with the family still at the same address;
    - ``nm:<the two name sounds, sorted>|<birth year>`` and
      ``nmd:<the two name sounds, sorted>|<month-day>``: a wrong date after a
      move (a wrong day or month keeps the year, a wrong year keeps the day
      and month); a transposed date keeps the year, so ``nm`` finds it;
    - ``nd:<the two name sounds, sorted>|<postcode district>`` and
      ``sc:<the two name sounds, sorted>|<school URN>``: a missing date of
      birth, after a move within the district, or at the same school.

    ("Sound" is the Metaphone code, so Smith and Smyth agree; the name sounds
    are sorted so that swapped names give the same keys.) The keys are listed
    in that order and cut at :data:`MAX_KEYS`: a record with both
    identifiers or a double-barrelled name loses its last, place-based, keys.
    A record with no usable field gets no keys (it can only start a new
    person). ``bench/linkage.py`` reports the share of true pairs that share
    a key (blocking recall) and how many records share one with a record.
    """
    keys: list[str] = []
    if record.nhs_number:
        keys.append(f"nhs:{record.nhs_number}")
    if record.upn:
        keys.append(f"upn:{record.upn}")
    f = features(record)
    given = _phonetic(f.given_first)
    family = _phonetic(f.family_parts[0]) if f.family_parts else None
    sounds = [s for s in dict.fromkeys([given, *(_phonetic(part) for part in f.family_parts[:2])]) if s]
    names = "|".join(sorted((given, family))) if given and family else None
    if record.birth_date:
        keys.extend(f"dob:{record.birth_date}|n:{sound}" for sound in sounds)
        if f.given_first and f.family_parts:
            keys.append(f"dob:{record.birth_date}|i:" + "".join(sorted(f.given_first[0] + f.family_parts[0][0])))
    if record.postcode and family:
        keys.append(f"pc:{record.postcode}|{family}")
    if names and record.birth_date:
        keys.append(f"nm:{names}|{f.birth_year}")
        keys.append(f"nmd:{names}|{f.birth_month}-{f.birth_day}")
    if names and f.postcode_district:
        keys.append(f"nd:{names}|{f.postcode_district}")
    if names and record.school_urn:
        keys.append(f"sc:{names}|{record.school_urn}")
    return [key[:64] for key in keys[:MAX_KEYS]]


# ---------------------------------------------------------------------------
# Decisions


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A person the index found through the blocking keys, with every record linked to them."""

    person_id: str
    records: tuple[PersonRecord, ...]
    rejected: bool = False


@dataclasses.dataclass(frozen=True)
class LinkDecision:
    """What to do with a record: link it, propose it to a person, or start a new person."""

    decision: str
    person_id: str | None
    score: MatchScore | None
    reason: str
    alternatives: tuple[tuple[str, MatchScore], ...] = ()


def tells_apart(model: MatchModel, mine: Sequence[PersonRecord], theirs: Sequence[PersonRecord]) -> bool:
    """Whether two people's records say they are two people, or may be: different valid identifiers, or
    the twins rule between two of their records (:data:`APART_RULES`: different given names in one family,
    or a given name that cannot be read).

    The person index never joins two people this says are two (the record
    that links to both is proposed instead).
    """
    for field in ("nhs_number", "upn"):
        a = {getattr(r, field) for r in mine if getattr(r, field)}
        b = {getattr(r, field) for r in theirs if getattr(r, field)}
        if a and b and not a & b:
            return True
    return any(_apart(model.compare(a, b).rule) for a in mine for b in theirs)


#: The rules that say two records may be two children of one family (twins or siblings), so never one person.
APART_RULES = frozenset({"twins", "possible-twins", "unsure-name"})


def _apart(rule: str | None) -> bool:
    return rule in APART_RULES


def same_person(model: MatchModel, mine: Sequence[PersonRecord], theirs: Sequence[PersonRecord]) -> bool:
    """Whether two people a record links to on its own are one person: nothing tells them apart
    (:func:`tells_apart`) and their closest records score at least the possible threshold. Two
    siblings, both close to a record that has no given name, score well below it (different given
    names and birth dates); one child split by a move and a nickname scores near the link threshold.
    """
    return not tells_apart(model, mine, theirs) and max(
        model.compare(a, b).weight for a in mine for b in theirs) >= model.possible_threshold


def _best(scores: Sequence[MatchScore]) -> MatchScore:
    return max(scores, key=lambda s: s.weight)


def decide(model: MatchModel, record: PersonRecord, candidates: Sequence[Candidate]) -> LinkDecision:
    """Return the decision for ``record`` against the candidates the index found.

    The rules, in order, are in the module docstring. ``linked`` names the
    person and the deciding comparison; ``possible`` names the best person to
    propose, with the others above the possible threshold as
    ``alternatives``; ``new`` carries the best comparison there was (None
    when there were no candidates).
    """
    deterministic: list[tuple[str, MatchScore, str]] = []
    linkable: list[tuple[str, MatchScore]] = []
    possible: list[tuple[str, MatchScore, str]] = []
    best_seen: MatchScore | None = None
    for candidate in candidates:
        if candidate.rejected or not candidate.records:
            continue
        scores = [model.compare(record, other) for other in candidate.records]
        best = _best(scores)
        best_seen = best if best_seen is None or best.weight > best_seen.weight else best_seen
        nhs_held = {r.nhs_number for r in candidate.records if r.nhs_number}
        upn_held = {r.upn for r in candidate.records if r.upn}
        same_nhs = record.nhs_number is not None and record.nhs_number in nhs_held
        same_upn = record.upn is not None and record.upn in upn_held
        other_nhs = record.nhs_number is not None and bool(nhs_held) and not same_nhs
        other_upn = record.upn is not None and bool(upn_held) and not same_upn
        if same_nhs or same_upn:
            matching = [
                s
                for s, r in zip(scores, candidate.records)
                if (same_nhs and r.nhs_number == record.nhs_number) or (same_upn and r.upn == record.upn)
            ]
            which = "NHS number" if same_nhs else "UPN"
            if other_nhs or other_upn:
                other = "UPN" if same_nhs else "NHS number"
                why = f"same valid {which} but a different valid {other}"
                possible.append((candidate.person_id, _best(matching), why))
            else:
                deterministic.append((candidate.person_id, _best(matching), f"same valid {which}"))
            continue
        if other_nhs or other_upn:
            continue  # two different valid identifiers: two different people
        if any(s.rule == "twins" for s in scores):
            continue  # clearly a different child of the same family (hmpps-person-match does the same)
        free = [s for s in scores if s.rule is None and s.weight >= model.link_threshold]
        if free:
            linkable.append((candidate.person_id, _best(free)))
        elif best.weight >= model.possible_threshold:
            if best.rule in RULES and best.weight >= model.link_threshold:
                why = f"{RULES[best.rule]} (score {best.weight:.1f})"
            else:
                why = (
                    f"score {best.weight:.1f} between the possible threshold {model.possible_threshold:.1f}"
                    f" and the link threshold {model.link_threshold:.1f}"
                )
            possible.append((candidate.person_id, best, why))

    if len(deterministic) == 1:
        person_id, score, why = deterministic[0]
        others = tuple((p, s) for p, s in linkable) + tuple((p, s) for p, s, _ in possible)
        return LinkDecision("linked", person_id, score, why, others)
    if len(deterministic) > 1:
        ranked = sorted(deterministic, key=lambda item: -item[1].weight)
        return LinkDecision(
            "possible",
            ranked[0][0],
            ranked[0][1],
            f"{len(ranked)} people hold the same identifier ({ranked[0][2]}): a person must choose",
            tuple((p, s) for p, s, _ in ranked[1:]),
        )
    if len(linkable) == 1:
        person_id, score = linkable[0]
        return LinkDecision(
            "linked",
            person_id,
            score,
            f"score {score.weight:.1f} above the link threshold {model.link_threshold:.1f}",
            tuple((p, s) for p, s, _ in possible),
        )
    if len(linkable) > 1:
        ranked = sorted(linkable, key=lambda item: -item[1].weight)
        records_of = {candidate.person_id: candidate.records for candidate in candidates}
        if all(same_person(model, records_of[ranked[0][0]], records_of[p]) for p, _ in ranked[1:]):
            return LinkDecision(
                "linked",
                ranked[0][0],
                ranked[0][1],
                f"score {ranked[0][1].weight:.1f} above the link threshold {model.link_threshold:.1f}, as for"
                f" {len(ranked) - 1} other people the index holds, whom nothing tells apart from this one: one person",
                tuple(ranked[1:]) + tuple((p, s) for p, s, _ in possible),
            )
        return LinkDecision(
            "possible",
            ranked[0][0],
            ranked[0][1],
            f"{len(ranked)} people score above the link threshold {model.link_threshold:.1f}: a person must choose",
            tuple(ranked[1:]) + tuple((p, s) for p, s, _ in possible),
        )
    if possible:
        ranked = sorted(possible, key=lambda item: -item[1].weight)
        return LinkDecision("possible", ranked[0][0], ranked[0][1], ranked[0][2], tuple((p, s) for p, s, _ in ranked[1:]))
    if best_seen is None:
        if any(candidate.rejected for candidate in candidates):
            return LinkDecision("new", None, None, "a person rejected every candidate for this record")
        return LinkDecision("new", None, None, "no candidate shares a blocking key with this record")
    return LinkDecision(
        "new",
        None,
        best_seen,
        f"best score {best_seen.weight:.1f} is below the possible threshold {model.possible_threshold:.1f},"
        " or every candidate is a different person by rule",
    )
