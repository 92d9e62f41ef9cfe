"""Operators' pages (the gateway's own agency certificate): delivery health, unroutable messages, dead letters."""

from __future__ import annotations

import datetime as dt

from flask import abort, redirect, request, url_for

from gateway.delivery.services import SqlOutbox
from gateway.web.console import queries
from gateway.web.console.common import blueprint, check_csrf, for_kind, now, reading, record, render, settings, store

OPERATORS = "the gateway's operators"


@blueprint.get("/operator")
@for_kind("gateway", OPERATORS)
def operator_home(agency: str):
    """Deliveries per state, open ones per destination, unroutable messages and dead letters."""
    at = now()
    record(agency, "console-operator", None, at)
    with reading() as connection:
        health = queries.delivery_health(connection, now=at)
        held = queries.unroutable(connection)
        dead = queries.dead_letters(connection)
    return render("console/operator.html", agency, "Delivery health", health=health, unroutable=held,
                  dead_letters=dead, redelivered=request.args.get("redelivered"))


@blueprint.post("/operator/deliveries/<delivery_id>/redeliver")
@for_kind("gateway", OPERATORS)
def redeliver(agency: str, delivery_id: str):
    """Put a dead letter back to pending, due now, with a fresh maximum age (one action)."""
    check_csrf(agency)
    at = now()
    try:
        with store().transaction() as unit:
            delivery = SqlOutbox(unit.session).requeue(
                delivery_id, now=at, max_age=dt.timedelta(seconds=settings().delivery_max_age_seconds))
    except ValueError as exc:
        abort(409, str(exc))
    if delivery is None:
        abort(404, f"No delivery {delivery_id}.")
    return redirect(url_for("console.operator_home", redelivered=delivery_id), code=303)
