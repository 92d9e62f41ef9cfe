"""The person index, chronology, duplicates, versions, escalation and deadlines through the real accept path.

Family A's exports go in through ``POST /ingest/<format>`` of the real app
(the agency of a verified certificate is set in the WSGI environ, as the
mTLS middleware does; TLS itself is tested in tests/transport), on a
database at the schema's head with the scenario's directory.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from sqlalchemy import func, select

from gateway.delivery.models import DeliveryRow
from gateway.linkage.models import DeadlineRow, EscalationRow, MessageEventRow, PossibleDuplicateRow
from gateway.linkage.views import linkage_for
from gateway.model import systems as S
from gateway.store import open_store
from gateway.store.models import MessagePersonRow
from gateway.transport.middleware import AGENCY_KEY
from tests.shared_console import (BCP, DATA, DISCLOSURE_DAY, DORSET, GATEWAY, HAMPSHIRE, POLICE_DAY, SCHOOL,
                                  Console, school_rows)


class Family(Console):
    """Family A through the real app (tests/shared_console.py's ``console``: SQLite and PostgreSQL), with the
    API's calls."""

    def call(self, method, path, agency, body=None, content_type="application/json", **kw):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        return self.client.open(path, method=method, data=data,
                                environ_base={AGENCY_KEY: agency} if agency else {}, content_type=content_type, **kw)

    def police(self):
        return self.ingest(DORSET, "ppn-xml", (DATA / "dorset-police-ppn.xml").read_bytes(), POLICE_DAY)

    @staticmethod
    def school_rows(*incidents: str) -> bytes:
        return school_rows(*incidents)


@pytest.fixture
def family(console) -> Family:
    return Family(console.app, console.store, console.clock)


def _children(family):
    return {(r.given, r.source): r.person_id for r in family.rows(MessagePersonRow.__table__,
                                                                 MessagePersonRow.__table__.c.role == "child")}


def test_family_a_police_and_school_records_are_the_same_two_children(family):
    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    children = _children(family)
    assert children[("mia rose", DORSET)] == children[("mia rose", SCHOOL)]
    assert children[("leo", DORSET)] == children[("leo", SCHOOL)]
    assert children[("mia rose", DORSET)] != children[("leo", DORSET)]
    # The two notices share the police Reference and are distinct messages, both delivered, never duplicates.
    notices = family.rows(MessageEventRow.__table__, MessageEventRow.__table__.c.sender_agency == DORSET)
    assert len(notices) == 2 and {n.child_person_id for n in notices} == {children[("mia rose", DORSET)],
                                                                           children[("leo", DORSET)]}
    assert family.rows(PossibleDuplicateRow.__table__) == []
    to_hampshire = family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.destination == HAMPSHIRE,
                               DeliveryRow.__table__.c.rule == "police-notice-to-home-la")
    assert len(to_hampshire) == 2


