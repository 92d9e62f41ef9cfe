"""Events read from message Bundles as the gateway translates and builds them (Family A's samples)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.adapters import get_adapter
from gateway.adapters.translate import translate_stream
from gateway.linkage.events import Event, event_from_bundle
from gateway.model import systems as S
from gateway.routing.interfaces import Agency
from gateway.routing.messages import build_encompass_notification, build_outcome_message
from tests.routing.helpers import DORSET_POLICE, FAMILY_A_RECEIVED, HAMPSHIRE, RIVERSIDE, SAMPLES, translate

UK = ZoneInfo("Europe/London")
SCHOOL_RECEIVED = dt.datetime(2019, 6, 7, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def notices() -> list[dict]:
    """Dorset Police's two PPNs of 2018-09-09 (Mia's, then Leo's), submitted 2018-09-30."""
    return translate("ppn-xml", "ppn-sample.xml")


@pytest.fixture(scope="module")
def school_records() -> list[dict]:
    """Riverside Infant School's three records: two disclosures by Mia (not referrals) and Leo's referral."""
    out = io.StringIO()
    with open(SAMPLES / "schoolsafe-sample.csv", "rb") as stream:
        translate_stream(get_adapter("schoolsafe-csv"), stream, "schoolsafe-sample.csv", out,
                         now=SCHOOL_RECEIVED, include_all=True)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_police_notice(notices):
    event = event_from_bundle(notices[0], person_id="mia", received_at=FAMILY_A_RECEIVED)
    assert event.message_id == notices[0]["identifier"]["value"]
    assert (event.person_id, event.agency, event.agency_kind) == ("mia", DORSET_POLICE, "police")
    assert (event.kind, event.referral, event.disclosure) == (S.EVENT_REFERRAL, True, False)
    assert event.occurred_at == dt.datetime(2018, 9, 9, 3, 0, tzinfo=UK)
    assert event.recorded_at == dt.datetime(2018, 9, 30, 16, 20, tzinfo=UK)
    assert event.received_at == FAMILY_A_RECEIVED
    assert event.when == event.occurred_at
    assert (event.categories, event.notice_type, event.risk, event.outcome) == (("domestic-abuse",), "DomesticAbuse",
                                                                                 None, None)
    assert event.summary == "Police notice (domestic abuse), DASH not completed, submitted 21 days after the incident"


def test_police_notice_without_risk_assessment(notices):
    # Leo's notice has no RiskAssessment element at all.
    event = event_from_bundle(notices[1], person_id="leo", received_at=FAMILY_A_RECEIVED)
    assert event.message_id != event_from_bundle(notices[0], person_id="mia", received_at=FAMILY_A_RECEIVED).message_id
    assert event.summary == "Police notice (domestic abuse), no DASH, submitted 21 days after the incident"


def test_police_notice_with_dash_level_on_time(tmp_path):
    # The sample notice with a completed DASH at High, submitted the morning after the incident.
    xml = (SAMPLES / "ppn-sample.xml").read_text(encoding="utf-8")
    xml = xml.replace("<ppn:Completed>false</ppn:Completed>",
                      "<ppn:Completed>true</ppn:Completed>\n      <ppn:Level>High</ppn:Level>", 1)
    path = tmp_path / "notice.xml"
    path.write_text(xml, encoding="utf-8")
    out = io.StringIO()
    with open(path, "rb") as stream:
        translate_stream(get_adapter("ppn-xml"), stream, "notice.xml", out, now=FAMILY_A_RECEIVED)
    bundle = json.loads(out.getvalue().splitlines()[0])
    received = dt.datetime(2018, 9, 9, 20, 0, tzinfo=dt.timezone.utc)
    event = event_from_bundle(bundle, person_id="mia", received_at=received)
    assert event.risk == "high"
    assert event.summary == "Police notice (domestic abuse), DASH high"


def test_school_disclosure_not_referred(school_records):
    event = event_from_bundle(school_records[0], person_id="mia", received_at=SCHOOL_RECEIVED)
    assert (event.agency, event.agency_kind, event.kind) == (RIVERSIDE, "school", S.EVENT_CONCERN)
    assert (event.disclosure, event.referral, event.notice_type) == (True, False, None)
    assert event.categories == ("domestic-abuse",)  # 'disclosure' is context, not a category of harm
    assert event.occurred_at == dt.datetime(2019, 3, 14, 9, 10, tzinfo=UK)
    assert event.summary == "School concern: disclosure (domestic abuse)"


