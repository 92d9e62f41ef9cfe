"""Mailbox and message status endpoints, all under mutual TLS; and the outbox wired into the intake.

Registering the blueprint also registers the outbox accept step
(:func:`gateway.delivery.outbox.routing_step`), so every message the app
accepts is routed and its deliveries stored in the accepting transaction.

The calling agency comes only from the verified client certificate
(:data:`~gateway.transport.middleware.AGENCY_KEY` in the environ); an
agency sees only its own mailbox and the status of messages it sent.
Someone else's delivery or message answers 404, as one that does not
exist: ids are not confirmed to outsiders.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

from flask import Blueprint, Flask, Response, current_app, request

from gateway.config import Settings
from gateway.delivery.outbox import routing_step
from gateway.delivery.models import DEAD_LETTERED, PENDING
from gateway.delivery.services import SqlOutbox, acknowledge
from gateway.model.systems import extension_url, parse_agency_uri
from gateway.signing.messages import format_instant
from gateway.store import SqlMessageStore, open_store
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, intake_for, register_accept_step
from gateway.web import FHIR_JSON, fhir_response, operation_outcome

blueprint = Blueprint("delivery", __name__)

STORE_EXTENSION = "gateway.delivery.store"
#: On a mailbox entry: when the agency must have read the message by (e.g. Operation Encompass).
EXT_DELIVERY_DUE = extension_url("delivery-due")
MAILBOX_PAGE = 100
MAILBOX_MAX_PAGE = 1000
_STORE_LOCK = threading.Lock()


@blueprint.record_once
def _install_outbox(state) -> None:
    """Route and enqueue every message the app accepts (the outbox accept step), signing with the intake's key."""
    app = state.app
    settings: Settings = app.config["GATEWAY_SETTINGS"]
    register_accept_step(app, routing_step(settings, lambda: intake_for(app).signer()))


def store_for(app: Flask) -> SqlMessageStore:
    """Return the app's store for the delivery endpoints, opened on first use from its settings."""
    store = app.extensions.get(STORE_EXTENSION)
    if store is None:
        with _STORE_LOCK:
            store = app.extensions.get(STORE_EXTENSION)
            if store is None:
                settings: Settings = app.config["GATEWAY_SETTINGS"]
                store = app.extensions[STORE_EXTENSION] = open_store(settings.database_url)
    return store


def close_store(app: Flask) -> None:
    """Release the delivery endpoints' database connections (tests, orderly shutdown)."""
    store = app.extensions.pop(STORE_EXTENSION, None)
    if store is not None:
        store.close()


def _now() -> dt.datetime:
    clock = current_app.config.get(CLOCK_KEY)
    return clock() if clock is not None else dt.datetime.now(dt.timezone.utc)


def _caller() -> str | Response:
    agency = request.environ.get(AGENCY_KEY)
    if agency is None:
        return fhir_response(operation_outcome("error", "login", "no verified agency certificate: connect with "
                                               "mutual TLS using a certificate issued by the deployment CA"), 401)
    if parse_agency_uri(agency) is None:
        return fhir_response(operation_outcome("error", "forbidden",
                                               f"the client certificate names no agency ({agency!r})"), 403)
    return agency


def _not_found(what: str) -> Response:
    return fhir_response(operation_outcome("error", "not-found", f"{what} is not found"), 404)


def _instant(value: dt.datetime | None) -> str | None:
    return format_instant(value) if value is not None else None


@blueprint.get("/mailbox")
def mailbox() -> Response:
    """The calling agency's unacknowledged messages, as a FHIR searchset Bundle (earliest due first)."""
    agency = _caller()
    if isinstance(agency, Response):
        return agency
    raw_count = request.args.get("_count", str(MAILBOX_PAGE))
    if not raw_count.isdigit() or not 1 <= int(raw_count) <= MAILBOX_MAX_PAGE:
        return fhir_response(operation_outcome("error", "invalid", f"_count={raw_count!r}: give a whole number "
                                               f"from 1 to {MAILBOX_MAX_PAGE}", "_count"), 400)
    with store_for(current_app).transaction() as unit:
        total, rows = SqlOutbox(unit.session).mailbox(agency, limit=int(raw_count))
        entries = [_mailbox_entry(row) for row in rows]
    body = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": total,
            "timestamp": format_instant(_now()),
            "link": [{"relation": "self", "url": request.url}], "entry": entries}
    return fhir_response(body)


