"""School and police pages: notifications to acknowledge, what each sent and what became of it."""

from __future__ import annotations

import re

from gateway.delivery.models import ACKNOWLEDGED, DeliveryRow
from tests.shared_console import BCP, DORSET, HAMPSHIRE, SCHOOL, text_of


def test_school_acknowledges_an_operation_encompass_notification(console):
    console.family_a()
    page = console.get("/school", SCHOOL)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    text = text_of(page)
    assert "Operation Encompass notifications" in text and text.count("Acknowledge the notification about") == 2
    actions = re.findall(r'action="(/school/notifications/[^"]+/acknowledge)"', html)
    assert len(actions) == 2
    # Without the form's token: refused, nothing acknowledged.
    assert console.post(actions[0], SCHOOL, {}, token=False).status_code == 400
    assert not console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.state == ACKNOWLEDGED)
    # Another school cannot acknowledge it (not in its mailbox).
    assert console.post(actions[0], "urn:x-safeguarding:agency:school:999102", {}).status_code == 404
    done = console.post(actions[0], SCHOOL, {})
    assert done.status_code == 303
    delivery_id = actions[0].split("/")[3]
    (row,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.id == delivery_id)
    assert row.state == ACKNOWLEDGED and row.acknowledged_at == console.clock["now"]
    after = text_of(console.get(done.headers["Location"], SCHOOL))
    assert "The notification is acknowledged." in after and after.count("Acknowledge the notification about") == 1
    # The notification says when the school acknowledged it, in those words.
    assert re.search(r"Acknowledged \w{3} \d+ \w{3} \d{4}, \d\d:\d\d", after), after
    assert console.post(actions[0], SCHOOL, {}).status_code == 303  # again: the same answer
    # What the police told the school, in words: when it happened and by when to read it.
    assert re.search(r"domestic abuse incident on \w{3} \d+ \w{3} \d{4} at \d\d:\d\d involving", text), text
    assert re.search(r"Please read this by 08:30 on \w{3} \d+ \w{3} \d{4}", text) and "T08:30" not in text


def test_school_sees_its_referral_delivered_decided_and_its_quality(console):
    console.family_a()
    before = text_of(console.get("/school", SCHOOL))
    assert "Safeguarding referral about Leo Parker" in before and "No decision yet" in before
    assert "Hampshire" in before and "% complete" in before and "Add the child's NHS number" in before
    (referral,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    console.post(f"/la/messages/{referral.message_id}/decision", HAMPSHIRE,
                 {"decision": "signposted-early-help", "reason": "Family support worker to contact mother."})
    after = text_of(console.get("/school", SCHOOL))
    assert "Signposted to early help" in after and "Family support worker to contact mother." in after


def test_school_and_police_pages_are_theirs_only(console):
    for path, allowed in (("/school", SCHOOL), ("/police", DORSET)):
        for agency in (SCHOOL, DORSET, HAMPSHIRE, BCP):
            assert console.get(path, agency).status_code == (200 if agency == allowed else 403), (path, agency)


def test_police_see_their_notices_and_late_submissions_with_a_chart(console):
    console.family_a()
    page = console.get("/police", DORSET)
    html = page.get_data(as_text=True)
    text = text_of(page)
    assert "2 messages sent" in text and "2 sent more than 24 hours after the incident" in text
    svg = html[html.index('<svg class="app-chart"'):html.index("</svg>")]
    assert svg.count("app-chart__bar--late") == 1 and "2 late of 2" in svg and ">Sep 2018<" in svg
    assert "September 2018 2 2" in text  # the same figures as a table
    assert text.count("21 days late") == 2 and "Hampshire" in text
    # The notice type as the code system publishes it, not the PPN schema's code.
    assert text.count("Safeguarding referral: domestic abuse") == 2 and "DomesticAbuse" not in text
    reads = console.reads(DORSET)
    assert [r.what for r in reads] == ["console-police"]


def test_every_agency_lands_on_its_own_first_page(console):
    for agency, first in ((HAMPSHIRE, "/la/inbox"), (SCHOOL, "/school"), (DORSET, "/police"),
                          ("urn:x-safeguarding:agency:gateway:national", "/operator")):
        answer = console.get("/", agency)
        assert answer.status_code == 303 and answer.headers["Location"].endswith(first)
    assert console.get("/", None).status_code == 401


def test_late_submissions_are_counted_in_the_month_of_the_gateways_timezone(console):
    """A notice received at 00:30 on 1 October in London (23:30 UTC on 30 September) is October's, as the
    page writes its time; the other stays in September."""
    import datetime as dt

    from sqlalchemy import update

    from gateway.linkage.models import MessageEventRow

    console.family_a()
    event = MessageEventRow.__table__
    first, _ = console.rows(event, event.c.sender_agency == DORSET)
    with console.store.engine.begin() as connection:
        connection.execute(update(event).where(event.c.message_id == first.message_id).values(
            received_at=dt.datetime(2018, 9, 30, 23, 30, tzinfo=dt.timezone.utc)))
    text = text_of(console.get("/police", DORSET))
    assert "September 2018 1 1" in text and "October 2018 1 1" in text, text
