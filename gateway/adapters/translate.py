"""Translate one input file: records in, message Bundles and an error report out.

Every record read ends in exactly one of three counts: *translated* (it gave
one or more messages), *skipped* (read and understood but not a message: not
a referral, a resend of a record already read, a notice naming no child) or
*rejected* (it cannot become a message; the error report says where and
why). ``records == translated + skipped + rejected`` always holds, and one
bad record never stops the rest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

import orjson

from gateway.adapters import limits as input_limits
from gateway.adapters.base import Adapter, BadRecord, InputUnreadable
from gateway.adapters.errors import Problem, RecordRejected, RecordSkipped
from gateway.model import build_bundle, deterministic_id
from gateway.model.fhir import FhirInvalid


@dataclasses.dataclass
class Summary:
    """What a translation did; ``as_dict()`` is the ``--summary`` file."""

    file: str
    format: str
    records: int = 0
    translated: int = 0
    skipped: int = 0
    rejected: int = 0
    messages: int = 0
    messages_rejected: int = 0
    errors: int = 0
    warnings: int = 0
    skipped_reasons: Counter = dataclasses.field(default_factory=Counter)
    ignored_fields: list = dataclasses.field(default_factory=list)
    missing_fields: list = dataclasses.field(default_factory=list)
    encoding: str | None = None

    @property
    def balanced(self) -> bool:
        return self.records == self.translated + self.skipped + self.rejected

    def as_dict(self) -> dict:
        return {
            "file": self.file, "format": self.format,
            "records": self.records, "translated": self.translated, "skipped": self.skipped,
            "rejected": self.rejected, "messages": self.messages, "messages_rejected": self.messages_rejected,
            "validation": {"errors": self.errors, "warnings": self.warnings},
            "skipped_reasons": dict(self.skipped_reasons.most_common()),
            "ignored_fields": self.ignored_fields, "missing_fields": self.missing_fields,
            "encoding": self.encoding,
            "balanced": self.balanced,
        }

    def text(self) -> str:
        """A one-paragraph account for people."""
        lines = [f"{self.file}: {self.records} records read = {self.translated} translated + "
                 f"{self.skipped} skipped + {self.rejected} rejected; {self.messages} messages written"
                 f" ({self.errors} validation errors, {self.warnings} warnings)."]
        if self.messages_rejected:
            lines.append(f"  {self.messages_rejected} messages of translated records were rejected (a child in a "
                         "notice naming several): see the error report, outcome 'partly-rejected'")
        for reason, n in self.skipped_reasons.most_common(5):
            lines.append(f"  skipped {n}: {reason}")
        if self.ignored_fields:
            lines.append(f"  ignored (not in the mapping): {', '.join(self.ignored_fields)}")
        if self.missing_fields:
            lines.append(f"  optional fields absent from the file: {', '.join(self.missing_fields)}")
        return "\n".join(lines)


class _SeenMessages:
    """The message ids written so far, kept on disk so memory stays flat for any file size."""

    def __init__(self):
        fd, self._path = tempfile.mkstemp(prefix="gateway-seen-", suffix=".sqlite3")
        os.close(fd)
        self._db = sqlite3.connect(self._path)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, location TEXT)")

    def first_location(self, message_id: str, location: str) -> str | None:
        """Remember ``message_id``; return where it was first seen, or None if it is new."""
        row = self._db.execute("SELECT location FROM seen WHERE id = ?", (message_id,)).fetchone()
        if row:
            return row[0]
        self._db.execute("INSERT INTO seen VALUES (?, ?)", (message_id, location))
        return None

    def close(self):
        self._db.close()
        os.unlink(self._path)


Validator = Callable[[dict], dict]


def _report(errors: IO[str] | None, entry: dict) -> None:
    if errors is not None:
        errors.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _problem_entry(file: str, location: str, line, outcome: str, problems: list[Problem]) -> dict:
    first = problems[0]
    return {
        "file": file, "location": location, "line": line, "outcome": outcome,
        "field": first.field, "place": first.location, "reason": first.reason, "action": first.action,
        "problems": [dataclasses.asdict(p) for p in problems],
    }


def _make_message(canonical: dict, location: str, now: dt.datetime, validator: Validator | None,
                  summary: Summary, lines: list[str], seen: "_SeenMessages", duplicates: list[str]) -> list[Problem]:
    """Build and validate one message; append it to ``lines`` and return [] or return why it failed."""
    try:
        bundle = build_bundle(canonical, now=now)
        outcome = validator(bundle) if validator else None
    except FhirInvalid as exc:
        return [Problem("bundle", f"{location}: {path}", msg,
                        "This is a defect in the mapping; report it to the gateway team.")
                for path, msg in exc.errors]
    except KeyError as exc:
        # A canonical record without a part every message needs (a concern with no child at all):
        # mappings should reject it first; whatever slips through is this record's fault, not a crash.
        part = exc.args[0] if exc.args else "?"
        return [Problem(str(part), location, f"the record gives no {part}, which every message needs",
                        "Check that the record is complete in the source system and send it again.")]
    if outcome is not None:
        issues = outcome.get("issue", [])
        errs = [i for i in issues if i.get("severity") in ("error", "fatal")]
        summary.warnings += sum(1 for i in issues if i.get("severity") == "warning")
        if errs:
            summary.errors += len(errs)
            # What translation noticed names the exact cell, path or element behind the
            # gap, so it comes first; then the standard's verdict.
            return [Problem(n["field"], n["location"], n["reason"], n.get("action", ""))
                    for n in canonical.get("issues") or [] if n.get("code") == "unusable-value"] + \
                   [Problem(", ".join(i.get("expression") or ["Bundle"]), location,
                            i.get("details", {}).get("text") or i.get("diagnostics", ""),
                            "Add it in the source system and send the record again.")
                    for i in errs]
        outcome_id = deterministic_id(bundle["id"], "validation-outcome")
        bundle["entry"].append({"fullUrl": f"urn:uuid:{outcome_id}", "resource": dict(outcome, id=outcome_id)})
    first = seen.first_location(bundle["id"], location)
    if first is not None:
        duplicates.append(first)
    else:
        lines.append(orjson.dumps(bundle).decode("utf-8"))
    return []


def translate_stream(adapter: Adapter, stream: BinaryIO, filename: str, out: IO[str] | None,
                     errors: IO[str] | None = None, *, now: dt.datetime | None = None,
                     include_all: bool = False, validator: Validator | None = None,
                     on_record: Callable[[], None] | None = None, default_sender: dict | None = None,
                     limits: input_limits.Limits | None = None) -> Summary:
    """Translate every record of ``stream``; write one Bundle per line to ``out``.

    ``validator(bundle)`` returns an OperationOutcome dict; a Bundle with an
    error-severity issue is rejected into the error report, never written.
    ``default_sender`` (``{"kind", "code"}``) names the sender of records
    whose input does not (a single concern sent on its own: the gateway
    knows the school from its certificate). ``limits`` are the limits in force
    (:mod:`gateway.adapters.limits`; default: the file limits of the default settings, no
    record count or time limit). Returns the :class:`Summary`. Raises :class:`InputUnreadable` when the
    input as a whole cannot be read, and its :class:`~gateway.adapters.limits.LimitExceeded`
    when a limit is reached (between records: every record counted so far is accounted for);
    records already written stay written.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    summary = Summary(file=filename, format=adapter.format_id)
    seen = _SeenMessages()
    with input_limits.applied(limits) as limits:
        try:
            _translate_records(adapter, stream, filename, out, errors, now, include_all, validator, on_record,
                               default_sender, limits, summary, seen)
        except input_limits.LimitExceeded as exc:
            exc.summary = summary  # what was read before the limit, every record accounted for
            raise
        finally:
            seen.close()
    return summary


