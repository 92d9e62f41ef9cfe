"""The message intake behind ``POST /fhir/$process-message``, without Flask.

:meth:`MessageIntake.process` takes the request body as received, the
agency of the verified client certificate and the time, and returns the
HTTP status and body to answer. In order:

1. the caller must be an agency known from its certificate (401/403);
2. the body must be a FHIR message Bundle with ids (400);
3. its sender (``MessageHeader.source.endpoint`` and the ``sender``
   Organization, which identifies no other agency) must be the
   certificate's agency, and that agency's kind may send this kind of
   message (:data:`gateway.transport.access.MESSAGE_RULES`) (403);
4. ``Bundle.timestamp`` must be within the replay window of now (422);
5. a sender signature must verify and be the sender's (422/403);
6. the message must meet the national standard (422, every reason at once);
7. the gateway counter-signs, and in ONE transaction records the message
   and its response, checks that the message goes only where its sender may
   send it (an LA's outcome to the referrer of a referral delivered to it, a
   response to the sender of a message delivered to the responder: 403),
   and runs the accept steps (the seam where routing and the outbox plug
   in: :data:`AcceptStep`). On SQLite the store may share
   that transaction with other messages that arrive together (group commit,
   :meth:`gateway.store.SqlMessageStore.together`), each message in its own
   savepoint, so each is still all or nothing, and is committed before its
   sender is answered.

A message id accepted before returns the stored response (a replay; 409
when the content differs), whatever steps 4-6 would now say. The store is
not asked up front: the message's primary key refuses the second insert
(step 7), and a refusal in steps 4-6 looks the id up before answering. So
the common case (a new message) costs no extra read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence

import orjson

from gateway.audit import record_audit
from gateway.model.responses import response_message
from gateway.model.systems import EVENT_OUTCOME, parse_agency_uri
from gateway.signing.messages import (
    format_instant,
    identifies_agency,
    message_header,
    message_id,
    parse_instant,
    resolve_reference,
    source_endpoint,
)
from gateway.signing.signatures import (
    Signer,
    TrustAnchor,
    UntrustedMessage,
    countersign_message,
    sender_signature,
    sign_message,
    signed_payload,
    verify_signature,
)
from gateway.store.interfaces import AcceptedMessage, AlreadyAccepted, MessageStore, UnitOfWork
from gateway.transport import access
from gateway.validation import completeness

FHIR_JSON = "application/fhir+json"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What to answer: an HTTP status and a JSON body (as text, so replays are byte-identical)."""

    status: int
    body: str


class Refused(Exception):
    """A message the gateway will not accept; becomes an OperationOutcome.

    Accept steps raise it too (e.g. validation, no route): the transaction
    then rolls back and nothing is recorded.
    """

    def __init__(self, status: int, code: str, text: str, expression: str | None = None,
                 operation_outcome: dict | None = None):
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text
        self.expression = expression
        self.operation_outcome = operation_outcome  # a full OperationOutcome (validation) to answer as is

    def outcome(self) -> Outcome:
        if self.operation_outcome is not None:
            return Outcome(self.status, json.dumps(self.operation_outcome))
        issue = {"severity": "error", "code": self.code, "diagnostics": self.text, "details": {"text": self.text}}
        if self.expression:
            issue["expression"] = [self.expression]
        return Outcome(self.status, json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}))


#: A step run inside the accepting transaction: ``step(unit_of_work, record, signed_bundle)``.
#: It may add rows through ``unit_of_work.session`` (they commit with the
#: message) or raise :class:`Refused` to refuse the message (nothing commits).
AcceptStep = Callable[[UnitOfWork, AcceptedMessage, dict], None]

#: Checks a message against the national standard: ``validator(bundle, now)`` returns an
#: OperationOutcome; an error refuses the message, warnings go back in the response.
Validator = Callable[[dict, dt.datetime], dict]


