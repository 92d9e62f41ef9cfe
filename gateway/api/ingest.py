"""``POST /ingest/<format>``: a vendor export in, one message per referral through the intake.

Each translated Bundle goes through exactly the path a FHIR message sent to
``$process-message`` takes (sender check, national standard, signing, one
transaction with its routing and deliveries), so an export is never a back
door. The answer is one OperationOutcome: the counts, every message id with
what the standard says is missing, and every record that did not become a
message with its place and reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import BinaryIO

from gateway.adapters.base import Adapter
from gateway.adapters.limits import LimitExceeded, Limits
from gateway.adapters.translate import translate_stream
from gateway.audit import record_audit
from gateway.model.systems import extension_url, parse_agency_uri
from gateway.transport.intake import MessageIntake

EXT_INGEST_SUMMARY = extension_url("ingest-summary")


@dataclasses.dataclass
class IngestResult:
    """What an ingest did: the translation summary and each message's intake outcome."""

    summary: object
    accepted: list[dict] = dataclasses.field(default_factory=list)   # {"message_id", "warnings", "again"}
    refused: list[dict] = dataclasses.field(default_factory=list)    # {"message_id", "status", "issues": [...]}
    report: list[dict] = dataclasses.field(default_factory=list)     # translation's error report lines
    stopped: LimitExceeded | None = None  # a limit reached part way: what was read before it is accounted for

    @property
    def status(self) -> int:
        """The HTTP status to answer: 200, or the status of the limit that stopped the ingest."""
        return self.stopped.status if self.stopped is not None else 200

    def operation_outcome(self) -> dict:
        """Return the answer for the sender as a FHIR OperationOutcome dict."""
        s = self.summary
        counts = {"records": s.records, "translated": s.translated, "skipped": s.skipped, "rejected": s.rejected,
                  "messages": s.messages, "accepted": len(self.accepted), "refused": len(self.refused)}
        issues = [self.stopped.issue()] if self.stopped is not None else []
        issues.append({"severity": "information", "code": "informational",
                       "details": {"text": f"{s.records} records read = {s.translated} translated + {s.skipped} "
                                           f"skipped + {s.rejected} rejected; {len(self.accepted)} messages "
                                           f"accepted, {len(self.refused)} refused"}})
        for message in self.accepted:
            text = (f"message {message['message_id']} already accepted (sent before with the same content; "
                    "nothing was done twice)" if message.get("again") else f"message {message['message_id']} accepted")
            issues.append({"severity": "information", "code": "informational",
                           "diagnostics": message["message_id"], "details": {"text": text}})
            for warning in message["warnings"]:
                issues.append(dict(warning, diagnostics=f"{message['message_id']}: "
                                                        f"{warning.get('diagnostics') or ''}".rstrip(": ")))
        for message in self.refused:
            for issue in message["issues"]:
                issues.append(dict(issue, severity="error",
                                   diagnostics=f"{message['message_id']}: {issue.get('diagnostics') or ''}"
                                   .rstrip(": ")))
        for line in self.report:
            issues.append({
                "severity": "warning" if line["outcome"] == "skipped" else "error",
                "code": "informational" if line["outcome"] == "skipped" else "invalid",
                "expression": [line.get("place") or line["location"]],
                "details": {"text": f"{line['location']}: {line['outcome']}: {line['reason']}"
                                    + (f" {line['action']}" if line.get("action") else "")},
            })
        return {"resourceType": "OperationOutcome",
                "extension": [{"url": EXT_INGEST_SUMMARY,
                               "extension": [{"url": k, "valueInteger": v} for k, v in counts.items()]}],
                "issue": issues}