def _translate_records(adapter, stream, filename, out, errors, now, include_all, validator, on_record,
                       default_sender, limits, summary, seen) -> None:
    """The loop of :func:`translate_stream`, filling ``summary``."""
    context = None
    records = iter(adapter.records(stream, filename))
    try:
        while True:
            limits.check_time(filename, f"record {summary.records + 1}")
            try:
                raw = next(records)
            except StopIteration:
                return
            limits.check_records(filename, summary.records, raw.location)
            summary.records += 1
            if on_record:
                on_record()
            if isinstance(raw, BadRecord):
                summary.rejected += 1
                _report(errors, _problem_entry(filename, raw.location, raw.line, "rejected",
                                               [Problem(raw.field or "record", raw.location, raw.reason, raw.action)]))
                continue
            if context is None:
                context = raw.context
                summary.ignored_fields = list(raw.context.get("ignored_columns") or [])
                summary.missing_fields = list(raw.context.get("missing_columns") or [])
            try:
                canonicals = adapter.translate(raw, filename=filename, now=now)
            except RecordRejected as exc:
                summary.rejected += 1
                _report(errors, _problem_entry(filename, raw.location, raw.line, "rejected", exc.problems))
                continue
            except RecordSkipped as exc:
                summary.skipped += 1
                summary.skipped_reasons[exc.reason] += 1
                _report(errors, {"file": filename, "location": raw.location, "line": raw.line,
                                 "outcome": "skipped", "reason": exc.reason, "action": ""})
                continue
            if not include_all and all(c["kind"] != "referral" for c in canonicals):
                reason = canonicals[0].get("skip_reason") or "not a referral"
                summary.skipped += 1
                summary.skipped_reasons["not a referral"] += 1
                _report(errors, {"file": filename, "location": raw.location, "line": raw.line,
                                 "outcome": "skipped", "reason": reason,
                                 "action": "Nothing to do; use --all to translate concern records too."})
                continue
            lines, duplicates = [], []
            failed: list[tuple[dict, list[Problem]]] = []  # (canonical, problems) of messages not made
            for canonical in canonicals:
                if canonical["kind"] != "referral" and not include_all:
                    continue
                if default_sender and not canonical["sender"].get("code"):
                    canonical["sender"].update(default_sender)
                problems = _make_message(canonical, raw.location, now, validator, summary, lines, seen,
                                         duplicates)
                if problems:
                    failed.append((canonical, problems))
            if lines:
                # A notice naming two children whose second child's message fails still delivers the first.
                summary.translated += 1
                summary.messages += len(lines)
                if out is not None:
                    for line in lines:
                        out.write(line + "\n")
                for canonical, problems in failed:
                    summary.messages_rejected += 1
                    entry = _problem_entry(filename, raw.location, raw.line, "partly-rejected", problems)
                    entry["child"] = canonical.get("child_key")
                    _report(errors, entry)
            elif failed:
                summary.rejected += 1
                _report(errors, _problem_entry(filename, raw.location, raw.line, "rejected",
                                               [p for _, problems in failed for p in problems]))
            else:
                reason = "a resend of a record already read (same identity and content)" if duplicates \
                    else "the record gives no message"
                summary.skipped += 1
                summary.skipped_reasons[reason] += 1
                _report(errors, {"file": filename, "location": raw.location, "line": raw.line,
                                 "outcome": "skipped",
                                 "reason": f"{reason}, first at {duplicates[0]}" if duplicates else reason,
                                 "action": "Nothing to do: it is the same message." if duplicates else ""})
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # a reader stopped early (a limit) releases its spool files now
            close()
        # A reader may learn the encoding as it reads (CSV); report what it found in the end.
        if context is not None:
            summary.encoding = (context.get("state") or {}).get("encoding") or context.get("encoding")


def translate_file(adapter: Adapter, path: Path, out: IO[str] | None, errors: IO[str] | None = None,
                   **kwargs) -> Summary:
    """Open ``path`` in binary mode and :func:`translate_stream` it."""
    with open(path, "rb") as stream:
        return translate_stream(adapter, stream, Path(path).name, out, errors, **kwargs)


__all__ = ["InputUnreadable", "Summary", "translate_file", "translate_stream"]
