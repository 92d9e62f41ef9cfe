"""Bounded cost for every input: the limits a reader or request must stay within.

The values are settings (:class:`gateway.config.Settings`, ``GATEWAY_MAX_*``,
described in docs/limits.md); this module carries them to the code that reads
input, and says in one place how a limit that was reached is worded.

Readers are called through the :class:`~gateway.adapters.base.Adapter`
contract (``records(stream, filename)``), which plug-in adapters implement and
which has no room for limits, so :func:`applied` makes a :class:`Limits` the
current one for the code that runs inside it (a :class:`contextvars.ContextVar`:
each request thread sees its own) and readers ask :func:`current`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import re
import time
from array import array
from collections.abc import Iterator
from itertools import accumulate

from gateway.adapters.base import InputUnreadable

__all__ = ["LimitExceeded", "Limits", "applied", "current", "json_nesting_exceeds"]


class LimitExceeded(InputUnreadable):
    """An input goes past one of the gateway's limits.

    ``setting`` is the environment variable (``GATEWAY_MAX_COLUMNS``), ``value`` its value,
    ``status`` the HTTP status to answer (413 for size, 400 for shape); ``summary`` is set
    when translation stopped at it part way. It is an
    :class:`InputUnreadable`, so a command that reports unreadable input reports it too.
    """

    def __init__(self, file: str, setting: str, value: int, reason: str, action: str,
                 location: str | None = None, status: int = 413):
        self.setting, self.value, self.status, self.detail = setting, value, status, reason
        self.summary = None  # set by translation: the translate Summary of what was read before the limit
        super().__init__(file, f"{reason} (limit {setting}={value}).", action, location)

    def for_file(self, file: str) -> "LimitExceeded":
        """Return the same limit reached, in ``file``."""
        return LimitExceeded(file, self.setting, self.value, self.detail, self.action, self.location, self.status)

    def issue(self) -> dict:
        """Return the OperationOutcome issue that names the limit, its value and what to do."""
        issue = {"severity": "error", "code": "too-costly" if self.status == 413 else "structure",
                 "diagnostics": f"{self.setting}={self.value}", "details": {"text": str(self)}}
        if self.location:
            issue["expression"] = [self.location]
        return issue

    def operation_outcome(self) -> dict:
        return {"resourceType": "OperationOutcome", "issue": [self.issue()]}


def _setting(name: str) -> str:
    from gateway.config import Settings

    return Settings.ENV_PREFIX + name.upper()


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits in force. ``max_records``/``deadline`` are None outside a request (the CLI).

    ``deadline`` is a :func:`time.monotonic` instant; ``max_seconds`` is what it was made from, for messages.
    """

    max_columns: int
    max_field_chars: int
    max_nesting_depth: int
    max_records: int | None = None
    max_seconds: int | None = None
    deadline: float | None = None

    @classmethod
    def for_files(cls, settings=None) -> "Limits":
        """The limits on the shape of a file (columns, field length, depth), without request limits."""
        if settings is None:
            return _default_file_limits()
        return cls(settings.max_columns, settings.max_field_chars, settings.max_nesting_depth)

    @classmethod
    def for_request(cls, settings, *, started: float | None = None) -> "Limits":
        """Every limit of one request, its clock started at ``started`` (``time.monotonic()``; now if None)."""
        started = time.monotonic() if started is None else started
        return cls(settings.max_columns, settings.max_field_chars, settings.max_nesting_depth,
                   settings.max_records_per_request, settings.max_request_seconds,
                   started + settings.max_request_seconds)

    # Checks that readers and translation call; each raises LimitExceeded naming the setting.

    def check_time(self, file: str, location: str | None = None) -> None:
        """Raise :class:`LimitExceeded` when the request's time is up."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            where = f" before {location}" if location else ""
            raise LimitExceeded(file, _setting("max_request_seconds"), self.max_seconds,
                                f"the request took longer than the gateway allows; it stopped{where}",
                                "Send the export in smaller parts; what was accepted before stays accepted, "
                                "and sending it again is answered 'already accepted'.", location)

    def check_records(self, file: str, count: int, location: str | None = None) -> None:
        """Raise :class:`LimitExceeded` when ``count`` records have already been read and no more may be."""
        if self.max_records is not None and count >= self.max_records:
            raise LimitExceeded(file, _setting("max_records_per_request"), self.max_records,
                                f"the request holds more than {self.max_records} records; the records after "
                                f"the first {self.max_records} were not read",
                                "Send the export in smaller parts; the records already accepted stay "
                                "accepted, and sending them again is answered 'already accepted'.", location)

    def columns_exceeded(self, file: str, count: int) -> LimitExceeded:
        return LimitExceeded(file, _setting("max_columns"), self.max_columns,
                             f"the header has {count} columns, more than the gateway reads",
                             "Export only the columns of the format (see docs/formats/).", "row 1 (header)")

    def field_reason(self, length: int, *, at_least: bool = False) -> str:
        """The sentence for a value of ``length`` (``at_least``: or more) characters over the field limit."""
        return (f"a value of {'at least ' if at_least else ''}{length} characters is longer than the gateway reads "
                f"(limit {_setting('max_field_chars')}={self.max_field_chars})")

    def field_exceeded(self, file: str, length: int, location: str | None = None) -> LimitExceeded:
        return LimitExceeded(file, _setting("max_field_chars"), self.max_field_chars,
                             f"a value of {length} characters is longer than the gateway reads",
                             "Shorten the text in the source system, or check what was sent.", location)

    def depth_exceeded(self, file: str, location: str | None = None, *, kind: str = "JSON") -> LimitExceeded:
        return LimitExceeded(file, _setting("max_nesting_depth"), self.max_nesting_depth,
                             f"the {kind} is nested more than {self.max_nesting_depth} levels deep",
                             "No message of the gateway's formats is nested this deep: check what was sent.",
                             location, status=400)


@functools.lru_cache(maxsize=1)
def _default_file_limits() -> Limits:
    from gateway.config import Settings

    return Limits.for_files(Settings())


_CURRENT: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("gateway_limits", default=None)


def current() -> Limits:
    """Return the limits in force here: those of :func:`applied`, else the default file limits."""
    return _CURRENT.get() or _default_file_limits()


@contextlib.contextmanager
def applied(limits: Limits | None) -> Iterator[Limits]:
    """Make ``limits`` (None: the default file limits) the current ones inside the ``with`` block."""
    limits = limits or _default_file_limits()
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


# JSON nesting, measured before parsing ----------------------------------------------------------

#: A JSON string (with escapes), written so that the engine never backtracks; what is inside one is not structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: Opening brackets step one level in (+1), closing ones out (-1 as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_CHUNK = 1 << 16


def json_nesting_exceeds(body: bytes, limit: int) -> bool:
    """True when the JSON text ``body`` nests objects and arrays more than ``limit`` deep.

    Linear in ``len(body)`` and done mostly in C (a regular expression, ``bytes.translate``,
    and a running sum over the brackets only), so a hostile body is refused before any
    recursive code sees it: 50 MB of brackets take about a second. Brackets inside strings
    do not count; a body that is not JSON may be misjudged, and the parser refuses it anyway.
    """
    steps = _JSON_STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS)
    if len(steps) <= limit:  # the common case: too few brackets to be too deep
        return False
    depth = 0
    for start in range(0, len(steps), _CHUNK):
        chunk = steps[start:start + _CHUNK]
        opening = chunk.count(1)
        if depth + opening > limit and max(accumulate(array("b", chunk), initial=depth)) > limit:
            return True
        depth += 2 * opening - len(chunk)
    return False