class MessageIntake:
    """Checks, signs and records incoming messages; see the module docstring."""

    def __init__(self, *, store: MessageStore, signer: Callable[[], Signer], trust: Callable[[], TrustAnchor],
                 replay_window: dt.timedelta, steps: Callable[[], Sequence[AcceptStep]] = tuple,
                 validator: Validator | None = None):
        # signer, trust and steps are callables so that a CRL rewritten on
        # disk, or a step registered after start-up, is seen on the next message.
        self.store = store
        self.signer = signer
        self.trust = trust
        self.replay_window = replay_window
        self.steps = steps
        self.validator = validator

    def process(self, body: bytes, agency: str | None, *, now: dt.datetime) -> Outcome:
        """Return the response to ``body`` sent by ``agency`` (``None``: no verified certificate) at ``now``."""
        try:
            return self._process(body, agency, now)
        except Refused as refusal:
            self._audit_refusal(refusal, body, agency, now)
            return refusal.outcome()

    def _audit_refusal(self, refusal: Refused, body: bytes, agency: str | None, now: dt.datetime) -> None:
        """Record a refusal in a short transaction of its own (nothing else of the message is stored)."""
        try:
            mid = message_id(_parse(body))
        except (Refused, RecursionError):
            mid = None
        with self.store.transaction() as unit:
            record_audit(unit.session, action="C", subtype="refusal", outcome="failure",
                         agent=agency or "unknown", entities=[("message", mid)] if mid else (),
                         detail={"status": refusal.status, "code": refusal.code}, at=now)

    def _process(self, body: bytes, agency: str | None, now: dt.datetime) -> Outcome:
        if agency is None:
            raise Refused(401, "login", "no verified agency certificate: connect with mutual TLS using a "
                          "certificate issued by the deployment CA")
        if parse_agency_uri(agency) is None:
            raise Refused(403, "forbidden", f"the client certificate names no agency ({agency!r})")
        bundle = _parse(body)
        header = message_header(bundle)
        if header is None:
            raise Refused(400, "structure", "the first entry of a message Bundle must be its MessageHeader",
                          "Bundle.entry[0].resource")
        mid = message_id(bundle)
        if mid is None:
            raise Refused(400, "required", "the message has no id (Bundle.identifier.value)", "Bundle.identifier")
        if not isinstance(header.get("id"), str):
            raise Refused(400, "required", "MessageHeader.id is required: the response refers to it",
                          "MessageHeader.id")
        _check_sender(bundle, header, agency)
        rule = access.check_message_kind(header, agency)
        payload = _payload(bundle)
        digest = hashlib.sha256(payload).hexdigest()
        try:
            sent_at, feedback = self._check(bundle, payload, agency, now)
        except Refused:
            existing = self.store.find_accepted(mid)
            if existing is not None:  # accepted before: a replay, whatever the checks now say
                return _replay(existing, agency, digest)
            raise

        signer = self.signer()
        try:
            signed = countersign_message(bundle, signer, now=now, payload=payload)
        except UntrustedMessage as exc:  # pragma: no cover - _payload already canonicalised it
            raise Refused(400, "invalid", str(exc)) from None
        response = sign_message(_response_bundle(header, agency, signer.agency, now, feedback), signer, now=now)
        record = AcceptedMessage(
            message_id=mid, sender_agency=agency, received_at=now, message_timestamp=sent_at,
            payload_sha256=digest, raw_message=body.decode("utf-8"), signed_message=_dumps(signed),
            response_status=200, response_body=_dumps(response),
            completeness=completeness(feedback) if feedback is not None else None)
        steps = self.steps()

        def accept(unit: UnitOfWork) -> None:
            unit.messages.add(record)
            access.check_destination(unit.session, bundle, header, rule, agency, signer.agency)
            for step in steps:
                step(unit, record, signed)
            _audit_accepted(unit.session, record, rule.kind, feedback, now)

        try:
            self.store.together(accept)  # committed before the sender is answered
        except AlreadyAccepted as exc:  # a concurrent request with the same id won
            return _replay(exc.existing, agency, digest)
        return Outcome(record.response_status, record.response_body)

    def _check(self, bundle: dict, payload: bytes, agency: str, now: dt.datetime) -> tuple[dt.datetime, dict | None]:
        """Steps 4-6: return when the sender sent it and the standard's feedback, or raise :class:`Refused`."""
        sent_at = _check_timestamp(bundle, now, self.replay_window)
        if "signature" in bundle:
            _check_sender_signature(bundle["signature"], payload, self.trust(), agency, now)
        feedback = None
        if self.validator is not None:
            feedback = self.validator(bundle, now)
            if any(i.get("severity") in ("error", "fatal") for i in feedback.get("issue", [])):
                # MUST items missing: refused with every reason, so the sender can fix them all at once.
                raise Refused(422, "business-rule", "the message does not meet the national referral standard",
                              operation_outcome=feedback)
        return sent_at, feedback


def _audit_accepted(session, record: AcceptedMessage, kind: str, feedback: dict | None, now: dt.datetime) -> None:
    """The audit records of an accepted message, in its transaction: the standard's verdict, then the
    submission (a decision, when it is a referral's outcome)."""
    message = [("message", record.message_id)]
    warnings = sum(1 for issue in (feedback or {}).get("issue", ()) if issue.get("severity") == "warning")
    record_audit(session, action="E", subtype="validation", agent="gateway", entities=message,
                 detail={"errors": 0, "warnings": warnings}, at=now)
    record_audit(session, action="C", subtype="decision" if kind == EVENT_OUTCOME else "submission",
                 agent=record.sender_agency, entities=message, detail={"kind": kind}, at=now)


def _dumps(value: dict) -> str:
    """JSON text of a Bundle the gateway made (orjson: several times faster than json for ~10 KB)."""
    return orjson.dumps(value).decode("utf-8")


