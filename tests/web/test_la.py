"""Children's services pages, rendered by the real app over Family A's messages accepted by its intake."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.delivery.models import DeliveryRow
from gateway.linkage.models import DeadlineRow, EscalationRow, MessageEventRow, PossibleMatchRow
from gateway.model import systems as S
from gateway.store.models import MessagePersonRow
from gateway.web.console import csrf
from tests.shared_console import BCP, DORSET, HAMPSHIRE, REFERRAL_DAY, SCHOOL, school_rows, text_of

HOSTILE = '"Quoted" <script>alert(1)</script> "><img src=x onerror=alert(2)> & </textarea>'


def _links(html: str, pattern: str) -> list[str]:
    return [unquote(m) for m in re.findall(rf'href="({pattern})"', html)]


def _school_referral(console) -> str:
    (row,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    return row.message_id


def test_inbox_shows_due_time_overdue_risk_completeness_and_flags(console):
    console.family_a()
    page = console.get("/la/inbox", HAMPSHIRE)
    assert page.status_code == 200
    text = text_of(page)
    assert "6 messages" in text
    # Earliest due first: Dorset's two notices, never decided, are overdue on the referral day.
    first = text.index("Messages, page 1 of 1")
    assert text.index("Overdue", first) < text.index("Riverside Infant School", first)
    assert text.count("Sent 21 days late") == 2
    # Their decision was due by the end of the working day after the Sunday they came: the midnight that ends
    # Monday, written as the end of Monday, not as Tuesday 00:00.
    assert text.count("end of Mon 1 Oct 2018 Overdue") == 2 and "2 Oct 2018, 00:00" not in text, text
    assert "Safeguarding alert" in text and "The gateway, about a message from Riverside Infant School" in text
    assert re.search(r"\d+%", text)
    # The rows link to what was delivered, and only that.
    messages = _links(page.get_data(as_text=True), "/la/messages/[^\"]+")
    assert _school_referral(console) in {m.rsplit("/", 1)[1] for m in messages}


def test_a_deadline_at_midnight_is_the_end_of_the_day_before(console):
    """In the gateway's timezone (London): midnight GMT in winter, 23:00 UTC in summer; across the clocks'
    change; any other time as any time is written."""
    from gateway.web.console.common import format_due

    utc = dt.timezone.utc
    with console.app.test_request_context():
        assert format_due(dt.datetime(2019, 1, 8, 0, 0, tzinfo=utc)) == "end of Mon 7 Jan 2019"
        assert format_due(dt.datetime(2019, 6, 10, 23, 0, tzinfo=utc)) == "end of Mon 10 Jun 2019"
        assert format_due(dt.datetime(2019, 3, 31, 0, 0, tzinfo=utc)) == "end of Sat 30 Mar 2019"  # GMT, then BST
        assert format_due("2019-10-27T23:00:00+00:00") == "Sun 27 Oct 2019, 23:00"   # GMT again: not midnight
        assert format_due(dt.datetime(2019, 6, 10, 23, 0, 1, tzinfo=utc)) == "Tue 11 Jun 2019, 00:00"
        assert format_due(dt.datetime(2019, 6, 10, 9, 30, tzinfo=utc)) == "Mon 10 Jun 2019, 10:30"
        assert format_due(None) == "" and format_due("not a time") == "not a time"


def test_inbox_sorts_and_filters_on_the_server(console):
    console.family_a()
    overdue = text_of(console.get("/la/inbox?status=overdue", HAMPSHIRE))
    assert "2 messages matching the filter" in overdue and "Riverside" not in overdue.split("Messages, page")[1]
    alerts = text_of(console.get("/la/inbox?kind=safeguarding-alert", HAMPSHIRE))
    assert "3 messages matching the filter" in alerts
    newest = console.get("/la/inbox?sort=received&order=desc", HAMPSHIRE).get_data(as_text=True)
    oldest = console.get("/la/inbox?sort=received&order=asc", HAMPSHIRE).get_data(as_text=True)
    assert _links(newest, "/la/messages/[^\"]+")[0] == _links(oldest, "/la/messages/[^\"]+")[-1]
    assert 'aria-sort="descending"' in newest
    # A page past the end is empty, not an error; paging links keep the sort and filter.
    assert "No messages" in text_of(console.get("/la/inbox?page=9", HAMPSHIRE))


def test_inbox_refuses_a_bad_query_naming_the_parameter(console):
    page = console.get("/la/inbox?sort=secret", HAMPSHIRE)
    assert page.status_code == 400
    assert "sort='secret'" in text_of(page) and "<h1" in page.get_data(as_text=True)
    assert console.get("/la/inbox?page=0", HAMPSHIRE).status_code == 400
    assert console.get("/la/inbox?kind=nope", HAMPSHIRE).status_code == 400


def test_la_pages_are_for_children_services_only(console):
    console.family_a()
    mid = _school_referral(console)
    for path in ("/la/inbox", f"/la/messages/{mid}", f"/la/messages/{mid}/decision", "/la/matches", "/la/alerts"):
        for agency in (SCHOOL, DORSET, S.agency_uri("gateway", "national")):
            page = console.get(path, agency)
            assert page.status_code == 403, (path, agency)
            assert "You cannot open this page" in text_of(page) and page.mimetype == "text/html"
        assert console.get(path, None).status_code == 401
    # Another LA cannot read a message that was not delivered to it: as if it did not exist.
    assert console.get(f"/la/messages/{mid}", BCP).status_code == 404


def test_referral_reads_like_a_referral(console):
    console.family_a()
    mid = _school_referral(console)
    page = console.get(f"/la/messages/{mid}", HAMPSHIRE)
    assert page.status_code == 200
    text = text_of(page)
    for expected in ("Leo PARKER", "Signature verified", "Leo arrived without breakfast for the third day this week",
                     "Emma Parker", "mother", "What is missing", "Add the child's NHS number",
                     "Joanne Hale, Designated Safeguarding Lead", "Riverside Infant School", "row 2",
                     "Decision on the referral: due Mon 10 Jun 2019, 10:35", "Record the decision"):
        assert expected in text, expected
    assert "{" not in text  # not JSON


def test_a_police_notice_reads_in_words_not_codes(console):
    """A PPN's category is the national "Domestic abuse" and its notice type the PPN schema's DomesticAbuse: the
    page says "Domestic abuse" once, as the code systems display them."""
    console.family_a()
    event = MessageEventRow.__table__
    notice, _ = console.rows(event, event.c.sender_agency == DORSET)
    text = text_of(console.get(f"/la/messages/{notice.message_id}", HAMPSHIRE))
    assert "What happened Domestic abuse When it happened" in text, text
    assert "DomesticAbuse" not in text


def test_a_notice_timed_at_the_calendars_ends_is_accepted_and_every_page_shows_it(console):
    """The first hour of the year 1 at +14:00 is the year 0 in UTC, the last of 9999 at -14:00 the year 10000:
    valid FHIR, but no datetime can hold them in UTC. The notice is accepted and kept as sent; its event keeps
    no such time (the chronology orders it by when it was received); the pages and the school's notification
    show it without one."""
    from gateway.transport.middleware import AGENCY_KEY
    from tests.shared_console import DATA, POLICE_DAY

    xml = (DATA / "dorset-police-ppn.xml").read_bytes()
    for n, when in enumerate((b"0001-01-01T00:00:00+14:00", b"9999-12-31T23:59:59-14:00")):
        notice = xml.replace(b"2018-09-09T03:00:00+01:00", when).replace(b"2018-09-09T03:04:00+01:00", when) \
            .replace(b"2018-09-30T16:20:00+01:00", when).replace(b"<ppn:NoticeId>3", f"<ppn:NoticeId>{n}".encode())
        console.clock["now"] = POLICE_DAY + dt.timedelta(hours=n)
        answer = console.client.post("/ingest/ppn-xml", data=notice, environ_base={AGENCY_KEY: DORSET})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert '"accepted", "valueInteger": 2' in answer.get_data(as_text=True)
    event = MessageEventRow.__table__
    notices = console.rows(event, event.c.sender_agency == DORSET)
    assert len(notices) == 4 and all(e.occurred_at is None for e in notices)
    for e in notices:
        for path, agency in ((f"/la/messages/{e.message_id}", HAMPSHIRE), (f"/la/people/{e.child_person_id}/chronology",
                                                                            HAMPSHIRE), ("/la/inbox", HAMPSHIRE),
                             ("/la/alerts", HAMPSHIRE), ("/police", DORSET), ("/school", SCHOOL)):
            page = console.get(path, agency)
            assert page.status_code == 200, (path, page.status_code)
    school = text_of(console.get("/school", SCHOOL))
    assert "domestic abuse incident (occurred 0001-01-01T00:00:00+14:00) involving" in school


def test_a_hostile_narrative_is_shown_as_text(console):
    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263").replace(
        b"Leo arrived without breakfast for the third day this week; mother appeared distressed at drop-off.",
        b'"' + HOSTILE.replace('"', '""').encode() + b'"'), REFERRAL_DAY)
    mid = _school_referral(console)
    html = console.get(f"/la/messages/{mid}", HAMPSHIRE).get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "</textarea> " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    # The same text through the decision form's error path and the inbox (child's name, categories).
    console.get("/la/inbox", HAMPSHIRE)
    answer = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, {"decision": "", "reason": HOSTILE})
    assert answer.status_code == 400
    assert "</textarea> &amp;" not in answer.get_data(as_text=True)
    assert "&lt;/textarea&gt;" in answer.get_data(as_text=True)


def test_every_page_with_personal_data_records_the_read(console):
    console.family_a()
    mid = _school_referral(console)
    (event,) = console.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.message_id == mid)
    for path, expected in (("/la/inbox", [("console-inbox", None)]),
                           (f"/la/messages/{mid}", [("console-message", mid)]),
                           (f"/la/messages/{mid}/decision", [("console-decision", mid)]),
                           (f"/la/people/{event.child_person_id}/chronology", [("chronology", event.child_person_id)]),
                           ("/la/matches", [("possible-matches", None), ("possible-duplicates", None)]),
                           ("/la/alerts", [("console-alerts", None)])):
        before = len(console.reads(HAMPSHIRE))
        assert console.get(path, HAMPSHIRE).status_code == 200, path
        reads = console.reads(HAMPSHIRE)[before:]
        assert [(r.what, r.subject) for r in reads] == expected, path
    # A refused read records nothing.
    before = len(console.reads())
    assert console.get(f"/la/messages/{mid}", BCP).status_code == 404
    assert console.get(f"/la/people/{event.child_person_id}/chronology", BCP).status_code == 403
    assert console.get("/la/inbox?sort=nonsense", HAMPSHIRE).status_code == 400
    assert len(console.reads()) == before


def test_decision_form_sends_the_outcome_through_the_intake(console):
    console.family_a()
    mid = _school_referral(console)
    form = console.get(f"/la/messages/{mid}/decision", HAMPSHIRE).get_data(as_text=True)
    assert f'name="{csrf.FIELD}"' in form and "What did you decide?" in form
    answer = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE,
                          {"decision": "accepted-for-assessment", "reason": "A social worker will visit on Monday."})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("decided=1")
    # The outcome was accepted as Hampshire's message, routed back to the school, and met the deadline.
    (outcome,) = console.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.answers_message_id == mid)
    assert outcome.sender_agency == HAMPSHIRE and outcome.kind == S.EVENT_OUTCOME
    to_school = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.message_id == outcome.message_id,
                             DeliveryRow.__table__.c.destination == SCHOOL)
    assert len(to_school) == 1
    task = next(e["resource"] for e in json.loads(to_school[0].payload)["entry"]
                if e["resource"]["resourceType"] == "Task")
    assert task["statusReason"]["text"] == "A social worker will visit on Monday."
    assert "signature" in json.loads(to_school[0].payload)
    (decision,) = console.rows(DeadlineRow.__table__, DeadlineRow.__table__.c.message_id == mid,
                               DeadlineRow.__table__.c.kind == "referral-decision")
    assert decision.met_at is not None
    page = text_of(console.get(answer.headers["Location"], HAMPSHIRE))
    assert "The decision was sent to Riverside Infant School" in page and "Accepted for assessment" in page
    assert "Record the decision" not in page


def test_decision_form_errors_are_summarised(console):
    console.family_a()
    mid = _school_referral(console)
    answer = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, {"decision": "maybe", "reason": "  "})
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "<title>Error: " in html and "There is a problem" in html
    assert 'href="#decision">Select the decision' in html and 'href="#reason">Enter the reason' in html
    assert 'id="decision"' in html and 'id="reason"' in html
    assert console.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.answers_message_id == mid) == []


def test_posts_without_the_right_csrf_token_are_refused(console):
    console.family_a()
    mid = _school_referral(console)
    body = {"decision": "no-further-action", "reason": "Fictional reason."}
    missing = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, body, token=False)
    wrong = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, dict(body, csrf_token="0" * 64))
    # Another agency's token (a page of the console it could read) does not work for Hampshire either.
    with console.app.app_context():
        secret = csrf.secret_for(console.app.config["GATEWAY_SETTINGS"])
        theirs = csrf.token(secret, BCP, console.clock["now"])
        stale = csrf.token(secret, HAMPSHIRE, console.clock["now"] - dt.timedelta(hours=csrf.MAX_AGE_HOURS + 1))
    other = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, dict(body, csrf_token=theirs))
    expired = console.post(f"/la/messages/{mid}/decision", HAMPSHIRE, dict(body, csrf_token=stale))
    for answer in (missing, wrong, other, expired):
        assert answer.status_code == 400 and "did not come from the console" in text_of(answer)
    assert console.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.answers_message_id == mid) == []


def test_chronology_page_draws_the_timeline_and_lists_the_events(console):
    console.family_a()
    (event,) = console.rows(MessageEventRow.__table__,
                            MessageEventRow.__table__.c.message_id == _school_referral(console))
    page = console.get(f"/la/people/{event.child_person_id}/chronology", HAMPSHIRE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    svg = html[html.index("<svg class=\"app-timeline\""):html.index("</svg>")]
    assert svg.count("app-timeline__event") >= 3 and "app-timeline__event--late" in svg
    assert "app-timeline__escalation" in svg and "Dorset Police" in svg and "Riverside Infant School" in svg
    table = text_of(page).split("Events", 1)[1]
    assert "Sent 21 days late" in table and "Household" in table and "The child" in table
    assert console.get(f"/la/people/{event.child_person_id}/chronology", BCP).status_code == 403
    assert console.get("/la/people/no-such-person/chronology", HAMPSHIRE).status_code == 404


def test_the_chronology_filters_its_events_by_agency_and_whom_they_are_about(console):
    console.family_a()
    (event,) = console.rows(MessageEventRow.__table__,
                            MessageEventRow.__table__.c.message_id == _school_referral(console))
    path = f"/la/people/{event.child_person_id}/chronology"

    def shown(**query) -> tuple[str, str, str]:
        page = console.get(path, HAMPSHIRE, query_string=query)
        assert page.status_code == 200, page.get_data(as_text=True)
        html = page.get_data(as_text=True)
        svg = html[html.index("<svg class=\"app-timeline\""):html.index("</svg>")]
        text = text_of(page)
        return svg, text.split("Events", 1)[1] if "Events" in text else "", text

    svg, table, text = shown()
    assert "Dorset Police" in table and "Riverside Infant School" in table and "Showing" not in text
    assert "Clear filter" not in text and svg.count("<circle") >= 3
    every = table.count("Safeguarding")
    # Dorset's events only: the table, the timeline's lanes and marks, and the page says how many of them.
    svg, table, text = shown(agency=DORSET)
    assert "Dorset Police" in table and "Riverside Infant School" not in table and "Riverside" not in svg
    assert svg.count("<circle") == table.count("Dorset Police") == 2
    assert "Showing 2 of them, from Dorset Police." in text and "Clear filter" in text
    assert 'option value="urn:x-safeguarding:agency:police:DOR" selected' in console.get(
        path, HAMPSHIRE, query_string={"agency": DORSET}).get_data(as_text=True)
    # About the child only; and both filters together.
    svg, table, text = shown(about="child")
    assert "Household" not in table and "The child" in table and table.count("Safeguarding") < every
    svg, table, text = shown(agency=DORSET, about="household")
    assert table.count("Household") == 1 and "The child" not in table and svg.count("<circle") == 1
    # An agency with nothing in this chronology: no events, said so; the escalations stay.
    svg, table, text = shown(agency=BCP)
    assert "No events match the filter." in text and "<circle" not in svg and "Escalations" in text
    # A value the filter never offers is refused, naming the parameter; nothing is read or recorded.
    reads = len(console.reads(HAMPSHIRE))
    for query, parameter in (({"about": "<script>"}, "about"), ({"agency": "Dorset"}, "agency"),
                             ({"agency": "urn:x-safeguarding:agency:" + "x" * 300}, "agency")):
        refused = console.get(path, HAMPSHIRE, query_string=query)
        assert refused.status_code == 400 and parameter in text_of(refused)
        assert "<script>" not in refused.get_data(as_text=True)
    assert len(console.reads(HAMPSHIRE)) == reads


def test_the_timeline_and_the_table_give_an_event_the_same_day(console):
    """An event at 00:30 on 7 June in London (23:30 UTC on 6 June): the timeline's mark and the table both say 7
    June, in the gateway's timezone."""
    from sqlalchemy import update

    console.family_a()
    message_id = _school_referral(console)
    (event,) = console.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.message_id == message_id)
    with console.store.engine.begin() as connection:
        connection.execute(update(MessageEventRow.__table__).where(
            MessageEventRow.__table__.c.message_id == message_id).values(
            occurred_at=dt.datetime(2019, 6, 6, 23, 30, tzinfo=dt.timezone.utc)))
    html = console.get(f"/la/people/{event.child_person_id}/chronology", HAMPSHIRE).get_data(as_text=True)
    svg = html[html.index("<svg class=\"app-timeline\""):html.index("</svg>")]
    assert "<title>07 Jun 2019: Safeguarding referral</title>" in svg and "06 Jun 2019" not in svg
    assert "Fri 7 Jun 2019, 00:30" in html.split("Events", 1)[1]


