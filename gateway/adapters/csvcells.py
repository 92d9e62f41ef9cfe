"""Cells for CSV files the gateway writes, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return, which some spreadsheets skip before looking) is run as a formula by
Excel, LibreOffice and Google Sheets: CSV injection (OWASP). Names and
narratives come from outside, so every CSV writer of the gateway passes its
cells through :func:`spreadsheet_cell`, which puts a ``'`` in front of such a
cell, as OWASP recommends; the value is otherwise unchanged. Full-width
forms of the same characters are treated alike (spreadsheets normalise
them), and so is leading whitespace before one.
"""

from __future__ import annotations

__all__ = ["spreadsheet_cell", "spreadsheet_row"]

_FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def spreadsheet_cell(value: object) -> str:
    """Return ``value`` as CSV cell text that no spreadsheet runs as a formula (``None`` is empty)."""
    text = "" if value is None else str(value)
    first = text.lstrip(" ")[:1]
    if first and first in _FORMULA_STARTS:
        return "'" + text
    return text


def spreadsheet_row(values) -> list[str]:
    """Return every value of ``values`` through :func:`spreadsheet_cell`."""
    return [spreadsheet_cell(value) for value in values]