def _parse(body: bytes) -> dict:
    try:
        bundle = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "invalid", "the body is not UTF-8 (FHIR JSON must be UTF-8)") from None
    except ValueError as exc:
        raise Refused(400, "invalid", f"the body is not JSON: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Refused(400, "structure", "the body is not a FHIR Bundle (resourceType must be 'Bundle')",
                      "Bundle.resourceType")
    if bundle.get("type") != "message":
        raise Refused(400, "structure", f"Bundle.type is {bundle.get('type')!r}; $process-message takes 'message'",
                      "Bundle.type")
    return bundle


def _payload(bundle: dict) -> bytes:
    try:
        return signed_payload(bundle)
    except UntrustedMessage as exc:
        raise Refused(400, "invalid", str(exc)) from None


def _check_sender(bundle: dict, header: dict, agency: str) -> None:
    endpoint = source_endpoint(header)
    if endpoint is None:
        raise Refused(400, "required", "MessageHeader.source.endpoint must be the sending agency "
                      f"({agency})", "MessageHeader.source.endpoint")
    if endpoint != agency:
        raise Refused(403, "forbidden", f"MessageHeader.source.endpoint names {endpoint}, but the client "
                      f"certificate is {agency}'s: an agency may only send its own messages",
                      "MessageHeader.source.endpoint")
    sender = header.get("sender")
    if not isinstance(sender, dict):
        raise Refused(400, "required", "MessageHeader.sender must reference the sending Organization",
                      "MessageHeader.sender")
    organisation = sender if "identifier" in sender else None
    if isinstance(sender.get("reference"), str):
        organisation = resolve_reference(bundle, sender["reference"])
        if organisation is None:
            raise Refused(400, "not-found", f"MessageHeader.sender reference {sender['reference']!r} is not "
                          "in the Bundle", "MessageHeader.sender")
    if organisation is None or not identifies_agency(organisation, agency):
        raise Refused(403, "forbidden", f"MessageHeader.sender must identify {agency}, the agency of the client "
                      "certificate, and no other agency (one school URN, police force code, DfE LA number or "
                      "gateway id): an agency may only send its own messages", "MessageHeader.sender")


def _replay(existing: AcceptedMessage, agency: str, digest: str) -> Outcome:
    if existing.sender_agency != agency:
        raise Refused(409, "duplicate", f"message id {existing.message_id} was already used by another sender",
                      "Bundle.identifier")
    if existing.payload_sha256 != digest:
        raise Refused(409, "duplicate", f"message id {existing.message_id} was already accepted with different "
                      "content; give a changed message a new id", "Bundle.identifier")
    return Outcome(existing.response_status, existing.response_body)


def _check_timestamp(bundle: dict, now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    sent_at = parse_instant(bundle.get("timestamp"))
    if sent_at is None:
        raise Refused(400, "required", "Bundle.timestamp (when the message was sent, an instant with a time "
                      f"zone) is missing or not an instant: {bundle.get('timestamp')!r}", "Bundle.timestamp")
    drift = (now - sent_at).total_seconds()
    if abs(drift) > window.total_seconds():
        where = "before" if drift > 0 else "after"
        raise Refused(422, "invalid", f"Bundle.timestamp {bundle['timestamp']} is {abs(drift):.0f} s {where} the "
                      f"gateway's time {format_instant(now)}; messages must be sent within "
                      f"{window.total_seconds():.0f} s. Bundle.timestamp is when the message is sent, not when "
                      "the events happened: resend with a new id and the current time", "Bundle.timestamp")
    return sent_at


def _check_sender_signature(signature: object, payload: bytes, trust: TrustAnchor, agency: str,
                            now: dt.datetime) -> None:
    if not isinstance(signature, dict):
        raise Refused(400, "structure", "Bundle.signature is not a Signature", "Bundle.signature")
    if sender_signature(signature) is not None:
        raise Refused(400, "structure", "Bundle.signature already carries a nested sender signature; send the "
                      "message as the sender signed it", "Bundle.signature")
    try:
        verified = verify_signature(signature, payload, trust, now=now, role="sender signature")
    except UntrustedMessage as exc:
        raise Refused(422, "security", f"{exc} ({exc.reason})", "Bundle.signature") from None
    if verified.agency != agency:
        raise Refused(403, "forbidden", f"the Bundle is signed by {verified.agency}, but the client "
                      f"certificate is {agency}'s", "Bundle.signature")


def _response_bundle(header: dict, agency: str, gateway_agency: str, now: dt.datetime,
                     feedback: dict | None = None) -> dict:
    """The answer to an accepted message: ``ok``, with the standard's feedback (warnings) as its details."""
    event = header.get("eventCoding") if isinstance(header.get("eventCoding"), dict) else None
    return response_message(answers=header["id"], code="ok", source=gateway_agency, destination=agency, now=now,
                            details=feedback, event=event)