def _possible_match(console) -> int:
    console.ingest(DORSET, "ppn-xml", (__import__("tests.shared_console", fromlist=["DATA"]).DATA
                                       / "dorset-police-ppn.xml").read_bytes(), console.clock["now"])
    row = school_rows("4263").replace(b'"PARKER, Leo",K850210119003,02/11/2015', b'"PARKER, Lee",,02/11/2015')
    console.ingest(SCHOOL, "schoolsafe-csv", row, REFERRAL_DAY)
    matches = console.rows(PossibleMatchRow.__table__, PossibleMatchRow.__table__.c.status == "open")
    assert matches
    return matches[0]


def test_possible_match_side_by_side_and_confirmed_with_a_reason(console):
    match = _possible_match(console)
    listing = console.get("/la/matches", HAMPSHIRE)
    assert f"/la/matches/{match.id}" in listing.get_data(as_text=True)
    assert "Lee Parker Riverside Infant School" in text_of(listing)  # who sent the new record, by name
    page = console.get(f"/la/matches/{match.id}", HAMPSHIRE)
    text = text_of(page)
    assert "Is this the same person?" in text and "Given names" in text and "lee" in text and "leo" in text
    assert re.search(r"[+-]\d+\.\d", text)  # weights
    # The new record's sender by name, and why a person decides.
    assert "New record (Riverside Infant School)" in text and "urn:x-safeguarding:agency:school" not in text
    assert "Why: twins rule" in text
    assert console.get(f"/la/matches/{match.id}", BCP).status_code == 403
    # No reason: the error summary, nothing decided.
    refused = console.post(f"/la/matches/{match.id}", HAMPSHIRE, {"action": "confirm", "reason": ""})
    assert refused.status_code == 400 and "Enter the reason for your decision" in text_of(refused)
    assert console.post(f"/la/matches/{match.id}", HAMPSHIRE, {"action": "confirm", "reason": "x"},
                        token=False).status_code == 400
    before = text_of(console.get(f"/la/people/{match.candidate_person_id}/chronology", HAMPSHIRE))
    done = console.post(f"/la/matches/{match.id}", HAMPSHIRE,
                        {"action": "confirm", "reason": "Same child: the school misspelt his name"})
    assert done.status_code == 303 and done.headers["Location"].endswith(
        f"/la/people/{match.candidate_person_id}/chronology")
    after = text_of(console.get(done.headers["Location"], HAMPSHIRE))
    assert after.count("Riverside Infant School") > before.count("Riverside Infant School")
    (decided,) = console.rows(PossibleMatchRow.__table__, PossibleMatchRow.__table__.c.id == match.id)
    assert decided.status == "confirmed" and decided.reason == "Same child: the school misspelt his name"
    assert console.post(f"/la/matches/{match.id}", HAMPSHIRE, {"action": "reject", "reason": "again"}
                        ).status_code == 409


