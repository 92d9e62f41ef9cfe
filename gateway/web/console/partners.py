"""School and police pages: notifications to acknowledge, what they sent and what became of it."""

from __future__ import annotations

from flask import abort, redirect, request, url_for

from gateway.delivery.models import DEAD_LETTERED, PENDING
from gateway.delivery.services import SqlOutbox, acknowledge
from gateway.linkage.chronology import figures
from gateway.model import systems as S
from gateway.web.console import pictures, queries
from gateway.web.console.common import (
    agency_names,
    blueprint,
    check_csrf,
    for_kind,
    local_zone,
    now,
    reading,
    record,
    render,
    store,
)


@blueprint.get("/school")
@for_kind("school", "schools")
def school_home(agency: str):
    """Operation Encompass notifications to acknowledge; the school's referrals, their delivery and outcomes,
    and the standard's feedback on what it sent."""
    at = now()
    record(agency, "console-school", None, at)
    with reading() as connection:
        notices = queries.notifications(connection, agency)
        sent = queries.sent_messages(connection, agency, kinds=(S.EVENT_REFERRAL, S.EVENT_CONCERN))
        name = agency_names(connection, [d["destination"] for m in sent for d in m["deliveries"]]
                            + [o["agency"] for m in sent for o in m["outcomes"]])
        for message in sent:
            for delivery in message["deliveries"]:
                delivery["name"] = name(delivery["destination"])
            for outcome in message["outcomes"]:
                outcome["name"] = name(outcome["agency"])
    return render("console/school.html", agency, "Notifications and referrals", notifications=notices, sent=sent,
                  acknowledged=request.args.get("acknowledged") == "1", now=at)


@blueprint.post("/school/notifications/<delivery_id>/acknowledge")
@for_kind("school", "schools")
def acknowledge_notification(agency: str, delivery_id: str):
    """Acknowledge an Operation Encompass notification (the mailbox's $ack, from the page)."""
    check_csrf(agency)
    at = now()
    with store().transaction() as unit:
        row = SqlOutbox(unit.session).mailbox_item(agency, delivery_id, lock=True)
        if row is None:
            abort(404, "No such notification in your mailbox.")
        if row.state == DEAD_LETTERED:
            abort(409, "This notification was not acknowledged within its maximum age and the sender was told. "
                       "Contact the police force that sent it.")
        if row.state == PENDING:
            acknowledge(row, at)
    return redirect(url_for("console.school_home", acknowledged=1), code=303)


@blueprint.get("/police")
@for_kind("police", "police forces")
def police_home(agency: str):
    """The force's notices and where they got to; its late-submission figures with a chart."""
    at = now()
    record(agency, "console-police", None, at)
    with reading() as connection:
        sent = queries.sent_messages(connection, agency)
        name = agency_names(connection, (d["destination"] for m in sent for d in m["deliveries"]))
        for message in sent:
            for delivery in message["deliveries"]:
                delivery["name"] = name(delivery["destination"])
        months = queries.late_by_month(connection, agency, zone=local_zone())
        own = figures(connection, now=at, agency=agency)[0]
    return render("console/police.html", agency, "Notices and figures", sent=sent, months=months,
                  chart=pictures.bar_chart(months), figures=own)