class _IntakeSink:
    """A text sink for translation that hands each message line to the intake."""

    def __init__(self, intake: MessageIntake, agency: str, now: dt.datetime, result: IngestResult):
        self.intake, self.agency, self.now, self.result = intake, agency, now, result

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if not line.strip():
                continue
            bundle = json.loads(line)
            message_id = bundle.get("identifier", {}).get("value")
            outcome, again = self._submit(line, bundle, message_id)
            body = json.loads(outcome.body)
            if outcome.status == 200:
                self.result.accepted.append({"message_id": message_id, "warnings": _feedback(body), "again": again})
            else:
                self.result.refused.append({"message_id": message_id, "status": outcome.status,
                                            "issues": body.get("issue", [])})


    def _submit(self, line: str, bundle: dict, message_id: str | None):
        """Return (the intake's outcome, whether the message had been accepted before).

        A message made again from a re-sent export differs from the accepted one only in
        when it was sent (``Bundle.timestamp``, the Provenance's ``recorded``), which the
        intake would call "different content". So the message as first accepted is sent
        instead, and the intake answers it as the replay it is: "already accepted", every
        time, also when two re-sends race (the loser's 409 is looked at again).
        """
        earlier = self._earlier(bundle, message_id)
        if earlier is not None:
            return self.intake.process(earlier, self.agency, now=self.now), True
        outcome = self.intake.process(line.encode("utf-8"), self.agency, now=self.now)
        if outcome.status == 409:
            earlier = self._earlier(bundle, message_id)
            if earlier is not None:
                return self.intake.process(earlier, self.agency, now=self.now), True
        return outcome, False

    def _earlier(self, bundle: dict, message_id: str | None) -> bytes | None:
        """Return the accepted message ``bundle`` is a re-send of (its body as received), or None."""
        existing = self.intake.store.find_accepted(message_id) if message_id else None
        if existing is None or existing.sender_agency != self.agency:
            return None
        if _without_sending_time(json.loads(existing.raw_message)) != _without_sending_time(bundle):
            return None
        return existing.raw_message.encode("utf-8")


def _without_sending_time(bundle: dict) -> dict:
    """``bundle`` without the values :func:`gateway.model.build_bundle` takes from its ``now``."""
    entries = [dict(entry, resource={k: v for k, v in entry["resource"].items() if k != "recorded"})
               if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
               and entry["resource"].get("resourceType") == "Provenance" else entry
               for entry in bundle.get("entry") or []]
    return {**{k: v for k, v in bundle.items() if k != "timestamp"}, "entry": entries}


class _ReportSink:
    def __init__(self, result: IngestResult):
        self.result = result

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                self.result.report.append(json.loads(line))


def _feedback(response: dict) -> list[dict]:
    """Return the warnings of the standard's feedback inside a signed response message."""
    return [issue for entry in response.get("entry", [])
            if entry.get("resource", {}).get("resourceType") == "OperationOutcome"
            for issue in entry["resource"].get("issue", []) if issue.get("severity") == "warning"]


def ingest(adapter: Adapter, stream: BinaryIO, name: str, *, intake: MessageIntake, agency: str,
           now: dt.datetime, include_concerns: bool = False, limits: Limits | None = None) -> IngestResult:
    """Translate ``stream`` and submit every message through ``intake`` as ``agency``.

    With ``include_concerns`` the records that are not referrals are sent too,
    as ``safeguarding-concern`` messages (kept and linked, routed to nobody).

    A limit of ``limits`` reached part way (records or time per request) stops the ingest:
    ``result.stopped`` says which, and what was read before it is in the result (accepted
    messages stay accepted). Raises :class:`gateway.adapters.base.InputUnreadable` when the
    export as a whole cannot be read (a :class:`LimitExceeded` when a limit is reached before
    any record). The intake checks each message against the national standard, so
    translation does not validate twice.
    """
    result = IngestResult(summary=None)
    kind, code = parse_agency_uri(agency) or (None, None)
    try:
        result.summary = translate_stream(adapter, stream, name, _IntakeSink(intake, agency, now, result),
                                          _ReportSink(result), now=now, validator=None,
                                          include_all=include_concerns,
                                          default_sender={"kind": kind, "code": code} if code else None,
                                          limits=limits)
    except LimitExceeded as exc:
        if exc.summary is None or not exc.summary.records:
            _audit_translation(intake, adapter, agency, now, None, problem=type(exc).__name__)
            raise
        result.summary, result.stopped = exc.summary, exc
    except Exception as exc:  # the export could not be read (InputUnreadable, ...): recorded, then answered
        _audit_translation(intake, adapter, agency, now, None, problem=type(exc).__name__)
        raise
    _audit_translation(intake, adapter, agency, now, result)
    return result


def _audit_translation(intake: MessageIntake, adapter: Adapter, agency: str, now: dt.datetime,
                       result: IngestResult | None, *, problem: str | None = None) -> None:
    """Record the translation of one export, with its counts, in a short transaction of its own (each message
    it became has its own records, written with the message)."""
    detail: dict = {"format": adapter.format_id}
    if result is not None:
        s = result.summary
        detail.update(records=s.records, translated=s.translated, skipped=s.skipped, rejected=s.rejected,
                      messages=s.messages, accepted=len(result.accepted), refused=len(result.refused))
        if result.stopped is not None:
            problem = type(result.stopped).__name__
    if problem is not None:
        detail["stopped"] = problem
    with intake.store.transaction() as unit:
        record_audit(unit.session, action="E", subtype="translation", agent=agency, detail=detail, at=now,
                     outcome="success" if problem is None else "failure")