def test_a_link_to_a_child_joined_with_another_leads_to_the_child_kept_and_says_why(console):
    """Confirming a match moves Lee's record to Leo; Lee's person stays, empty. A link to Lee's chronology (from
    before, or a bookmark) once showed "0 events": it now goes on to Leo's, which says why."""
    from gateway.linkage.models import PersonRow

    match = _possible_match(console)
    records = MessagePersonRow.__table__
    (record,) = console.rows(records, records.c.id == match.record_id)
    lee, leo = record.person_id, match.candidate_person_id
    assert "1 event from every agency" in text_of(console.get(f"/la/people/{lee}/chronology", HAMPSHIRE))
    console.clock["now"] += dt.timedelta(minutes=3)
    console.post(f"/la/matches/{match.id}", HAMPSHIRE, {"action": "confirm", "reason": "Same child"})
    people = PersonRow.__table__
    (merged,) = console.rows(people, people.c.id == lee)
    assert (merged.merged_into, merged.merged_at) == (leo, console.clock["now"])
    old = console.get(f"/la/people/{lee}/chronology?about=child&agency={SCHOOL}", HAMPSHIRE)
    assert old.status_code == 303
    where = urlsplit(old.headers["Location"])
    assert where.path == f"/la/people/{leo}/chronology"
    assert parse_qs(where.query) == {"joined": [lee], "about": ["child"], "agency": [SCHOOL]}  # the filter kept
    # Another LA is refused the old link as it is the new one: nothing says where the child went.
    assert console.get(f"/la/people/{lee}/chronology", BCP).status_code == 403
    page = text_of(console.get(f"/la/people/{leo}/chronology?joined={lee}", HAMPSHIRE))
    assert "The link you followed was to a child whose records were joined with this child's on" in page
    assert "Lee Parker" in page and "0 events" not in page
    # Only a child joined with this one is named so: not this child, another child, or nonsense.
    (other,) = console.rows(people, people.c.id != lee, people.c.id != leo, people.c.kind == "child")[:1]
    for joined in (leo, other.id, "x" * 500, "'\"<b>"):
        assert "The link you followed" not in text_of(
            console.get(f"/la/people/{leo}/chronology?joined={joined}", HAMPSHIRE)), joined


