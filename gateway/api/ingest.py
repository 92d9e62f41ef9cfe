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
from gateway.adapters.translate import translate_stream
from gateway.model.systems import extension_url, parse_agency_uri
from gateway.transport.intake import MessageIntake

EXT_INGEST_SUMMARY = extension_url("ingest-summary")


@dataclasses.dataclass
class IngestResult:
    """What an ingest did: the translation summary and each message's intake outcome."""

    summary: object
    accepted: list[dict] = dataclasses.field(default_factory=list)   # {"message_id", "warnings": [...]}
    refused: list[dict] = dataclasses.field(default_factory=list)    # {"message_id", "status", "issues": [...]}
    report: list[dict] = dataclasses.field(default_factory=list)     # translation's error report lines

    def operation_outcome(self) -> dict:
        """Return the answer for the sender as a FHIR OperationOutcome dict."""
        s = self.summary
        counts = {"records": s.records, "translated": s.translated, "skipped": s.skipped, "rejected": s.rejected,
                  "messages": s.messages, "accepted": len(self.accepted), "refused": len(self.refused)}
        issues = [{"severity": "information", "code": "informational",
                   "details": {"text": f"{s.records} records read = {s.translated} translated + {s.skipped} skipped "
                                       f"+ {s.rejected} rejected; {len(self.accepted)} messages accepted, "
                                       f"{len(self.refused)} refused"}}]
        for message in self.accepted:
            issues.append({"severity": "information", "code": "informational",
                           "diagnostics": message["message_id"],
                           "details": {"text": f"message {message['message_id']} accepted"}})
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
            message_id = json.loads(line).get("identifier", {}).get("value")
            outcome = self.intake.process(line.encode("utf-8"), self.agency, now=self.now)
            body = json.loads(outcome.body)
            if outcome.status == 200:
                self.result.accepted.append({"message_id": message_id, "warnings": _feedback(body)})
            else:
                self.result.refused.append({"message_id": message_id, "status": outcome.status,
                                            "issues": body.get("issue", [])})


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
           now: dt.datetime, include_concerns: bool = False) -> IngestResult:
    """Translate ``stream`` and submit every message through ``intake`` as ``agency``.

    With ``include_concerns`` the records that are not referrals are sent too,
    as ``safeguarding-concern`` messages (kept and linked, routed to nobody).

    Raises :class:`gateway.adapters.base.InputUnreadable` when the export as a
    whole cannot be read. The intake checks each message against the national
    standard, so translation does not validate twice.
    """
    result = IngestResult(summary=None)
    kind, code = parse_agency_uri(agency) or (None, None)
    result.summary = translate_stream(adapter, stream, name, _IntakeSink(intake, agency, now, result),
                                      _ReportSink(result), now=now, validator=None, include_all=include_concerns,
                                      default_sender={"kind": kind, "code": code} if code else None)
    return result
