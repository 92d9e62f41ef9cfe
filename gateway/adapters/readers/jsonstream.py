"""Streaming reader for ``concernhub-json``: whole exports and single concerns.

An export can be hundreds of MB, so it is parsed incrementally with
``ijson`` (the C backend ``yajl2_c`` when installed, otherwise whichever
backend ijson finds) and each element of ``concerns`` is handed on as soon as
it is complete; only one concern is ever held in memory.

The document-level fields (``exportVersion``, ``exportedAt``,
``organisation``) must reach every record, but JSON objects have no key
order, and some exports put ``concerns`` first. The reader therefore:

1. parses the top level up to ``concerns``; when all three header fields came
   before it (the usual case) it streams the concerns in the same pass;
2. otherwise it keeps parsing to the end without building the concerns, to
   collect the header fields that follow them, and then parses the file a
   second time from the start, streaming the concerns. A seekable input is
   re-read with ``seek``; a pipe is recorded to a temporary file during the
   first pass (in memory up to a few MB, then on disk) and replayed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

from gateway.adapters import limits as input_limits
from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord

HEADER_KEYS = ("exportVersion", "exportedAt", "organisation")
# Keys that mark a top-level object as one concern sent on its own (1.x uses ``pupil``).
CONCERN_KEYS = frozenset({"id", "reference", "subject", "pupil"})
VERSION_FAMILIES = {"1": "1.x", "2": "2.x"}

RE_EXPORT = "Re-export the file from ConcernHub and send it again."
_SEND_EXPORT = ("Send the export exactly as ConcernHub writes it (an object with exportVersion, "
                "organisation and a concerns list), or one concern object on its own.")

_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_SNIFF_SIZE = 4096
_SPOOL_IN_MEMORY = 8 * 1024 * 1024  # beyond this a non-seekable input is spooled to disk


def read_concernhub_json(stream: BinaryIO, filename: str, options: dict | None = None
                         ) -> Iterator[RawRecord | BadRecord]:
    """Yield the concerns of a concernhub-json input, one at a time.

    A whole export gives one :class:`RawRecord` per element of ``concerns``:
    ``location`` is the JSON pointer (``/concerns/12``), ``data`` the decoded
    object (floats as ``float``, never ``Decimal``) and ``context``::

        {"exportVersion": "2.3", "versionFamily": "2.x", "exportedAt": "...",
         "organisation": {...}, "single": False}

    ``exportVersion`` is the text of the file's version; ``versionFamily`` is
    ``"1.x"`` or ``"2.x"`` (1.x uses ``pupil`` and ``dd/mm/yyyy`` dates; the
    mapping translates, this reader passes the data through unchanged).

    A single concern (the top level has ``id``, ``reference``, ``subject`` or
    ``pupil`` and no ``concerns``) gives one record at ``/`` with context
    ``{"single": True, "versionFamily": "1.x" if it has ``pupil`` and no
    ``subject`` else "2.x", "exportVersion": None, "exportedAt": None,
    "organisation": None}``.

    An element of ``concerns`` that is not an object gives a
    :class:`BadRecord` and reading goes on. Malformed JSON inside ``concerns``
    (a truncated file) gives one :class:`BadRecord` at the element where it
    broke, after every complete concern before it, and ends the stream.

    ``options`` may name ``ijson_backend`` (e.g. ``"python"``) to force a
    backend; otherwise the fastest available is used.

    Limits (:func:`gateway.adapters.limits.current`): a concern nested deeper
    than the nesting limit, or with a string longer than the field limit, is a
    :class:`BadRecord` and reading goes on; outside ``concerns`` (the header,
    a single concern) the same raises
    :class:`~gateway.adapters.limits.LimitExceeded`.

    Raises :class:`InputUnreadable` (before any record, except for damage
    after the last concern) when the input is empty, not JSON, an HTML page,
    UTF-16, a top-level array or scalar, an object with neither ``concerns``
    nor concern fields, an export without ``exportVersion`` or
    ``organisation``, of a version other than 1.x or 2.x, malformed outside
    ``concerns``, or cut off inside ``concerns`` before header fields that
    the file puts after them.
    """
    backend = _backend((options or {}).get("ijson_backend"))
    start = _start_position(stream)
    tap = _Tap(stream, record=start is None)
    try:
        yield from _read(stream, start, tap, filename, backend)
    finally:
        tap.close()


# --- the two passes -----------------------------------------------------------------------

def _read(stream: BinaryIO, start: int | None, tap: "_Tap", filename: str, backend
          ) -> Iterator[RawRecord | BadRecord]:
    limits = input_limits.current()
    src = _open_pass(tap, filename)
    events = backend.parse(src, use_float=True)
    fields: dict[str, Any] = {}
    at_concerns = _guard_header(src, filename, _top_fields, events, fields, first=True, limits=limits)

    if not at_concerns:
        _guard_header(src, filename, _drain, events)
        yield _single(fields, filename)
        return

    if all(key in fields for key in HEADER_KEYS):
        # Usual order: header first. Stream the concerns in this same pass.
        tap.stop_recording()
        context = _context(fields, filename)
    else:
        _look_ahead(src, events, fields, filename)
        context = _context(fields, filename)
        src = _open_pass(_replay(stream, start, tap), filename)
        events = backend.parse(src, use_float=True)
        # Same bytes as pass 1, so this reaches ``concerns`` without error.
        _top_fields(events, {}, first=True)

    count = yield from _concerns(events, src, context, backend, limits)
    if count is None:  # broke inside concerns: already reported, nothing after it is readable
        return
    try:
        if _top_fields(events, {}):
            raise InputUnreadable(filename, "the export has two concerns lists.", RE_EXPORT, location="/")
        _drain(events)
    except _NestedTooDeep:
        raise _too_deep(filename, f"/concerns/{count}") from None
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise InputUnreadable(
            filename,
            f"{_syntax(exc, src)}, after the last concern; the {count} concern(s) before it were read, "
            "but the file is damaged.",
            RE_EXPORT + " Check that nothing is missing from the end.",
            location=f"/concerns/{count}") from None


def _look_ahead(src: "_Source", events, fields: dict, filename: str) -> None:
    """Skip over ``concerns`` and collect the header fields that follow it into ``fields``."""
    try:
        for prefix, event, _ in events:
            if prefix == "concerns" and event == "end_array":
                break
    except _NestedTooDeep:
        raise _too_deep(filename, "/concerns") from None
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        missing = ", ".join(key for key in HEADER_KEYS if key not in fields)
        raise InputUnreadable(
            filename,
            f"{_syntax(exc, src)}, inside concerns; this file puts {missing} after the concerns, "
            "so they were never reached and no concern can be attributed to a sender.",
            RE_EXPORT, location="/concerns") from None
    if _guard_header(src, filename, _top_fields, events, fields):
        raise InputUnreadable(filename, "the export has two concerns lists.", RE_EXPORT, location="/")
    _guard_header(src, filename, _drain, events)


def _concerns(events, src: "_Source", context: dict, backend, limits: input_limits.Limits
              ) -> Iterator[RawRecord | BadRecord]:
    """Yield the elements of ``concerns``; return how many, or ``None`` when the JSON broke."""
    closed = False
    # (deepest nesting inside, longest string) of each element, measured on the events as they pass.
    measured: list[tuple[int, int]] = []

    def elements():
        nonlocal closed
        depth = deepest = longest = 0
        for item in events:
            event = item[1]
            if event == "start_map" or event == "start_array":
                depth += 1
                if depth > deepest:
                    deepest = depth
            elif event == "end_map" or event == "end_array":
                if depth == 0:  # the end of concerns itself
                    closed = True
                    return
                depth -= 1
            elif event == "string" or event == "map_key":
                if len(item[2]) > longest:
                    longest = len(item[2])
            if depth == 0:
                measured.append((deepest, longest))
                deepest = longest = 0
            yield item

    index = 0
    try:
        # ``items`` over an event stream builds each element (in C with yajl2_c).
        for value in backend.items(elements(), "concerns.item"):
            location = f"/concerns/{index}"
            deepest, longest = measured[index] if index < len(measured) else (0, 0)
            if deepest + 2 > limits.max_nesting_depth:  # + the export object and its concerns list
                yield BadRecord(location, limits.depth_exceeded("", location).reason,
                                "No concern is nested this deep: correct it in ConcernHub and export again.")
            elif longest > limits.max_field_chars:
                yield BadRecord(location, limits.field_exceeded("", longest, location).reason,
                                "Shorten the text in ConcernHub, or check what was exported.")
            elif isinstance(value, dict):
                yield RawRecord(location, value, dict(context))
            else:
                yield BadRecord(location, f"this element of concerns is {_kind(value)}, not a concern object.",
                                "Correct or remove this element in ConcernHub and export again.")
            index += 1
        if closed:
            return index
        error = "the file ends unexpectedly"
    except _NestedTooDeep as exc:
        error = (f"the JSON is nested more than {exc.limit} levels deep here, twice the limit "
                 f"(GATEWAY_MAX_NESTING_DEPTH={limits.max_nesting_depth})")
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        error = _syntax(exc, src)
    after = f" after /concerns/{index - 1}" if index else ""
    yield BadRecord(f"/concerns/{index}",
                    f"{error}{after}; this concern and any after it could not be read "
                    f"({index} concern(s) before it were read).",
                    RE_EXPORT)
    return None


# --- the top level -------------------------------------------------------------------------

def _top_fields(events, fields: dict, first: bool = False, limits: input_limits.Limits | None = None) -> bool:
    """Read top-level members into ``fields`` up to ``concerns`` (return True) or the end (False).

    With ``first`` the opening of the top-level value is read too; a value
    that is not an object raises :class:`_NotAnObject`. A member past
    ``limits`` raises :class:`_TooCostly`.
    """
    if first:
        _, event, value = next(events)
        if event != "start_map":
            raise _NotAnObject(event, value)
    for prefix, event, value in events:
        if prefix != "":
            continue
        if event == "end_map":
            return False
        if event == "map_key":
            if value == "concerns":
                _, opening, inner = next(events)
                if opening != "start_array":
                    raise _ConcernsNotAList(_event_kind(opening, inner))
                return True
            fields[value] = _build(events, limits or input_limits.current(), f"/{value}")
    return False


def _build(events, limits: input_limits.Limits, pointer: str) -> Any:
    """Return the next complete value from ``events`` (a member of the top-level object).

    Raises :class:`_TooCostly` when it nests deeper than the limit or holds a string longer
    than the field limit.
    """
    builder = ijson.ObjectBuilder()
    depth = 0
    for _, event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
            if depth + 1 > limits.max_nesting_depth:  # + the top-level object
                raise _TooCostly(limits.depth_exceeded("", pointer))
        elif event in ("end_map", "end_array"):
            depth -= 1
        elif event in ("string", "map_key") and len(value) > limits.max_field_chars:
            raise _TooCostly(limits.field_exceeded("", len(value), pointer))
        if depth == 0:
            return builder.value
    raise ijson.IncompleteJSONError("premature EOF")


def _drain(events) -> None:
    """Parse to the end so damage or trailing garbage after the top-level object is noticed."""
    for _ in events:
        pass


class _NotAnObject(Exception):
    def __init__(self, event: str, value: Any):
        super().__init__(_event_kind(event, value))


class _ConcernsNotAList(Exception):
    pass


class _TooCostly(Exception):
    """A limit reached outside ``concerns``; carries the :class:`LimitExceeded` (without the file name)."""

    def __init__(self, exceeded: input_limits.LimitExceeded):
        super().__init__(str(exceeded))
        self.exceeded = exceeded


def _guard_header(src: "_Source", filename: str, func, *args, **kwargs):
    """Return ``func(*args, **kwargs)``; what goes wrong outside ``concerns`` becomes :class:`InputUnreadable`."""
    try:
        return func(*args, **kwargs)
    except _NestedTooDeep:
        raise _too_deep(filename, None) from None
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise InputUnreadable(filename, f"this is not valid JSON: {_syntax(exc, src)}.", RE_EXPORT) from None
    except StopIteration:
        raise InputUnreadable(filename, f"this is not valid JSON: the file ends at byte {src.consumed}.",
                              RE_EXPORT) from None
    except _NotAnObject as exc:
        raise InputUnreadable(filename, f"the top level of the file is {exc}, not a ConcernHub export object.",
                              _SEND_EXPORT, location="/") from None
    except _ConcernsNotAList as exc:
        raise InputUnreadable(filename, f"concerns is {exc}, not a list of concerns.", RE_EXPORT,
                              location="/concerns") from None
    except _TooCostly as exc:
        raise exc.exceeded.for_file(filename) from None


def _too_deep(filename: str, location: str | None) -> input_limits.LimitExceeded:
    return input_limits.current().depth_exceeded(filename, location)


def _single(fields: dict, filename: str) -> RawRecord:
    if not CONCERN_KEYS & fields.keys():
        raise InputUnreadable(
            filename,
            "the JSON object has no concerns list and none of the fields of a concern (id, reference, "
            "subject or pupil), so it is neither an export nor a single concern.",
            _SEND_EXPORT, location="/")
    family = "1.x" if "pupil" in fields and "subject" not in fields else "2.x"
    return RawRecord("/", fields, {"exportVersion": None, "versionFamily": family, "exportedAt": None,
                                   "organisation": None, "single": True})


def _context(fields: dict, filename: str) -> dict:
    """Return the record context of an export; raises InputUnreadable for a bad header."""
    version = fields.get("exportVersion")
    if version is None or str(version).strip() == "":
        raise InputUnreadable(filename, "the export has no exportVersion, so its layout is unknown.", RE_EXPORT,
                              location="/exportVersion")
    text = str(version).strip()
    match = re.fullmatch(r"(\d+)(?:\.\d+)*(?:\.x)?", text)
    family = VERSION_FAMILIES.get(match.group(1)) if match else None
    if family is None:
        raise InputUnreadable(
            filename,
            f"exportVersion {text!r} is not one the gateway reads (it reads 1.x and 2.x).",
            "Export in format 2.x from ConcernHub, or ask the gateway team to support this version.",
            location="/exportVersion")
    organisation = fields.get("organisation")
    if not isinstance(organisation, dict):
        raise InputUnreadable(
            filename, "the export has no organisation object, so the sending school is unknown.",
            RE_EXPORT, location="/organisation")
    return {"exportVersion": text, "versionFamily": family, "exportedAt": fields.get("exportedAt"),
            "organisation": organisation, "single": False}


# --- bytes in --------------------------------------------------------------------------------

def _backend(name: str | None):
    if name:
        return ijson.get_backend(name)
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        return ijson  # the best backend ijson could load; pure Python at worst, same results


def _start_position(stream: BinaryIO) -> int | None:
    """Return where the input starts when it can be re-read with seek, else None."""
    try:
        if stream.seekable():
            return stream.tell()
    except (AttributeError, OSError, ValueError):
        pass
    return None


class _Tap:
    """Reads the underlying stream; for a non-seekable one, records what it read for a replay."""

    def __init__(self, stream: BinaryIO, record: bool):
        self._stream = stream
        self.recording = record
        self.spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) if record else None

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if self.recording and data:
            self.spool.write(data)
        return data

    def stop_recording(self) -> None:
        self.recording = False
        self.close()

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


class _Chain:
    """The recorded bytes, then whatever the underlying stream still has."""

    def __init__(self, first: BinaryIO, then: BinaryIO):
        self._first, self._then = first, then

    def read(self, size: int = -1) -> bytes:
        data = self._first.read(size)
        if data or size == 0:
            return data
        return self._then.read(size)


def _replay(stream: BinaryIO, start: int | None, tap: _Tap):
    """Return a raw stream positioned at the start of the input for the second pass."""
    if start is not None:
        stream.seek(start)
        return stream
    tap.recording = False  # the spool now holds everything pass 1 read; it is closed with the tap
    tap.spool.seek(0)
    return _Chain(tap.spool, stream)


class _Source:
    """What the parser reads: the input after any BOM, counting bytes for error messages.

    It stops the parser before nesting deeper than ``2 x GATEWAY_MAX_NESTING_DEPTH``: the bytes
    up to there are handed on (so every complete concern before is read), and the next read
    raises :class:`_NestedTooDeep`. ijson names every event by its path, a string as long as the
    nesting: 10,000 levels made half a gigabyte of such names per concern, which the process then
    kept. Nesting between the limit and twice it is one rejected concern (see :func:`_concerns`).
    """

    def __init__(self, head: bytes, raw, offset: int):
        self._head, self._raw = head, raw
        self.consumed = offset  # file offset of the end of what the parser has read
        self.block_start = offset
        self.guard = _NestingGuard(2 * input_limits.current().max_nesting_depth)
        self._stopped = False

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._stopped:
            raise _NestedTooDeep(self.guard.limit)
        if self._head:
            if size < 0 or size >= len(self._head):
                data, self._head = self._head, b""
            else:
                data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._raw.read(size)
        crossing = self.guard.feed(data)
        if crossing is not None:
            data, self._stopped = data[:crossing], True
        self.block_start = self.consumed
        self.consumed += len(data)
        return data


class _NestedTooDeep(Exception):
    """The input nests deeper than the reader will parse (raised from :meth:`_Source.read`)."""

    def __init__(self, limit: int):
        super().__init__(f"nested more than {limit} levels deep")
        self.limit = limit


#: The contents of a JSON string up to its closing quote, or up to the end of the text; written so
#: that the engine never backtracks. A lone backslash at the very end is left out (an escape that
#: the next block completes).
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


class _NestingGuard:
    """Follows the nesting of JSON text block by block, in C-speed steps (strings are cut out by a
    regular expression, brackets counted with ``bytes.count``); only a block that may go past
    ``limit`` is walked byte by byte, to find where."""

    def __init__(self, limit: int):
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the last block ended inside a string, after a lone backslash

    def feed(self, data: bytes) -> int | None:
        """Take the next block; return the offset of the first byte that nests past the limit, or None."""
        start = (self.depth, self.in_string, self.escaped)
        rest = data
        if self.escaped and rest:
            rest, self.escaped = rest[1:], False
        if self.in_string:
            end = _STRING_BODY.match(rest).end()
            if end == len(rest):
                return None
            if rest[end:end + 1] == b"\\":  # a lone backslash ends the block
                self.escaped = True
                return None
            rest, self.in_string = rest[end + 1:], False
        outside = _STRING.sub(b"", rest)
        quote = outside.find(b'"')
        if quote >= 0:  # a string that runs on into the next block
            content = outside[quote + 1:]
            self.in_string = True
            self.escaped = _STRING_BODY.match(content).end() < len(content)
            outside = outside[:quote]
        brackets = outside.translate(None, _NOT_BRACKETS)
        opening = brackets.count(b"[") + brackets.count(b"{")
        if self.depth + opening > self.limit:
            depth = self.depth
            for byte in brackets:
                depth += 1 if byte in _OPENING else -1
                if depth > self.limit:
                    return self._crossing(data, *start)
        self.depth += 2 * opening - len(brackets)
        return None

    def _crossing(self, data: bytes, depth: int, in_string: bool, escaped: bool) -> int:
        """The offset in ``data`` where the nesting passes the limit, from the state before it."""
        for offset, byte in enumerate(data):
            if escaped:
                escaped = False
            elif in_string:
                if byte == 0x5C:  # backslash
                    escaped = True
                elif byte == 0x22:  # quote
                    in_string = False
            elif byte == 0x22:
                in_string = True
            elif byte in _OPENING:
                depth += 1
                if depth > self.limit:
                    return offset
            elif byte in b"]}":
                depth -= 1
        raise AssertionError("a block that passes the limit has a place where it does")  # pragma: no cover


def _open_pass(raw, filename: str) -> _Source:
    """Check what the input starts with; return it as a :class:`_Source` without BOM.

    Raises InputUnreadable for an empty file, UTF-16, HTML/XML or text that
    cannot start JSON.
    """
    head = b""
    while len(head) < 4:
        chunk = raw.read(_SNIFF_SIZE)
        if not chunk:
            break
        head += chunk
    offset = 0
    if head.startswith(_BOM):
        head, offset = head[len(_BOM):], len(_BOM)
    elif head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputUnreadable(filename, "the file is UTF-16 text; ConcernHub exports are UTF-8.",
                              "Export again, or save the file as UTF-8.")
    while True:  # skip leading whitespace without keeping it
        stripped = head.lstrip(_WHITESPACE)
        offset += len(head) - len(stripped)
        head = stripped
        if head:
            break
        head = raw.read(_SNIFF_SIZE)
        if not head:
            raise InputUnreadable(filename, "the file is empty.", RE_EXPORT)
    first = head[:1]
    if first == b"<":
        start = head[:200].lower()
        kind = "an HTML page" if b"<html" in start or b"<!doctype html" in start else "XML or HTML"
        raise InputUnreadable(
            filename, f"the file is {kind}, not a ConcernHub JSON export (perhaps an error or login page "
            "was saved instead of the export).", RE_EXPORT)
    if first == b"[":
        raise InputUnreadable(filename, "the top level of the file is a list, not a ConcernHub export object.",
                              _SEND_EXPORT, location="/")
    if first not in b'{"-0123456789tfn':
        shown = head[:20].decode("utf-8", "replace")
        raise InputUnreadable(filename, f"the file is not JSON (it starts with {shown!r}).", RE_EXPORT)
    return _Source(head, raw, offset)


# --- messages --------------------------------------------------------------------------------

def _syntax(exc: Exception, src: _Source) -> str:
    """Return a phrase saying what is wrong with the JSON and at which byte."""
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    first = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
    lowered = first.lower()
    at_end = src.consumed == src.block_start  # the last read returned nothing: the parser hit the end
    if "premature eof" in lowered or (at_end and "incomplete" in lowered):
        return f"the file ends unexpectedly at byte {src.consumed} (it looks cut off)"
    if isinstance(message, UnicodeDecodeError) or isinstance(exc, UnicodeDecodeError) or "utf8" in lowered:
        return (f"the text between bytes {src.block_start} and {src.consumed} is not UTF-8 "
                "(ConcernHub exports are UTF-8)")
    return f"the JSON is malformed between bytes {src.block_start} and {src.consumed} ({first})"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _event_kind(event: str, value: Any) -> str:
    return {"start_array": "a list", "start_map": "an object", "null": "null", "boolean": "a boolean",
            "number": "a number", "integer": "a number", "double": "a number",
            "string": "a string"}.get(event, event)
