"""The transactional outbox: the accept step that routes and enqueues, and dead-lettering.

:func:`outbox_step` makes an :data:`~gateway.transport.intake.AcceptStep`.
The intake runs it inside the transaction that records the accepted
message, so the message, every delivery planned from it and every
unroutable entry commit together, before the sender gets its answer; or
nothing commits and the sender gets an error and sends again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable

from gateway.audit import record_audit
from gateway.config import Settings
from gateway.delivery.interfaces import AgencyLookup, DirectoryFactory, Route
from gateway.delivery.models import DEAD_LETTERED, KIND_BUILT, KIND_MESSAGE, KIND_NOTICE, MAILBOX, PUSH, DeliveryRow
from gateway.delivery.responses import response_message
from gateway.delivery.services import SqlOutbox
from gateway.signing.messages import message_header, message_id
from gateway.signing.signatures import Signer, sign_message
from gateway.store.interfaces import AcceptedMessage, UnitOfWork

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = dt.timedelta(days=5)
NOTICE_RULE = "dead-letter-notice"


@dataclasses.dataclass(frozen=True)
class _Unroutable:
    reason: str
    rule: str | None = None


def split_result(result: object) -> tuple[list, list]:
    """Return ``(planned, unroutable)`` from what a routing function returned.

    A planned delivery is anything with ``destination`` and ``message``
    (or ``bundle``); an unroutable part anything with ``reason`` and no
    ``destination``. ``result`` is one of them or an iterable of them; an
    empty list means routing decided to send the message to nobody.
    Raises :class:`TypeError` for anything else.
    """
    if _is_planned(result) or _is_unroutable(result):
        result = [result]
    if result is None or isinstance(result, (str, bytes, dict)):
        raise TypeError(f"routing returned {result!r}: not planned deliveries or an unroutable part")
    planned, unroutable = [], []
    for item in result:  # type: ignore[union-attr]
        if _is_planned(item):
            planned.append(item)
        elif _is_unroutable(item):
            unroutable.append(item)
        else:
            raise TypeError(f"routing returned {item!r}: neither a planned delivery nor an unroutable part")
    return planned, unroutable


def _is_planned(item: object) -> bool:
    return hasattr(item, "destination") and (hasattr(item, "message") or hasattr(item, "bundle"))


def _is_unroutable(item: object) -> bool:
    return hasattr(item, "reason") and not hasattr(item, "destination")


def outbox_step(route: Route, directory: DirectoryFactory, *, signer: Callable[[], Signer] | None = None,
                max_age: dt.timedelta = DEFAULT_MAX_AGE) -> Callable[[UnitOfWork, AcceptedMessage, dict], None]:
    """Return an accept step that routes each accepted message and enqueues all its deliveries.

    For each message the step binds the directory to the accepting
    transaction (``directory(unit.session)``) and calls ``route(signed_bundle,
    received_at, that_directory)`` (see :func:`split_result` for what it may
    return). Each planned destination is looked up for its delivery mode
    (push endpoint or mailbox); a planned Bundle without a signature (one
    routing built) is signed with ``signer()``. A destination the directory
    does not know, or routing that raises, goes to the unroutable queue with
    an ERROR log record: the message is accepted and never dropped. The
    step raises only when the store does (the transaction then rolls back),
    or :class:`RuntimeError` when a built Bundle needs signing and there is
    no ``signer``.
    """

    def enqueue_deliveries(unit: UnitOfWork, accepted: AcceptedMessage, bundle: dict) -> None:
        now = accepted.received_at
        outbox = SqlOutbox(unit.session)
        lookup = directory(unit.session)
        try:
            planned, unroutable = split_result(route(bundle, now, lookup))
        except Exception as exc:  # a routing bug must not lose the message: hold it for an operator
            log.exception("routing failed for message %s", accepted.message_id)
            planned, unroutable = [], [_Unroutable(f"routing failed: {type(exc).__name__}: {exc}")]
        if not planned and not unroutable:
            log.info("message %s from %s: routing sends it to no one", accepted.message_id, accepted.sender_agency)
        seen: set[tuple[str, str]] = set()
        for plan in planned:
            problem = _enqueue(outbox, plan, accepted, bundle, lookup, signer, now, max_age, seen)
            if problem is not None:
                unroutable.append(_Unroutable(problem, getattr(plan, "rule", None)))
        for part in unroutable:
            hold_unroutable(outbox, accepted.message_id, accepted.sender_agency, part.reason,
                            getattr(part, "rule", None), now)
        record_audit(unit.session, action="E", subtype="routing", agent="gateway",
                     outcome="failure" if unroutable else "success",
                     entities=[("message", accepted.message_id)] + [("agency", d) for d in sorted({d for d, _ in seen})],
                     detail={"rules": sorted({str(getattr(p, "rule", None)) for p in planned}),
                             "unroutable": len(unroutable)}, at=now)

    return enqueue_deliveries


def routing_step(settings: Settings, signer: Callable[[], Signer]) -> Callable[[UnitOfWork, AcceptedMessage, dict],
                                                                                  None]:
    """Return :func:`outbox_step` wired to :func:`gateway.routing.route_message` and its SQL directory.

    The gateway's own agency (for routing's built messages) is the
    signer's; the time zone and maximum age come from ``settings``.
    """
    from gateway.routing import Directory, route_message

    def route(bundle: dict, now: dt.datetime, lookup) -> object:
        return route_message(bundle, lookup, now=now, gateway_agency=signer().agency, timezone=settings.timezone)

    return outbox_step(route, Directory, signer=signer,
                       max_age=dt.timedelta(seconds=settings.delivery_max_age_seconds))


def enqueue_built(unit: UnitOfWork, plan: object, *, about: str, sender: str, now: dt.datetime,
                  signer: Callable[[], Signer], max_age: dt.timedelta = DEFAULT_MAX_AGE) -> str | None:
    """Enqueue one message the gateway built (an alert, a reminder) in the caller's transaction.

    ``plan`` is a planned delivery (``destination``, ``message``, ``rule``,
    ``due``), as routing returns; the message is signed with ``signer()``.
    ``about`` is the accepted message it is about (the delivery belongs to
    it) and ``sender`` who is named if it cannot be delivered. Returns why it
    cannot be delivered (the destination is not in the directory: it is then
    held as unroutable, never dropped), or ``None``.
    """
    from gateway.routing import Directory

    outbox = SqlOutbox(unit.session)
    accepted = _About(about)
    problem = _enqueue(outbox, plan, accepted, {}, Directory(unit.session), signer, now, max_age, set(),
                       kind=KIND_BUILT)
    if problem is not None:
        hold_unroutable(outbox, about, sender, problem, getattr(plan, "rule", None), now)
    return problem


@dataclasses.dataclass(frozen=True)
class _About:
    """The accepted message a built message is about, as :func:`_enqueue` reads it."""

    message_id: str
    signed_message: None = None


def hold_unroutable(outbox: SqlOutbox, message_id: str, sender: str, reason: str, rule: str | None,
                    now: dt.datetime) -> str:
    """Add an unroutable entry and raise the alert (an ERROR log record); return the entry id."""
    entry_id = outbox.add_unroutable(message_id=message_id, sender_agency=sender, reason=reason, rule=rule, now=now)
    log.error("UNROUTABLE message %s from %s held for an operator (entry %s, rule %s): %s; "
              "see 'gateway operator unroutable'", message_id, sender, entry_id, rule or "-", reason)
    return entry_id


def _enqueue(outbox: SqlOutbox, plan: object, accepted: AcceptedMessage, accepted_bundle: dict,
             directory: AgencyLookup, signer: Callable[[], Signer] | None, now: dt.datetime,
             max_age: dt.timedelta, seen: set, *, kind: str = KIND_MESSAGE) -> str | None:
    """Enqueue one planned delivery; return why it cannot be, or ``None`` when it was."""
    destination = plan.destination
    agency = directory.agency(destination)
    if agency is None:
        return f"destination {destination} (rule {plan.rule}) is not in the directory"
    bundle = getattr(plan, "message", None) or getattr(plan, "bundle", None) or accepted_bundle
    if "signature" not in bundle:
        if signer is None:
            raise RuntimeError("routing derived an unsigned message, and the outbox step has no signer")
        bundle = sign_message(bundle, signer(), now=now)
    payload_id = message_id(bundle)
    header = message_header(bundle)
    if payload_id is None or header is None or not isinstance(header.get("id"), str):
        return f"rule {plan.rule} planned a message for {destination} without an id or MessageHeader.id"
    if (destination, payload_id) in seen:
        return None  # two rules planned the same message to the same agency: it gets it once
    seen.add((destination, payload_id))
    mode = PUSH if agency.delivery == PUSH and agency.endpoint else MAILBOX
    # add_delivery adds nothing when the agency already has this message id from an earlier message.
    # The accepted message itself is delivered as recorded (its JSON is already made).
    payload = accepted.signed_message if bundle is accepted_bundle else bundle
    outbox.add_delivery(message_id=accepted.message_id, destination=destination, mode=mode,
                        endpoint=agency.endpoint if mode == PUSH else None, payload=payload,
                        payload_message_id=payload_id, payload_header_id=header["id"], now=now,
                        expires_at=now + max_age, rule=plan.rule, due_at=getattr(plan, "due", None), kind=kind)
    return None


def dead_letter(outbox: SqlOutbox, row: DeliveryRow, reason: str, *, now: dt.datetime,
                signer: Callable[[], Signer] | None, directory: AgencyLookup | None, max_age: dt.timedelta,
                gateway_agency: str | None) -> str | None:
    """Dead-letter ``row`` (locked by the caller) and tell the sender; return the notice's delivery id.

    The alert is an ERROR log record; the row stays for operators. The
    sender of the original message gets a signed ``fatal-error`` response
    message naming the agency that did not receive it, enqueued as a
    delivery of its own (push when the directory gives the sender an
    endpoint, else its mailbox). A notice that itself dead-letters tells
    no one (no loops); the same holds when there is no ``signer``.
    """
    row.state, row.dead_lettered_at, row.updated_at = DEAD_LETTERED, now, now
    row.last_error = reason
    row.claim_token = row.lease_until = None
    outbox.state_changed(row)
    log.error("DEAD-LETTERED delivery %s of message %s to %s after %d attempt(s): %s",
              row.id, row.payload_message_id, row.destination, row.attempts, reason)
    record_audit(outbox.session, action="E", subtype="delivery-attempt", outcome="serious-failure", agent="gateway",
                 entities=[("delivery", row.id), ("message", row.payload_message_id), ("agency", row.destination)],
                 detail={"result": "dead-lettered", "attempts": row.attempts}, at=now)
    if row.kind != KIND_MESSAGE or signer is None:
        return None
    accepted = outbox.accepted(row.message_id)
    if accepted is None:  # pragma: no cover - the foreign key keeps it
        return None
    original = json.loads(accepted.signed_message)
    header = message_header(original) or {}
    sender = accepted.sender_agency
    gateway = gateway_agency or signer().agency
    notice_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dead-letter:{row.id}"))
    text = (f"Message {row.payload_message_id} (from your message {accepted.message_id}) was NOT delivered to "
            f"{_name(directory, row.destination)} ({row.destination}): {reason}. Contact that agency another way.")
    notice = response_message(answers=str(header.get("id", "")), code="fatal-error", source=gateway,
                              destination=sender, now=now, text=text, message_uuid=notice_uuid,
                              event=header.get("eventCoding"))
    signed = sign_message(notice, signer(), now=now)
    agency = directory.agency(sender) if directory is not None else None
    mode = PUSH if agency is not None and agency.delivery == PUSH and agency.endpoint else MAILBOX
    return outbox.add_delivery(message_id=row.message_id, destination=sender, mode=mode,
                               endpoint=agency.endpoint if mode == PUSH else None, payload=signed,
                               payload_message_id=message_id(signed),
                               payload_header_id=message_header(signed)["id"], now=now, expires_at=now + max_age,
                               rule=NOTICE_RULE, kind=KIND_NOTICE)


def _name(directory: AgencyLookup | None, uri: str) -> str:
    agency = directory.agency(uri) if directory is not None else None
    return agency.name if agency is not None else uri