def test_a_school_disclosure_after_the_dorset_notice_alerts_hampshire_that_day(family):
    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    fired = family.rows(EscalationRow.__table__)
    rules = {e.rule_id for e in fired}
    assert "domestic-abuse-notice-then-disclosure" in rules
    alerts = family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule.like("escalation:%"))
    to_la = [a for a in alerts if a.destination == HAMPSHIRE]
    assert to_la and all(a.created_at == DISCLOSURE_DAY for a in to_la)
    alert = json.loads(to_la[0].payload)
    header = alert["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == S.EVENT_ALERT
    kinds = [e["resource"]["resourceType"] for e in alert["entry"]]
    assert "Flag" in kinds and "DetectedIssue" in kinds and "signature" in alert
    issue = next(e["resource"] for e in alert["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    notices = {r.message_id for r in family.rows(MessageEventRow.__table__,
                                                 MessageEventRow.__table__.c.sender_agency == DORSET)}
    assert {i["identifier"]["value"] for i in issue["implicated"]} & notices
    # The school already knows (it sent the disclosure): it hears too, without the police's messages.
    to_school = [a for a in alerts if a.destination == SCHOOL]
    assert to_school and all("implicated" not in e["resource"] for a in to_school
                             for e in json.loads(a.payload)["entry"])
    # Sending the same export again fires nothing more (each firing is recorded once).
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    assert len(family.rows(EscalationRow.__table__)) == len(fired)


def test_no_alert_without_the_police_notice(family):
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    assert family.rows(EscalationRow.__table__) == []


def test_chronology_in_order_for_the_home_la_only_and_each_read_recorded(family):
    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101", "4187"), DISCLOSURE_DAY, concerns=True)
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    leo = _children(family)[("leo", SCHOOL)]
    answer = family.call("GET", f"/fhir/Patient/{leo}/$chronology", HAMPSHIRE)
    assert answer.status_code == 200, answer.get_json()
    bundle = answer.get_json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    events = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication"]
    senders = [e["sender"]["identifier"]["value"] for e in events]
    occurred = [e["extension"][0]["valueDateTime"] for e in events]
    assert occurred == sorted(occurred, key=dt.datetime.fromisoformat)
    # Leo's notice and his sister's, her two disclosures (household), and his own referral.
    assert senders == [DORSET, DORSET, SCHOOL, SCHOOL, SCHOOL]
    assert any(e["resource"]["resourceType"] == "Flag" for e in bundle["entry"])
    for outsider in (BCP, SCHOOL, DORSET):
        refused = family.call("GET", f"/fhir/Patient/{leo}/$chronology", outsider)
        assert refused.status_code == 403 and refused.get_json()["resourceType"] == "OperationOutcome"
    assert family.call("GET", "/fhir/Patient/no-such-person/$chronology", HAMPSHIRE).status_code == 404
    from gateway.linkage.models import PersonalDataReadRow

    reads = family.rows(PersonalDataReadRow.__table__)
    assert [(r.agency, r.what, r.subject) for r in reads] == [(HAMPSHIRE, "chronology", leo)]


def test_the_chronology_with_datetimes_is_the_chronology_with_iso_text(family):
    """The console reads the chronology's times as datetimes (``iso_times=False``); the API as ISO text. Apart from
    that they are the same chronology, time for time."""
    from gateway.linkage.chronology import chronology

    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101", "4187"), DISCLOSURE_DAY, concerns=True)
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    leo = _children(family)[("leo", SCHOOL)]
    with family.store.engine.connect() as connection:
        text, times = chronology(connection, leo), chronology(connection, leo, iso_times=False)

    def as_text(value):
        if isinstance(value, dt.datetime):
            assert value.tzinfo is not None, value
            return value.isoformat()
        if isinstance(value, dict):
            return {k: as_text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [as_text(v) for v in value]
        return value
    assert text["events"] and text["escalations"]
    assert any(isinstance(e["received_at"], dt.datetime) for e in times["events"])
    assert as_text(times) == text


def test_a_brief_chronology_is_the_chronology_with_fewer_fields(family):
    """The console's chronology (``brief``, without identifiers) has the same events in the same order, each
    with the fields it shows as the whole chronology has them, and the same names and birth dates."""
    from gateway.linkage.chronology import chronology
    from gateway.linkage.index import household
    from gateway.linkage.models import PersonRow

    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101", "4187"), DISCLOSURE_DAY, concerns=True)
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    leo = _children(family)[("leo", SCHOOL)]
    (subject,) = family.rows(PersonRow.__table__, PersonRow.__table__.c.id == leo)
    with family.store.engine.connect() as connection:
        assert len(household(connection, leo)) > 1  # household members' events are in both
        whole = chronology(connection, leo, iso_times=False)
        brief = chronology(connection, leo, iso_times=False, brief=True, identifiers=False, subject=subject)
    brief_fields = {"message_id", "person_id", "about", "agency", "agency_kind", "kind", "kind_display",
                    "occurred_at", "recorded_at", "received_at", "risk", "late_days", "summary", "version",
                    "possible_duplicates", "deadlines"}
    assert len(brief["events"]) == len(whole["events"]) >= 5
    assert [set(e) for e in brief["events"]] == [brief_fields] * len(whole["events"])
    assert brief["events"] == [{k: e[k] for k in brief_fields} for e in whole["events"]]
    assert any(e["about"] == "household" for e in brief["events"])
    assert {k: v for k, v in brief.items() if k not in ("person", "events")} == \
        {k: v for k, v in whole.items() if k not in ("person", "events")}
    assert whole["person"]["nhs_numbers"] + whole["person"]["upns"]  # identifiers the brief one leaves out
    assert brief["person"]["nhs_numbers"] == brief["person"]["upns"] == []
    assert {k: v for k, v in brief["person"].items() if k not in ("nhs_numbers", "upns")} == \
        {k: v for k, v in whole["person"].items() if k not in ("nhs_numbers", "upns")}


def test_a_new_version_of_a_record_is_kept_with_its_change_and_is_no_duplicate(family):
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    edited = family.school_rows("4263").replace(b"third day this week", b"fourth day this week")
    family.ingest(SCHOOL, "schoolsafe-csv", edited, dt.datetime.fromisoformat("2019-06-07T11:35:00+01:00"))
    events = sorted(family.rows(MessageEventRow.__table__), key=lambda e: e.version)
    assert [e.version for e in events] == [1, 2]
    assert events[1].previous_message_id == events[0].message_id
    changes = json.loads(events[1].changes)
    assert any("fourth day" in str(c["after"]) and "third day" in str(c["before"]) for c in changes)
    assert family.rows(PossibleDuplicateRow.__table__) == []
    # Both versions are delivered.
    assert len(family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")) == 2


def test_near_identical_content_about_one_child_is_delivered_and_flagged(family):
    first = family.school_rows("4263")
    family.ingest(SCHOOL, "schoolsafe-csv", first, dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    again = first.replace(b"\n4263,", b"\n4264,")  # the same incident keyed in twice under a new incident id
    family.ingest(SCHOOL, "schoolsafe-csv", again, dt.datetime.fromisoformat("2019-06-07T12:35:00+01:00"))
    flags = family.rows(PossibleDuplicateRow.__table__)
    assert len(flags) == 1 and flags[0].status == "open" and flags[0].home_la == HAMPSHIRE
    assert len(family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")) == 2
    # Both shown side by side to the home LA, who decides; nobody else may.
    listed = family.call("GET", "/people/duplicates", HAMPSHIRE).get_json()["duplicates"]
    assert [(d["message"]["message_id"], d["duplicate_of"]["message_id"]) for d in listed] == \
        [(flags[0].message_id, flags[0].duplicate_of)]
    assert listed[0]["message"]["summary"] == listed[0]["duplicate_of"]["summary"]
    assert family.call("GET", "/people/duplicates", SCHOOL).status_code == 403
    url = f"/people/duplicates/{flags[0].id}/$dismiss"
    assert family.call("POST", url, BCP, {"reason": "x"}).status_code == 403
    assert family.call("POST", url, HAMPSHIRE, {"reason": " "}).status_code == 400
    assert family.call("POST", f"/people/duplicates/{flags[0].id}/$merge", HAMPSHIRE, {"reason": "x"}).status_code \
        == 400
    done = family.call("POST", url, HAMPSHIRE, {"reason": "Two separate mornings", "user": "A. Worker"})
    assert done.status_code == 200 and done.get_json()["status"] == "dismissed"
    assert family.call("POST", url, HAMPSHIRE, {"reason": "again"}).status_code == 409
    assert family.call("GET", "/people/duplicates", HAMPSHIRE).get_json()["duplicates"] == []
    # A week later the same text is a new concern, not a duplicate.
    later = first.replace(b"\n4263,", b"\n4299,")
    family.ingest(SCHOOL, "schoolsafe-csv", later, dt.datetime.fromisoformat("2019-06-17T12:35:00+01:00"))
    assert len(family.rows(PossibleDuplicateRow.__table__)) == 1


def test_referral_decision_deadline_is_met_by_the_outcome_and_counted(family):
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4263"),
                  dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    (deadline,) = family.rows(DeadlineRow.__table__)
    assert deadline.agency == HAMPSHIRE and deadline.kind == "referral-decision"
    assert deadline.due_at == dt.datetime.fromisoformat("2019-06-10T10:35:00+01:00")  # Friday -> Monday
    stats = family.call("GET", "/stats", GATEWAY).get_json()
    family.clock["now"] = dt.datetime.fromisoformat("2019-06-11T09:00:00+01:00")
    rows = {r["agency"]: r for r in family.call("GET", "/stats", GATEWAY).get_json()["agencies"]}
    assert rows[HAMPSHIRE]["overdue"] == 1 and rows[SCHOOL]["sent"] == 1
    assert stats["agencies"]
    # Overdue: Hampshire is alerted, once.
    linkage = linkage_for(family.app)
    with family.store.transaction() as unit:
        actions = linkage.check_deadlines(unit, family.clock["now"])
    assert [a.action for a in actions] == ["alert-agency"]
    with family.store.transaction() as unit:
        assert linkage.check_deadlines(unit, family.clock["now"]) == []
    reminders = family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "deadline-alert-agency")
    assert [r.destination for r in reminders] == [HAMPSHIRE]
    # Hampshire decides (late): the deadline is met, the figures say so.
    from gateway.routing.messages import build_outcome_message

    (referral,) = family.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    outcome = build_outcome_message(json.loads(referral.payload), "no-further-action", "Fictional reason.",
                                    HAMPSHIRE, family.clock["now"])
    answer = family.call("POST", "/fhir/$process-message", HAMPSHIRE, outcome)
    assert answer.status_code == 200, answer.get_json()
    (deadline,) = family.rows(DeadlineRow.__table__)
    assert deadline.met_at == family.clock["now"]
    own = family.call("GET", "/stats", HAMPSHIRE).get_json()["agencies"]
    assert [(r["agency"], r["decided_late"], r["overdue"]) for r in own] == [(HAMPSHIRE, 1, 0)]


def test_late_police_notices_are_counted_per_sender(family):
    family.police()
    rows = {r["agency"]: r for r in family.call("GET", "/stats", GATEWAY).get_json()["agencies"]}
    assert rows[DORSET]["late_submissions"] == 2


def test_possible_matches_are_reviewed_by_the_home_la_only(family):
    family.police()
    # The school knows Leo under another given name and without his UPN: close, not certain (a twin would
    # look the same): a person must decide.
    row = family.school_rows("4263").replace(b'"PARKER, Leo",K850210119003,02/11/2015',
                                             b'"PARKER, Lee",,02/11/2015')
    family.ingest(SCHOOL, "schoolsafe-csv", row, dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00"))
    listed = family.call("GET", "/people/matches", HAMPSHIRE).get_json()
    candidates = [m for m in listed["matches"] if m["record"]["role"] == "child"]
    assert candidates, listed
    match = candidates[0]
    assert match["explanation"]["score"]["fields"]
    assert family.call("GET", "/people/matches", SCHOOL).status_code == 403
    assert family.call("GET", "/people/matches", BCP).get_json()["matches"] == []
    url = f"/people/matches/{match['id']}/$confirm"
    assert family.call("POST", url, BCP, {"reason": "x"}).status_code == 403
    assert family.call("POST", url, HAMPSHIRE, {}).status_code == 400
    leo = match["candidate_person_id"]
    with family.store.engine.connect() as connection:
        lee = connection.execute(select(MessagePersonRow.person_id).where(
            MessagePersonRow.id == match["record"]["record_id"])).scalar_one()
    before = family.call("GET", f"/fhir/Patient/{leo}/$chronology", HAMPSHIRE).get_json()
    done = family.call("POST", url, HAMPSHIRE, {"reason": "Same child: the school misspelt his name", "user": "A. Worker"})
    assert done.status_code == 200 and done.get_json()["status"] == "confirmed"
    assert family.call("POST", url, HAMPSHIRE, {"reason": "again"}).status_code == 409
    after = family.call("GET", f"/fhir/Patient/{leo}/$chronology", HAMPSHIRE).get_json()
    assert after["total"] == before["total"] + 1
    # Lee's id, empty now, leads on to Leo's chronology for good (308), saying why; other LAs are refused.
    moved = family.call("GET", f"/fhir/Patient/{lee}/$chronology", HAMPSHIRE)
    assert moved.status_code == 308 and moved.headers["Location"].endswith(f"/fhir/Patient/{leo}/$chronology")
    (issue,) = moved.get_json()["issue"]
    assert issue["severity"] == "information" and f"one child with Patient {leo}" in issue["diagnostics"]
    assert family.call("GET", f"/fhir/Patient/{lee}/$chronology", BCP).status_code == 403
    # And so does the command, saying so on stderr (its --json stays the chronology alone).
    from click.testing import CliRunner

    from gateway.cli import main

    env = {"GATEWAY_DATABASE_URL": family.app.config["GATEWAY_SETTINGS"].database_url}
    for args in ([lee], [lee, "--json"]):
        result = CliRunner().invoke(main, ["chronology", *args], env=env)
        assert result.exit_code == 0, result.output + result.stderr
        assert f"person {lee} was joined with person {leo}" in result.stderr
    assert json.loads(result.stdout)["person"]["id"] == leo
    with family.store.engine.connect() as connection:
        decided = connection.execute(select(func.count()).select_from(MessagePersonRow).where(
            MessagePersonRow.person_id == leo, MessagePersonRow.link_by_person.is_(True))).scalar_one()
    assert decided >= 1


def test_people_import_and_export_round_trip(runner, tmp_path, upgraded_sqlite):
    from gateway.cli import main

    url = upgraded_sqlite(tmp_path / "gateway.sqlite3")
    source = tmp_path / "people.csv"
    source.write_text(
        "record_id,source,given,family,birth_date,sex,postcode,nhs_number,upn,school_urn\n"
        "r1,la-850,Mia Rose,Parker,2013-05-14,F,SP10 1AA,,K850210117001,999101\n"
        "r2,la-850,Mia,Parker,14/05/2013,F,SP10 1AA,,K850210117001,\n"
        "r3,la-850,Ella,Testtwin,2014-01-01,F,SP10 1AA,,,999101\n"
        "r4,la-850,Emma,Testtwin,2014-01-01,F,SP10 1AA,,,999101\n"
        "r5,la-850,Bad,Date,31/02/2014,F,,,,\n", encoding="utf-8")
    env = {"GATEWAY_DATABASE_URL": url}
    result = runner.invoke(main, ["people", "import", str(source)], env=env)
    assert result.exit_code == 1, result.output  # one row could not be read: said, and the rest loaded
    assert "row 6" in result.output and "birth date" in result.output
    out = tmp_path / "export.csv"
    result = runner.invoke(main, ["people", "export", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    rows = {r["record_id"]: r for r in __import__("csv").DictReader(io.StringIO(out.read_text()))}
    assert set(rows) == {"r1", "r2", "r3", "r4"}
    assert rows["r1"]["person_id"] == rows["r2"]["person_id"] and rows["r2"]["decision"] == "linked"
    assert rows["r3"]["person_id"] != rows["r4"]["person_id"]   # twins are never linked automatically


def test_records_stored_before_the_person_index_are_linked_by_command(runner, tmp_path, upgraded_sqlite):
    """A database upgraded from the baseline holds message_person rows with no person: one command links them."""
    from sqlalchemy import insert

    from gateway.cli import main

    url = upgraded_sqlite(tmp_path / "gateway.sqlite3")
    store = open_store(url)
    rows = [dict(resource="Patient/a", role="child", given="mia rose", family="parker", birth_date="2013-05-14",
                 postcode="SP10 1AA", upn="K850210117001"),
            dict(resource="Patient/b", role="child", given="mia", family="parker", birth_date="2013-05-14",
                 postcode=None, upn="K850210117001"),
            dict(resource="RelatedPerson/c", role="MTH", given="emma", family="parker", birth_date="1989-02-11",
                 postcode="SP10 1AA", upn=None)]
    with store.transaction() as unit:
        unit.session.connection().execute(insert(MessagePersonRow.__table__), rows)
    store.close()
    result = runner.invoke(main, ["people", "link-unlinked"], env={"GATEWAY_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "3 records linked: 1 linked, 2 new"
    with open_store(url).engine.connect() as connection:
        people = connection.execute(select(MessagePersonRow.person_id).order_by(MessagePersonRow.id)).scalars().all()
    assert None not in people and people[0] == people[1] != people[2]
    again = runner.invoke(main, ["people", "link-unlinked"], env={"GATEWAY_DATABASE_URL": url})
    assert again.output.strip() == "every record already has its person"


@pytest.mark.parametrize("length", [0, 1, 40, 600, 5_000])
def test_narrative_similarity_is_the_common_subsequence_measure_difflib_estimates(length):
    """The library is the judge: rapidfuzz's Indel similarity is 2 x LCS / total length, which difflib's ratio
    never exceeds (difflib finds at most the common subsequence), over narratives of many lengths, alike and
    not; below the threshold it is 0."""
    import difflib
    import random

    from gateway.linkage.services import DUPLICATE_SIMILARITY, narrative_similarity

    rng = random.Random(length)
    words = "the child said mum dad shouted school arrived late hungry bruise arm teacher noticed crying".split()
    for _ in range(20):
        one = " ".join(rng.choice(words) for _ in range(length // 6 + 1))[:length]
        other = list(one)
        for _ in range(rng.randint(0, max(1, length // 8))):
            if other:
                other[rng.randrange(len(other))] = rng.choice("abc ")
        other = "".join(other)
        ours = narrative_similarity(one, other)
        theirs = difflib.SequenceMatcher(None, one, other, autojunk=False).ratio()
        assert ours == 0 or ours >= DUPLICATE_SIMILARITY
        if theirs >= DUPLICATE_SIMILARITY:
            assert ours >= theirs - 1e-9, (one, other)


def test_long_hostile_narratives_are_compared_in_bounded_time_and_near_copies_still_flagged():
    """Two 100,000-character narratives (the longest field) of a pattern that made difflib quadratic: compared,
    not alike; a near copy of one is alike. (No timing asserted: with difflib this test would run for hours.)"""
    import random

    from gateway.linkage.services import DUPLICATE_SIMILARITY, narrative_similarity

    rng = random.Random(7)
    one = "".join(rng.choice("ab ") for _ in range(100_000))
    other = "".join(rng.choice("ab ") for _ in range(100_000))
    assert narrative_similarity(one, other) == 0
    assert narrative_similarity(one, one[:-10] + "x" * 10) >= DUPLICATE_SIMILARITY


def test_the_chronology_selects_a_households_messages_as_an_in_subquery_does(family):
    """``among`` of a select, as the chronology reads a household's messages (on PostgreSQL ``= ANY`` of the
    subquery's values as one array), picks the rows ``IN`` the subquery picks: for each person, for a household,
    and for people with no message."""
    from sqlalchemy import select

    from gateway.linkage.chronology import _DEADLINE, _EVENT, _MP
    from gateway.linkage.models import PersonRow
    from gateway.store.engine import among

    family.police()
    family.ingest(SCHOOL, "schoolsafe-csv", family.school_rows("4101", "4187"), DISCLOSURE_DAY, concerns=True)
    people = [p.id for p in family.rows(PersonRow.__table__)]
    assert len(people) >= 3
    with family.store.engine.connect() as connection:
        checked = 0
        for chosen in [[p] for p in people] + [people, people[:2], ["no-such-person"]]:
            messages = select(_MP.c.message_id).where(_MP.c.person_id.in_(chosen), _MP.c.message_id.is_not(None))
            for table in (_EVENT, _DEADLINE):
                def ids(condition):
                    return sorted(connection.execute(select(table.c.message_id).where(condition)).scalars())
                expected = ids(table.c.message_id.in_(messages))
                assert ids(among(connection, table.c.message_id, messages)) == expected
                checked += bool(expected)
        assert checked >= 3  # some choices select rows, not only none