def _alert_links(console) -> list[tuple[str, str]]:
    """(person id, link text) of each alert's link to a chronology, in the page's order."""
    html = console.get("/la/alerts", HAMPSHIRE).get_data(as_text=True)
    return [(unquote(person), re.sub(r"<[^>]+>", "", text))
            for person, text in re.findall(r'href="/la/people/([^/"]+)/chronology">(.*?)</a>', html)]


def test_alerts_page_lists_escalations_naming_the_child_each_is_about(console):
    console.family_a()
    text = text_of(console.get("/la/alerts", HAMPSHIRE))
    assert "Escalation alerts" in text
    assert "No alerts" in text_of(console.get("/la/alerts", BCP))
    escalations = console.rows(EscalationRow.__table__)
    links = _alert_links(console)
    assert len(links) == len(escalations) >= 2
    # Each link is the name of the person the alert is about (as their records give it), and opens their
    # chronology: Family A's alerts are about two different children.
    records = MessagePersonRow.__table__
    for person, label in links:
        names = {" ".join(p for p in (r.given, r.family) if p).title()
                 for r in console.rows(records, records.c.person_id == person)}
        assert label == f"{next(iter(names))}: chronology" and len(names) == 1
    assert len({label for _, label in links}) == len({person for person, _ in links}) == 2