def test_school_record_dated_without_time(school_records):
    # "02/05/2019": a date alone is taken from the start of that UK day.
    event = event_from_bundle(school_records[1], person_id="mia", received_at=SCHOOL_RECEIVED)
    assert event.occurred_at == dt.datetime(2019, 5, 2, 0, 0, tzinfo=UK)
    assert event.summary == "School concern: disclosure (domestic abuse, emotional abuse)"


def test_school_referral(school_records):
    event = event_from_bundle(school_records[2], person_id="leo", received_at=SCHOOL_RECEIVED)
    assert (event.kind, event.referral, event.disclosure) == (S.EVENT_REFERRAL, True, False)
    assert event.categories == ("neglect",)
    assert event.summary == "School referral (neglect)"


def test_school_risk_rating():
    bundles = translate("concernhub-json", "concernhub-sample.json")
    risks = {event_from_bundle(b, person_id="p", received_at=SCHOOL_RECEIVED).risk for b in bundles}
    assert "red" in risks


def test_referral_outcome(notices):
    decided = dt.datetime(2018, 10, 1, 9, 30, tzinfo=dt.timezone.utc)
    outcome = build_outcome_message(notices[0], "no-further-action", "Parents engaging; no role for children's "
                                    "services.", HAMPSHIRE, decided)
    event = event_from_bundle(outcome, person_id="mia", received_at=decided)
    assert (event.kind, event.agency, event.agency_kind) == (S.EVENT_OUTCOME, HAMPSHIRE, "la")
    assert event.outcome == "no-further-action"
    assert event.recorded_at == decided and event.when == decided
    assert not event.is_concern
    assert event.summary == "Referral outcome: no further action"


def test_encompass_notification(notices):
    school = Agency(kind="school", code="999101", name="Riverside Infant School")
    due = dt.datetime(2018, 10, 1, 7, 30, tzinfo=dt.timezone.utc)
    notification = build_encompass_notification(notices[0], school, due=due, now=FAMILY_A_RECEIVED)
    event = event_from_bundle(notification, person_id="mia", received_at=FAMILY_A_RECEIVED)
    assert event.kind == S.EVENT_ENCOMPASS and not event.is_concern
    assert event.recorded_at == FAMILY_A_RECEIVED
    assert event.summary == "Operation Encompass notification"


MALFORMED = [
    None, [], "text", {}, {"entry": "x"}, {"entry": [None, 3, "x"]},
    {"entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": 7, "source": "x", "focus": 3}}]},
    {"entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": {"code": S.EVENT_REFERRAL},
                             "focus": [{"reference": 5}]}},
               {"resource": {"resourceType": "ServiceRequest", "category": "x", "extension": {"url": 1},
                             "authoredOn": 20190314}}]},
    {"entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": {"code": S.EVENT_REFERRAL}}},
               {"resource": {"resourceType": "ServiceRequest", "authoredOn": "9999-12-31",
                             "extension": [{"url": S.EXT_OCCURRED, "valueDate": "2019-02-30"}],
                             "category": [{"coding": "domestic-abuse"}, {"coding": [None, {"system": 1}]}]}}]},
    {"entry": [{"resource": {"resourceType": "MessageHeader", "eventCoding": {"code": S.EVENT_OUTCOME},
                             "focus": [{"reference": "Task/x"}]}},
               {"resource": {"resourceType": "Task", "id": "x", "businessStatus": "declined", "authoredOn": []}}]},
]


@pytest.mark.parametrize("bundle", MALFORMED)
def test_malformed_bundle_gives_empty_parts(bundle):
    event = event_from_bundle(bundle, person_id="p", received_at=FAMILY_A_RECEIVED)
    assert isinstance(event, Event)
    assert event.occurred_at is None and event.outcome is None and event.categories == ()
    assert event.when == FAMILY_A_RECEIVED
    assert event.summary


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_part_replaced_by_any_json_never_raises(notices, data):
    bundle = copy.deepcopy(notices[0])
    paths = [p for p in _paths(bundle) if p]
    path = data.draw(st.sampled_from(paths))
    target = bundle
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(JSON)
    event = event_from_bundle(bundle, person_id="mia", received_at=FAMILY_A_RECEIVED)
    assert isinstance(event.summary, str) and isinstance(event.categories, tuple)
