"""Normalising the place keys the directory is looked up by: districts and LA numbers."""

from __future__ import annotations

import functools
import re

from gateway.model.identifiers import Checked, known_la_numbers, postcode_district

_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")



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


# Cached: an import checks the same few hundred numbers millions of times.
@functools.lru_cache(maxsize=4096)
def check_la_code(raw: str, *, allow_unknown: bool = False) -> Checked:
    """Return a DfE LA number checked for form (3 digits) and, unless ``allow_unknown``, known.

    Known means in :func:`gateway.model.identifiers.known_la_numbers`. An
    ONS code (``E10000014``) is not a DfE number and is refused with a hint.
    """
    original = str(raw).strip()
    if not re.fullmatch(r"\d{3}", original):
        hint = " (it looks like an ONS/GSS code; the directory uses DfE LA numbers such as 850)" \
            if re.fullmatch(r"[EWSN]\d{8}", original) else ""
        return Checked(original, original, f"LA number {original!r} is not a DfE LA number: it must be 3 digits{hint}")
    if not allow_unknown and int(original) not in known_la_numbers():
        return Checked(original, original, f"LA number {original!r} is not a known DfE local authority")
    return Checked(original, original)
