"""Named value transforms that mapping files refer to (``parse: <name>``).

Each transform takes the source value (text, or a JSON value), the ``args``
given in the mapping and a :class:`FieldContext`, and returns the canonical
value, or ``None`` for "not given". It raises :class:`FieldProblem` when the
value cannot be used; the engine decides from the mapping (``required``)
whether that rejects the record or only drops the value with a recorded issue.
Transforms may also record an issue and keep the value (an invalid NHS number
is kept and marked, never dropped).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

from gateway.model.identifiers import check_la_number, check_nhs_number, check_postcode, check_upn, check_urn


class FieldProblem(ValueError):
    """A source value cannot be used: ``reason`` and what to ``action`` about it."""

    def __init__(self, reason: str, action: str = ""):
        super().__init__(reason)
        self.reason, self.action = reason, action


@dataclasses.dataclass(slots=True)
class FieldContext:
    """What a transform may know besides the value: where it is, the clock, the issue list."""

    field: str
    where: object  # the place as text, or (accessor, expression): worked out only when someone asks
    now: dt.datetime
    timezone: ZoneInfo
    issues: list[dict]

    @property
    def location(self) -> str:
        if isinstance(self.where, tuple):
            accessor, expr = self.where
            return accessor.where(expr)
        return self.where

    def note(self, reason: str, action: str = "", code: str = "note") -> None:
        """Record a translation issue that travels with the message."""
        self.issues.append({"field": self.field, "location": self.location, "reason": reason,
                            "action": action, "code": code})


TRANSFORMS: dict[str, Callable] = {}


def transform(name: str):
    def register(fn):
        TRANSFORMS[name] = fn
        return fn
    return register


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@transform("text")
def to_text(value, args, ctx):
    if _blank(value):
        return None
    text = str(value).strip()
    if args.get("normalise_newlines", True):
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@transform("integer")
def to_integer(value, args, ctx):
    if _blank(value):
        return None
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text):
        raise FieldProblem(f"{text!r} is not a whole number", "Use the record's numeric id.")
    return int(text)


@transform("boolean")
def to_boolean(value, args, ctx):
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "1"):
        return True
    if text in ("false", "no", "n", "0"):
        return False
    raise FieldProblem(f"{value!r} is not yes/no or true/false")


@transform("code")
def to_code(value, args, ctx):
    """Map a value through ``args.map`` (case-insensitive); unknown values are a problem."""
    if _blank(value):
        return None
    table = {str(k).lower(): v for k, v in (args.get("map") or {}).items()}
    key = str(value).strip().lower()
    if key in table:
        return table[key]
    raise FieldProblem(f"{value!r} is not one of {', '.join(repr(k) for k in args.get('map', {}))}")


@transform("urn")
def to_urn(value, args, ctx):
    if _blank(value):
        return None
    checked = check_urn(str(value))
    if not checked.valid:
        raise FieldProblem(checked.problem, "A school URN is the 6-digit DfE number of the establishment.")
    return checked.value


@transform("la_number")
def to_la_number(value, args, ctx):
    if _blank(value):
        return None
    checked = check_la_number(str(value))
    if not checked.valid:
        ctx.note(checked.problem, "Use the 3-digit DfE local-authority number.", "invalid-identifier")
    return checked.value


def _identifier(check, label, action):
    def apply(value, args, ctx):
        if _blank(value):
            return None
        checked = check(str(value))
        if not checked.valid:
            # Kept and marked so nobody loses it; never used for linking.
            ctx.note(checked.problem, action, "invalid-identifier")
        return checked.value
    apply.__doc__ = f"Normalise a {label}; an invalid one is kept and noted."
    return apply


TRANSFORMS["nhs_number"] = _identifier(check_nhs_number, "NHS number",
                                       "Check the NHS number against the child's record (10 digits, mod-11 check).")
TRANSFORMS["upn"] = _identifier(check_upn, "UPN", "Check the pupil's UPN in the school's MIS (13 characters).")


@transform("postcode")
def to_postcode(value, args, ctx):
    if _blank(value):
        return None
    checked = check_postcode(str(value))
    if not checked.valid:
        ctx.note(checked.problem, "Check the home postcode.", "invalid-postcode")
    return checked.value


# Dates -------------------------------------------------------------------------

_DATE_PATTERNS = {
    # pattern name -> regex with named groups
    "dd/mm/yyyy": r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})",
    "dd/mm/yy": r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{2})",
    "yyyy-mm-dd": r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})",
    "dd-mm-yyyy": r"(?P<d>\d{1,2})-(?P<m>\d{1,2})-(?P<y>\d{4})",
    "dd.mm.yyyy": r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})",
}
_TIME = r"(?:[ T](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"


def _parse_date_parts(text: str, formats: list[str], ctx, *, with_time: bool):
    for name in formats:
        pattern = _DATE_PATTERNS[name] + (_TIME if with_time else "")
        m = re.fullmatch(pattern, text)
        if not m:
            continue
        year = int(m["y"])
        try:
            if len(m["y"]) == 2:
                # Two-digit years: a date of birth or an incident is never in the future,
                # so pick the latest century that keeps the whole date on or before today.
                day = dt.date(2000 + year, int(m["m"]), int(m["d"]))
                if day > ctx.now.date():
                    day = dt.date(1900 + year, int(m["m"]), int(m["d"]))
            else:
                day = dt.date(year, int(m["m"]), int(m["d"]))
        except ValueError:
            raise FieldProblem(f"{text!r} is not a real date", "Correct the date in the source system.") from None
        return day, m
    raise FieldProblem(f"{text!r} is not a date in the expected form ({' or '.join(formats)})",
                       "Correct the date in the source system.")


@transform("date")
def to_date(value, args, ctx):
    """Return an ISO date; ``args``: ``formats``, ``not_future`` (a date of birth)."""
    if _blank(value):
        return None
    text = str(value).strip()
    formats = args.get("formats") or ["dd/mm/yyyy", "dd/mm/yy", "yyyy-mm-dd"]
    day, _ = _parse_date_parts(text, formats, ctx, with_time=False)
    if args.get("not_future") and day > ctx.now.date():
        raise FieldProblem(f"{text!r} is in the future", "Correct the date of birth (an unborn child has a due "
                           "date instead).")
    if day.year < 1900:
        raise FieldProblem(f"{text!r} is before 1900", "Correct the date in the source system.")
    return day.isoformat()


@transform("datetime")
def to_datetime(value, args, ctx):
    """Return an ISO date-time with offset, or an ISO date when the source gave no time.

    A time without an offset is taken as UK local time (Europe/London) and a
    note says so. ``args``: ``formats`` (date part), ``date_only`` (allowed?).
    """
    if _blank(value):
        return None
    text = str(value).strip()
    formats = args.get("formats") or ["yyyy-mm-dd", "dd/mm/yyyy", "dd/mm/yy"]
    day, m = _parse_date_parts(text, formats, ctx, with_time=True)
    if m["H"] is None:
        if not args.get("date_only", True):
            raise FieldProblem(f"{text!r} has no time", "Give the time as well as the date.")
        return day.isoformat()
    try:
        clock = dt.time(int(m["H"]), int(m["M"]), int(m["S"] or 0))
    except ValueError:
        raise FieldProblem(f"{text!r} is not a real time of day", "Correct the time in the source system.") from None
    stamp = dt.datetime.combine(day, clock)
    if m["tz"]:
        tz = m["tz"]
        if tz == "Z":
            offset = dt.timezone.utc
        else:
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            offset = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        stamp = stamp.replace(tzinfo=offset)
    else:
        stamp = stamp.replace(tzinfo=ctx.timezone)
        if args.get("note_assumed_zone", True):
            ctx.note(f"{text!r} has no time-zone offset; taken as UK local time",
                     "Export times with their offset.", "assumed-timezone")
    return stamp.isoformat(timespec="seconds")


# Names and people ------------------------------------------------------------------

def _split_given(text: str) -> list[str]:
    return [p for p in re.split(r"\s+", text.strip()) if p]


@transform("name_surname_first")
def name_surname_first(value, args, ctx):
    """``SURNAME, Forename Middle`` -> ``{"given", "family", "text"}``.

    A name with one part (no comma) is kept whole as the family name and
    noted; it is never split by guesswork.
    """
    if _blank(value):
        return None
    text = " ".join(str(value).split())
    if "," in text:
        family, _, given = text.partition(",")
        family, given_list = family.strip(), _split_given(given)
        if not family and not given_list:
            raise FieldProblem(f"{value!r} is not a name")
        return {"family": family or None, "given": given_list,
                "text": " ".join(given_list + ([family] if family else []))}
    ctx.note(f"name {text!r} has one part only", "Record the child's forename and surname.", "one-part-name")
    return {"family": text, "given": [], "text": text}


@transform("name_forename_first")
def name_forename_first(value, args, ctx):
    """``Forename Middle Surname`` -> ``{"given", "family", "text"}`` (last word is the surname)."""
    if _blank(value):
        return None
    parts = _split_given(str(value))
    if len(parts) == 1:
        return {"family": parts[0], "given": [], "text": parts[0]}
    return {"family": parts[-1], "given": parts[:-1], "text": " ".join(parts)}


_PAREN = re.compile(r"^(?P<name>.*?)\s*\((?P<inner>[^()]*)\)\s*$")


@transform("name_with_role")
def name_with_role(value, args, ctx):
    """``Forename Surname (Role)`` -> ``{"name", "role"}``; the role may be missing."""
    if _blank(value):
        return None
    text = " ".join(str(value).split())
    m = _PAREN.match(text)
    if not m:
        return {"name": text, "role": None}
    return {"name": m["name"].strip() or None, "role": m["inner"].strip() or None}


@transform("person_with_relationship")
def person_with_relationship(value, args, ctx):
    """``Forename Surname (Relationship, PR|no PR)`` -> a canonical person.

    ``relationship.label`` is the free text; the engine maps it through the
    mapping's relationship ConceptMap.
    """
    if _blank(value):
        return None
    text = " ".join(str(value).split())
    m = _PAREN.match(text)
    name, inner = (m["name"], m["inner"]) if m else (text, "")
    person = name_forename_first(name, {}, ctx) or {}
    parts = [p.strip() for p in inner.split(",") if p.strip()]
    pr = None
    rel_parts = []
    for p in parts:
        if p.lower() == "pr":
            pr = True
        elif p.lower() in ("no pr", "no-pr", "nopr"):
            pr = False
        else:
            rel_parts.append(p)
    person["relationship"] = {"label": ", ".join(rel_parts)} if rel_parts else None
    person["parental_responsibility"] = pr
    return person


@transform("name_with_identifier")
def name_with_identifier(value, args, ctx):
    """``SURNAME, Forename (UPN)`` -> a person with ``upn`` (the UPN part may be missing)."""
    if _blank(value):
        return None
    text = " ".join(str(value).split())
    m = _PAREN.match(text)
    name, ident = (m["name"], m["inner"].strip()) if m else (text, None)
    person = name_surname_first(name, {}, ctx) or {}
    if ident:
        person["upn"] = TRANSFORMS["upn"](ident, {}, ctx)
    return person


@transform("given_names")
def given_names(value, args, ctx):
    """``Mia Rose`` -> ``["Mia", "Rose"]``."""
    if _blank(value):
        return None
    return _split_given(str(value))


@transform("wrap")
def wrap(value, args, ctx):
    """Return ``{args.key: text, **args.with}``: a value that needs a kind beside it (a risk rating)."""
    if _blank(value):
        return None
    return {args.get("key", "value"): str(value).strip(), **(args.get("with") or {})}


@transform("xml_boolean")
def xml_boolean(value, args, ctx):
    if _blank(value):
        return None
    return str(value).strip() in ("true", "1")


def get_transform(name: str) -> Callable:
    """Return the transform called ``name``; raises KeyError listing the known ones."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise KeyError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}") from None
