"""Streaming CSV reader for vendor exports (RFC 4180, any line ends).

Decoding is per physical line so a file is never read whole: UTF-8 (a
byte-order mark is removed), falling back to Windows-1252 for exports that
predate UTF-8 and carry no marker. Columns are found by header name.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from gateway.adapters import limits as input_limits
from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord

_BOM = b"\xef\xbb\xbf"


def _decoded_lines(stream: BinaryIO, state: dict) -> Iterator[str]:
    first = True
    for raw in stream:
        if first:
            first = False
            if raw.startswith(_BOM):
                raw = raw[len(_BOM):]
                state["bom"] = True
            if b"\x00" in raw:
                raise InputUnreadable(state["file"], "the file contains NUL bytes: it is not a CSV text export",
                                      "Export the incidents again as CSV.")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            # Pre-2020 exports are Windows-1252 without any marker.
            state["encoding"] = "cp1252"
            yield raw.decode("cp1252", errors="replace")


def read_csv(stream: BinaryIO, filename: str, options: dict) -> Iterator[RawRecord | BadRecord]:
    """Yield one :class:`RawRecord` per data row (``data``: header -> cell text).

    ``options``: ``required_columns`` (list), ``known_columns`` (list). The
    record context carries ``ignored_columns`` (in the file, not in the
    mapping), ``missing_columns`` (optional ones absent) and ``encoding``.
    Raises :class:`InputUnreadable` for an empty file, a header without the
    required columns, or text that is not CSV, and its
    :class:`~gateway.adapters.limits.LimitExceeded` for a header with more
    columns than the limit. A row with a cell longer than the field limit is a
    :class:`BadRecord`. Every step is linear in the size of the file.
    """
    limits = input_limits.current()
    _allow_fields(limits.max_field_chars)
    state = {"file": filename, "encoding": "utf-8", "bom": False}
    reader = csv.reader(_decoded_lines(stream, state), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise InputUnreadable(filename, "the file is empty", "Export the incidents again.") from None
    except csv.Error as exc:
        raise InputUnreadable(filename, f"the header row is not valid CSV ({_csv_error(exc, limits)})",
                              "Export as CSV.") from None
    if len(header) > limits.max_columns:
        raise limits.columns_exceeded(filename, len(header))
    header = [h.strip() for h in header]
    while header and header[-1] == "":  # a trailing delimiter on the header row
        header.pop()
    if header and header[0].lstrip().lower().startswith(("<!doctype", "<html", "<?xml", "{", "[")):
        raise InputUnreadable(filename, "this is not a CSV export (it looks like HTML, XML or JSON)",
                              "Check that the right file was sent.")
    duplicates = sorted(h for h, n in Counter(header).items() if n > 1 and h)
    if duplicates:
        raise InputUnreadable(filename, f"the header names these columns more than once: {', '.join(duplicates)}",
                              "Export again; each column must appear once.")
    required = list(options.get("required_columns") or [])
    known = set(options.get("known_columns") or []) | set(required)
    present = set(header)
    missing_required = [c for c in required if c not in present]
    if missing_required:
        raise InputUnreadable(
            filename,
            f"the header has no {', '.join(repr(c) for c in missing_required)} column"
            f"{'s' if len(missing_required) > 1 else ''} (found: {_shown(header)})",
            "This export is from an unsupported version or another report; send the safeguarding incident export, "
            "or add a mapping for this variant.",
            location="row 1 (header)")
    context = {
        "columns": header,
        "ignored_columns": [h for h in header if h and h not in known],
        "missing_columns": sorted(c for c in known if c not in present),
        "state": state,  # encoding found so far; final once the file is read
    }
    width = len(header)
    row_number = 1
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_number += 1
            yield BadRecord(f"row {row_number}", f"the row is not valid CSV ({_csv_error(exc, limits)})",
                            "Check the quoting of this row in the export.", line=line)
            continue
        row_number += 1
        if not any(c.strip() for c in cells):
            continue  # blank lines are not records
        extra = cells[width:]
        if any(c.strip() for c in extra):
            yield BadRecord(f"row {row_number}",
                            f"the row has {len(cells)} cells but the header has {width} columns",
                            "Check for an unquoted comma in a free-text cell.", line=line)
            continue
        longest = max(range(len(cells)), key=lambda i: len(cells[i]))
        if len(cells[longest]) > limits.max_field_chars:
            column = header[longest] if longest < width and header[longest] else f"cell {longest + 1}"
            yield BadRecord(f"row {row_number}", f"{column}: {limits.field_reason(len(cells[longest]))}",
                            "Shorten the text in the source system, or check the quoting of this row.",
                            field=column, line=line)
            continue
        data = {h: (cells[i] if i < len(cells) else None) for i, h in enumerate(header) if h}
        yield RawRecord(f"row {row_number}", data, context, line)


def _allow_fields(max_chars: int) -> None:
    # The csv module's own field limit is one value for the whole process (every thread): it is
    # only ever raised here, to just above the gateway's limit, which each row is then held to
    # with a message that names the setting.
    if csv.field_size_limit() <= max_chars:
        csv.field_size_limit(max_chars + 1)


def _csv_error(exc: csv.Error, limits) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return limits.field_reason(csv.field_size_limit(), at_least=True)
    return text


def _shown(header: list[str], most: int = 40) -> str:
    shown = ", ".join(repr(h) for h in header[:most])
    return shown + (f" and {len(header) - most} more" if len(header) > most else "")