def _mailbox_entry(row) -> dict:
    entry = {"fullUrl": f"{request.host_url}mailbox/{row.id}", "resource": json.loads(row.payload),
             "search": {"mode": "match"}}
    if row.due_at is not None:
        entry["extension"] = [{"url": EXT_DELIVERY_DUE, "valueInstant": _instant(row.due_at)}]
    return entry


@blueprint.get("/mailbox/<delivery_id>")
def mailbox_item(delivery_id: str) -> Response:
    """One message of the calling agency's mailbox: the signed Bundle exactly as stored."""
    agency = _caller()
    if isinstance(agency, Response):
        return agency
    with store_for(current_app).transaction() as unit:
        row = SqlOutbox(unit.session).mailbox_item(agency, delivery_id)
        if row is None:
            return _not_found(f"mailbox message {delivery_id}")
        if row.state == DEAD_LETTERED:
            return fhir_response(operation_outcome(
                "error", "not-found", f"mailbox message {delivery_id} was not fetched and acknowledged within its "
                "maximum age; it was dead-lettered and its sender told"), 410)
        payload = row.payload
    return Response(payload, status=200, mimetype=FHIR_JSON)


@blueprint.post("/mailbox/<delivery_id>/$ack")
def mailbox_ack(delivery_id: str) -> Response:
    """Acknowledge a mailbox message: it leaves the mailbox. Idempotent: a second ack answers the same."""
    agency = _caller()
    if isinstance(agency, Response):
        return agency
    now = _now()
    with store_for(current_app).transaction() as unit:
        row = SqlOutbox(unit.session).mailbox_item(agency, delivery_id, lock=True)
        if row is None:
            return _not_found(f"mailbox message {delivery_id}")
        if row.state == DEAD_LETTERED:
            return fhir_response(operation_outcome(
                "error", "conflict", f"mailbox message {delivery_id} was dead-lettered at "
                f"{_instant(row.dead_lettered_at)} (not acknowledged within its maximum age) and its sender told "
                "it was not received; contact the sender"), 409)
        if row.state == PENDING:
            acknowledge(row, now)
        acknowledged_at = row.acknowledged_at
        message = row.payload_message_id
    return fhir_response(operation_outcome("information", "informational",
                                           f"message {message} acknowledged at {_instant(acknowledged_at)}"))


@blueprint.get("/messages/<message_id>/status")
def message_status(message_id: str) -> Response:
    """Where a message the calling agency sent has got to: each destination's state and times."""
    agency = _caller()
    if isinstance(agency, Response):
        return agency
    now = _now()
    with store_for(current_app).transaction() as unit:
        outbox = SqlOutbox(unit.session)
        accepted = outbox.accepted(message_id)
        if accepted is None or accepted.sender_agency != agency:
            return _not_found(f"message {message_id} sent by {agency}")
        received_at = accepted.received_at
        deliveries = outbox.deliveries_of(message_id)
        unroutable = outbox.unroutable_of(message_id)
    body = {
        "messageId": message_id,
        "receivedAt": _instant(received_at),
        "deliveries": [{
            "id": d.id, "destination": d.destination, "kind": d.kind, "mode": d.mode, "rule": d.rule,
            "messageId": d.payload_message_id, "state": d.state, "attempts": d.attempts,
            "createdAt": _instant(d.created_at), "updatedAt": _instant(d.updated_at),
            "dueAt": _instant(d.due_at), "overdue": d.overdue(now),
            "nextAttemptAt": _instant(d.next_attempt_at) if d.state == PENDING and d.mode == "push" else None,
            "acknowledgedAt": _instant(d.acknowledged_at), "deadLetteredAt": _instant(d.dead_lettered_at),
            "expiresAt": _instant(d.expires_at), "lastError": d.last_error,
        } for d in deliveries],
        "unroutable": [{"id": u.id, "reason": u.reason, "rule": u.rule, "createdAt": _instant(u.created_at),
                        "resolved": u.resolved, "resolution": u.resolution} for u in unroutable],
    }
    return current_app.json.response(body)
