"""The transactional outbox: the accept step that routes and enqueues, and dead-lettering.

:func:`outbox_step` makes an :data:`~gateway.transport.intake.AcceptStep`.
The intake runs it inside the transaction that records the accepted
message, so the message, every delivery planned from it and every
unroutable entry commit together, before the sender gets its answer; or
nothing commits and the sender gets an error and sends again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable

from gateway.delivery.interfaces import AgencyLookup, PlannedDelivery, Route, Unroutable
from gateway.delivery.models import DEAD_LETTERED, KIND_MESSAGE, KIND_NOTICE, MAILBOX, PUSH, DeliveryRow
from gateway.delivery.responses import response_message
from gateway.delivery.services import SqlOutbox
from gateway.signing.messages import message_header, message_id
from gateway.signing.signatures import Signer, sign_message
from gateway.store.interfaces import AcceptedMessage, UnitOfWork

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = dt.timedelta(days=5)
NOTICE_RULE = "dead-letter-notice"


def split_result(result: object) -> tuple[list, list]:
    """Return ``(planned, unroutable)`` from what a routing function returned.

    Accepts an iterable mixing planned deliveries (anything with
    ``destination`` and ``bundle``) and unroutable parts (anything with
    ``reason``), or an object with ``deliveries``/``planned`` and
    ``unroutable`` attributes. Raises :class:`TypeError` for anything else.
    """
    if result is None:
        return [], []
    if hasattr(result, "unroutable") and not isinstance(result, (list, tuple)):
        planned = getattr(result, "deliveries", None)
        if planned is None:
            planned = getattr(result, "planned", ())
        unroutable = result.unroutable
        if isinstance(unroutable, str):
            unroutable = [Unroutable(unroutable)]
        elif unroutable is None:
            unroutable = []
        elif hasattr(unroutable, "reason"):
            unroutable = [unroutable]
        return list(planned), list(unroutable)
    if hasattr(result, "reason") and not hasattr(result, "destination"):
        return [], [result]
    if hasattr(result, "destination"):
        return [result], []
    planned, unroutable = [], []
    for item in result:  # type: ignore[union-attr]
        if hasattr(item, "destination") and hasattr(item, "bundle"):
            planned.append(item)
        elif hasattr(item, "reason"):
            unroutable.append(item)
        else:
            raise TypeError(f"routing returned {item!r}: neither a planned delivery nor an unroutable part")
    return planned, unroutable


def outbox_step(route: Route, directory: AgencyLookup, *, signer: Callable[[], Signer] | None = None,
                max_age: dt.timedelta = DEFAULT_MAX_AGE) -> Callable[[UnitOfWork, AcceptedMessage, dict], None]:
    """Return an accept step that routes each accepted message and enqueues all its deliveries.

    ``route(signed_bundle, now)`` returns planned deliveries and unroutable
    parts (see :func:`split_result`). Each planned destination is looked
    up in ``directory`` for its delivery mode (push endpoint or mailbox);
    a planned Bundle without a signature (one routing derived) is signed
    with ``signer()``. A destination the directory does not know, routing
    that plans nothing, or routing that fails, goes to the unroutable queue
    with an ERROR log record: the message is accepted and never dropped.
    The step raises only when the store does (the transaction then rolls
    back), or :class:`RuntimeError` when a derived Bundle needs signing and
    there is no ``signer``.
    """

    def enqueue_deliveries(unit: UnitOfWork, accepted: AcceptedMessage, bundle: dict) -> None:
        now = accepted.received_at
        outbox = SqlOutbox(unit.session)
        try:
            planned, unroutable = split_result(route(bundle, now))
        except Exception as exc:  # a routing bug must not lose the message: hold it for an operator
            log.exception("routing failed for message %s", accepted.message_id)
            planned, unroutable = [], [Unroutable(f"routing failed: {type(exc).__name__}: {exc}")]
        if not planned and not unroutable:
            unroutable = [Unroutable("no routing rule gives a destination for this message")]
        seen: set[tuple[str, str]] = set()
        for plan in planned:
            problem = _enqueue(outbox, plan, accepted, bundle, directory, signer, now, max_age, seen)
            if problem is not None:
                unroutable.append(Unroutable(problem, getattr(plan, "rule", None)))
        for part in unroutable:
            hold_unroutable(outbox, accepted.message_id, accepted.sender_agency, part.reason,
                            getattr(part, "rule", None), now)

    return enqueue_deliveries


def hold_unroutable(outbox: SqlOutbox, message_id: str, sender: str, reason: str, rule: str | None,
                    now: dt.datetime) -> str:
    """Add an unroutable entry and raise the alert (an ERROR log record); return the entry id."""
    entry_id = outbox.add_unroutable(message_id=message_id, sender_agency=sender, reason=reason, rule=rule, now=now)
    log.error("UNROUTABLE message %s from %s held for an operator (entry %s, rule %s): %s; "
              "see 'gateway operator unroutable'", message_id, sender, entry_id, rule or "-", reason)
    return entry_id


def _enqueue(outbox: SqlOutbox, plan: PlannedDelivery, accepted: AcceptedMessage, accepted_bundle: dict,
             directory: AgencyLookup, signer: Callable[[], Signer] | None, now: dt.datetime,
             max_age: dt.timedelta, seen: set) -> str | None:
    """Enqueue one planned delivery; return why it cannot be, or ``None`` when it was."""
    destination = plan.destination
    agency = directory.agency(destination)
    if agency is None:
        return f"destination {destination} (rule {plan.rule}) is not in the directory"
    bundle = plan.bundle if plan.bundle is not None else accepted_bundle
    if "signature" not in bundle:
        if signer is None:
            raise RuntimeError("routing derived an unsigned message, and the outbox step has no signer")
        bundle = sign_message(bundle, signer(), now=now)
    payload_id = message_id(bundle)
    header = message_header(bundle)
    if payload_id is None or header is None or not isinstance(header.get("id"), str):
        return f"rule {plan.rule} planned a message for {destination} without an id or MessageHeader.id"
    if (destination, payload_id) in seen or outbox.has_delivery(destination, payload_id):
        return None  # two rules planned the same message to the same agency: it gets it once
    seen.add((destination, payload_id))
    mode = PUSH if agency.delivery == PUSH and agency.endpoint else MAILBOX
    outbox.add_delivery(message_id=accepted.message_id, destination=destination, mode=mode,
                        endpoint=agency.endpoint if mode == PUSH else None, payload=bundle,
                        payload_message_id=payload_id, payload_header_id=header["id"], now=now,
                        expires_at=now + max_age, rule=plan.rule, due_at=getattr(plan, "due", None))
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
    log.error("DEAD-LETTERED delivery %s of message %s to %s after %d attempt(s): %s",
              row.id, row.payload_message_id, row.destination, row.attempts, reason)
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
    if outbox.has_delivery(sender, message_id(signed)):
        return None
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