def test_an_alert_whose_raising_record_was_relinked_names_the_person_from_their_records(console):
    console.family_a()
    before = _alert_links(console)
    escalations = EscalationRow.__table__
    records = MessagePersonRow.__table__
    (raised, *_) = console.rows(escalations)
    # The raising message's record of that person now belongs to someone else (as a confirmed match or a
    # merge relinks it): the alert still names its person, from the records that remain theirs.
    with console.store.engine.begin() as connection:
        connection.execute(records.update().where(records.c.message_id == raised.message_id,
                                                  records.c.person_id == raised.person_id)
                           .values(person_id=None))
    after = _alert_links(console)
    assert after == before
    assert all(not label.startswith("Chronology") for _, label in after)


def test_the_home_la_reads_every_message_of_its_childs_chronology_but_decides_only_its_own(console):
    console.family_a()
    from gateway.linkage.models import MessageEventRow as Event

    (concern,) = console.rows(Event.__table__, Event.__table__.c.kind == S.EVENT_CONCERN)
    # The school's concern was not sent to Hampshire, but it is in the chronology of Hampshire's child.
    page = console.get(f"/la/messages/{concern.message_id}", HAMPSHIRE)
    assert page.status_code == 200 and "Record the decision" not in text_of(page)
    assert console.get(f"/la/messages/{concern.message_id}/decision", HAMPSHIRE).status_code == 404
    assert console.get(f"/la/messages/{concern.message_id}", BCP).status_code == 404
    # Every event of the chronology links to a page Hampshire can open.
    chronology = console.get(f"/la/people/{concern.child_person_id}/chronology", HAMPSHIRE).get_data(as_text=True)
    links = _links(chronology, "/la/messages/[^\"]+")
    assert links and all(console.get(link, HAMPSHIRE).status_code == 200 for link in links)


