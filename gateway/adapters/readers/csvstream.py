"""Streaming CSV reader for vendor exports (RFC 4180, any line ends).

Decoding is per physical line so a file is never read whole: UTF-8 (a
byte-order mark is removed), falling back to Windows-1252 for exports that
predate UTF-8 and carry no marker. Columns are found by header name.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO

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
    required columns, or text that is not CSV.
    """
    state = {"file": filename, "encoding": "utf-8", "bom": False}
    reader = csv.reader(_decoded_lines(stream, state), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise InputUnreadable(filename, "the file is empty", "Export the incidents again.") from None
    except csv.Error as exc:
        raise InputUnreadable(filename, f"the header row is not valid CSV ({exc})", "Export as CSV.") from None
    header = [h.strip() for h in header]
    while header and header[-1] == "":  # a trailing delimiter on the header row
        header.pop()
    if header and header[0].lstrip().lower().startswith(("<!doctype", "<html", "<?xml", "{", "[")):
        raise InputUnreadable(filename, "this is not a CSV export (it looks like HTML, XML or JSON)",
                              "Check that the right file was sent.")
    duplicates = sorted({h for h in header if header.count(h) > 1 and h})
    if duplicates:
        raise InputUnreadable(filename, f"the header names these columns more than once: {', '.join(duplicates)}",
                              "Export again; each column must appear once.")
    required = list(options.get("required_columns") or [])
    known = set(options.get("known_columns") or []) | set(required)
    missing_required = [c for c in required if c not in header]
    if missing_required:
        raise InputUnreadable(
            filename,
            f"the header has no {', '.join(repr(c) for c in missing_required)} column"
            f"{'s' if len(missing_required) > 1 else ''} (found: {', '.join(repr(h) for h in header)})",
            "This export is from an unsupported version or another report; send the safeguarding incident export, "
            "or add a mapping for this variant.",
            location="row 1 (header)")
    context = {
        "columns": header,
        "ignored_columns": [h for h in header if h and h not in known],
        "missing_columns": sorted(c for c in known if c not in header),
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
            yield BadRecord(f"row {row_number}", f"the row is not valid CSV ({exc})",
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
        data = {h: (cells[i] if i < len(cells) else None) for i, h in enumerate(header) if h}
        yield RawRecord(f"row {row_number}", data, context, line)
