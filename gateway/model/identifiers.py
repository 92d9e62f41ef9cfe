"""Normalising and checking the UK identifiers that travel in referrals.

Check digits come from ``python-stdnum`` (NHS number, UPN); the rest are
format checks. Every function takes the raw text as written in the source and
returns a :class:`Checked` so that an invalid value can be *kept* (marked, and
never used for linking) instead of being dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from stdnum import exceptions as stdnum_errors
from stdnum.gb import nhs as _nhs
from stdnum.gb import upn as _upn


@dataclasses.dataclass(frozen=True)
class Checked:
    """An identifier as normalised, with whether it passed its checks.

    ``value`` is the normalised form (or the trimmed original when it could
    not be normalised); ``problem`` says why it is invalid, else ``None``.
    """

    value: str
    original: str
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None


_STDNUM_REASON = {
    stdnum_errors.InvalidChecksum: "the check digit does not match",
    stdnum_errors.InvalidLength: "it has the wrong number of characters",
    stdnum_errors.InvalidFormat: "it contains characters that are not allowed",
    stdnum_errors.InvalidComponent: "a part of it is not a known value",
}


def _reason(exc: Exception) -> str:
    for cls, text in _STDNUM_REASON.items():
        if isinstance(exc, cls):
            return text
    return "it is not valid"


def check_nhs_number(raw: str) -> Checked:
    """Return the NHS number as 10 digits, checked with the modulus-11 rule.

    ``943 476 5919`` and ``943-476-5919`` normalise to ``9434765919``.
    """
    original = raw.strip()
    compact = re.sub(r"[\s-]", "", original)
    try:
        return Checked(_nhs.validate(compact), original)
    except stdnum_errors.ValidationError as exc:
        return Checked(compact, original, f"NHS number {original!r} is not valid: {_reason(exc)}")


def check_upn(raw: str) -> Checked:
    """Return the UPN upper-cased without spaces, with its check letter and LA checked.

    The check letter is python-stdnum's (``calc_check_digit``); the LA
    (characters 2-4) is checked against :func:`known_la_numbers`, the
    project's own list, because python-stdnum's list stops before the local
    authorities made since 2019: its ``validate`` refuses every UPN that
    Dorset (838), BCP (839) or the newer unitaries issued, and those children
    would never link on their UPN. Temporary UPNs (a letter in position 13)
    are accepted when their check letter matches.
    """
    original = raw.strip()
    compact = _upn.compact(original).upper()
    problem = None
    if len(compact) != 13:
        problem = _STDNUM_REASON[stdnum_errors.InvalidLength]
    elif not compact[1:12].isdigit() or not compact[12].isalnum() or not compact[0].isalpha():
        problem = _STDNUM_REASON[stdnum_errors.InvalidFormat]
    elif int(compact[1:4]) not in known_la_numbers():
        problem = f"{compact[1:4]} is not a known local authority number"
    else:
        try:  # the check letter, through the library (it also refuses letters UPNs never use)
            if _upn.calc_check_digit(compact[1:]) != compact[0]:
                problem = _STDNUM_REASON[stdnum_errors.InvalidChecksum]
        except (KeyError, ValueError, IndexError):
            problem = _STDNUM_REASON[stdnum_errors.InvalidFormat]
    if problem:
        return Checked(compact, original, f"UPN {original!r} is not valid: {problem}")
    return Checked(compact, original)


def is_temporary_upn(upn: str) -> bool:
    """Return True for a temporary UPN (letter in the last position)."""
    return len(upn) == 13 and upn[-1].isalpha()


#: DfE numbers of local authorities made after python-stdnum's list was drawn up
#: (Dorset 838 and Bournemouth, Christchurch and Poole 839 in 2019; the Northamptonshire
#: unitaries 940/941 in 2021; Cumberland 942 and Westmorland and Furness 943 in 2023).
NEWER_LA_NUMBERS = frozenset({838, 839, 940, 941, 942, 943})


@functools.cache
def known_la_numbers() -> frozenset[int]:
    """Return the DfE local-authority numbers: python-stdnum's published list plus :data:`NEWER_LA_NUMBERS`."""
    return frozenset(_upn._la_numbers) | NEWER_LA_NUMBERS


def check_la_number(raw: str) -> Checked:
    """Return a DfE LA number (3 digits) checked against the known list."""
    original = str(raw).strip()
    if not re.fullmatch(r"\d{3}", original):
        return Checked(original, original, f"DfE LA number {original!r} is not valid: it must be 3 digits")
    if int(original) not in known_la_numbers():
        return Checked(original, original, f"DfE LA number {original!r} is not a known local authority")
    return Checked(original, original)


def check_urn(raw: str) -> Checked:
    """Return a school URN (6 digits)."""
    original = str(raw).strip()
    if not re.fullmatch(r"\d{6}", original):
        return Checked(original, original, f"school URN {original!r} is not valid: it must be 6 digits")
    return Checked(original, original)


# UK postcode: outward code (area letters, district) and inward code (sector digit, unit letters).
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][ABD-HJLNP-UW-Z]{2})$")


def check_postcode(raw: str) -> Checked:
    """Return the postcode upper-cased with one space before the inward code."""
    original = raw.strip()
    compact = re.sub(r"\s", "", original).upper()
    match = _POSTCODE.match(compact)
    if not match:
        return Checked(original.upper(), original, f"postcode {original!r} is not a valid UK postcode")
    return Checked(f"{match.group(1)} {match.group(2)}", original)


def postcode_district(postcode: str) -> str | None:
    """Return the outward code (district), e.g. ``SP10`` for ``SP10 1AA``; None if not a postcode."""
    checked = check_postcode(postcode)
    return checked.value.split(" ")[0] if checked.valid else None