def test_possible_duplicate_side_by_side_and_decided_with_a_reason(console):
    from gateway.linkage.models import PossibleDuplicateRow as Duplicate

    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263"), REFERRAL_DAY)
    # The same referral again under another incident id an hour later: a possible duplicate, both delivered.
    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263").replace(b"\n4263,", b"\n4264,"),
                   REFERRAL_DAY.replace(hour=11, minute=35))
    (flag,) = console.rows(Duplicate.__table__)
    listing = console.get("/la/matches", HAMPSHIRE).get_data(as_text=True)
    assert f"/la/duplicates/{flag.id}" in listing
    page = console.get(f"/la/duplicates/{flag.id}", HAMPSHIRE)
    text = text_of(page)
    assert "Is this the same event sent twice?" in text
    assert text.count("Leo arrived without breakfast for the third day this week") == 2
    # The categories in words, as the referral page writes them; why a person decides.
    assert "Categories Neglect Neglect" in text and "Why: same sender and child" in text, text
    assert console.get(f"/la/duplicates/{flag.id}", BCP).status_code == 403
    assert console.post(f"/la/duplicates/{flag.id}", HAMPSHIRE, {"action": "confirm", "reason": ""}).status_code == 400
    assert console.post(f"/la/duplicates/{flag.id}", HAMPSHIRE, {"action": "confirm", "reason": "x"},
                        token=False).status_code == 400
    done = console.post(f"/la/duplicates/{flag.id}", HAMPSHIRE,
                        {"action": "confirm", "reason": "Sent twice by mistake"})
    assert done.status_code == 303
    (decided,) = console.rows(Duplicate.__table__)
    assert (decided.status, decided.decision_reason) == ("confirmed", "Sent twice by mistake")
    assert "Confirmed" in text_of(console.get(f"/la/duplicates/{flag.id}", HAMPSHIRE))
    assert console.post(f"/la/duplicates/{flag.id}", HAMPSHIRE, {"action": "dismiss", "reason": "again"}
                        ).status_code == 409
