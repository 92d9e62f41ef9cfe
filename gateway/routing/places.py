"""Normalising the place keys the directory is looked up by: districts and LA numbers."""

from __future__ import annotations

import functools
import re

from gateway.model.identifiers import Checked, known_la_numbers, postcode_district

_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")

#: DfE numbers of local authorities made after python-stdnum's list was drawn up
#: (Dorset 838 and Bournemouth, Christchurch and Poole 839 in 2019; the Northamptonshire
#: unitaries 940/941 in 2021; Cumberland 942 and Westmorland and Furness 943 in 2023).
NEWER_LA_NUMBERS = frozenset({"838", "839", "940", "941", "942", "943"})


def normalise_district(text: str) -> str | None:
    """Return the postcode district (outward code) of a postcode or district, upper case.

    ``"sp10 1aa"``, ``"SP101AA"`` and ``" sp10 "`` all give ``"SP10"``.
    Returns ``None`` when ``text`` is neither a UK postcode nor a district.
    """
    if not isinstance(text, str):
        return None
    district = postcode_district(text)
    if district is not None:
        return district
    compact = re.sub(r"\s", "", text).upper()
    return compact if _DISTRICT.match(compact) else None


@functools.lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(f"{n:03d}" for n in known_la_numbers()) | NEWER_LA_NUMBERS


# Cached: an import checks the same few hundred numbers millions of times.
@functools.lru_cache(maxsize=4096)
def check_la_code(raw: str, *, allow_unknown: bool = False) -> Checked:
    """Return a DfE LA number checked for form (3 digits) and, unless ``allow_unknown``, known.

    Known means on python-stdnum's DfE list or in :data:`NEWER_LA_NUMBERS`. An
    ONS code (``E10000014``) is not a DfE number and is refused with a hint.
    """
    original = str(raw).strip()
    if not re.fullmatch(r"\d{3}", original):
        hint = " (it looks like an ONS/GSS code; the directory uses DfE LA numbers such as 850)" \
            if re.fullmatch(r"[EWSN]\d{8}", original) else ""
        return Checked(original, original, f"LA number {original!r} is not a DfE LA number: it must be 3 digits{hint}")
    if not allow_unknown and original not in _known():
        return Checked(original, original, f"LA number {original!r} is not a known DfE local authority")
    return Checked(original, original)
