"""Messages the gateway builds: referral outcomes, acknowledgements, Encompass notifications."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.model import systems as S
from gateway.model import validate_resource
from gateway.routing import Agency, build_acknowledgement, build_encompass_notification, build_outcome_message
from gateway.routing.codes import EXT_DUE_BY, REFERRAL_DECISION, REFERRAL_DECISIONS

from .helpers import FAMILY_A_RECEIVED, HAMPSHIRE, RIVERSIDE, resource

DECIDED = dt.datetime(2019, 6, 7, 15, 0, tzinfo=dt.timezone.utc)
GATEWAY = "urn:x-safeguarding:agency:gateway:national"


def _header(bundle):
    return bundle["entry"][0]["resource"]


@pytest.mark.parametrize(("decision", "task_status"), [
    ("accepted-for-assessment", "accepted"), ("no-further-action", "completed"),
    ("signposted-early-help", "completed"), ("declined", "rejected")])
def test_outcome_message(school_referral, decision, task_status):
    reason = f"Fictional reason for {decision}."
    outcome = build_outcome_message(school_referral, decision, reason, HAMPSHIRE, DECIDED,
                                    decided_by_name="Hampshire children's services (MASH)")
    validate_resource(outcome)
    header = _header(outcome)
    assert header["eventCoding"]["code"] == S.EVENT_OUTCOME
    assert header["source"]["endpoint"] == HAMPSHIRE
    assert header["destination"][0]["endpoint"] == RIVERSIDE
    task = resource(outcome, "Task")
    assert header["focus"] == [{"reference": f"urn:uuid:{task['id']}"}]
    assert task["status"] == task_status
    assert task["businessStatus"]["coding"] == [{"system": REFERRAL_DECISION, "code": decision,
                                                 "display": REFERRAL_DECISIONS[decision][0]}]
    assert task["statusReason"]["text"] == reason
    # The referral it answers: the school's record id, and the original message id.
    assert task["focus"]["identifier"] == {"system": S.local_id_system("schoolsafe-csv", "999101"), "value": "4263"}
    assert task["input"][0]["valueIdentifier"]["value"] == school_referral["identifier"]["value"]
    child = resource(outcome, "Patient")
    assert child["identifier"] == [{"system": S.UPN, "value": "K850210119003", "use": "official"}]
    assert "address" not in child
    assert outcome["timestamp"] == "2019-06-07T15:00:00+00:00"


def test_outcome_is_deterministic(school_referral):
    args = (school_referral, "declined", "Below threshold.", HAMPSHIRE, DECIDED)
    assert build_outcome_message(*args) == build_outcome_message(*args)
    assert build_outcome_message(*args)["id"] != build_outcome_message(school_referral, "declined", "Other reason.",
                                                                       HAMPSHIRE, DECIDED)["id"]


@pytest.mark.parametrize(("decision", "reason", "agency", "message"), [
    ("maybe", "x", HAMPSHIRE, "not one of"),
    ("declined", "  ", HAMPSHIRE, "reason"),
    ("declined", "x", "Hampshire", "not an agency"),
])
def test_outcome_refuses_bad_input(school_referral, decision, reason, agency, message):
    with pytest.raises(ValueError, match=message):
        build_outcome_message(school_referral, decision, reason, agency, DECIDED)


@pytest.mark.parametrize("code", ["ok", "transient-error", "fatal-error"])
def test_acknowledgement(school_referral, code):
    details = None if code == "ok" else f"fictional {code} details"
    ack = build_acknowledgement(school_referral, code, details, HAMPSHIRE, DECIDED)
    validate_resource(ack)
    header = _header(ack)
    original = _header(school_referral)
    assert header["response"]["identifier"] == original["id"]
    assert header["response"]["code"] == code
    assert header["eventCoding"] == original["eventCoding"]
    assert header["destination"] == [{"endpoint": RIVERSIDE}]
    assert header["source"]["endpoint"] == HAMPSHIRE
    outcomes = [e["resource"] for e in ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
    if details is None:
        assert outcomes == [] and "details" not in header["response"]
    else:
        assert outcomes[0]["issue"][0]["diagnostics"] == details
        assert header["response"]["details"] == {"reference": f"urn:uuid:{outcomes[0]['id']}"}


def test_acknowledgements_at_different_times_are_different_messages(school_referral):
    first = build_acknowledgement(school_referral, "transient-error", "busy", GATEWAY, DECIDED)
    assert first == build_acknowledgement(school_referral, "transient-error", "busy", GATEWAY, DECIDED)
    later = build_acknowledgement(school_referral, "transient-error", "busy", GATEWAY,
                                  DECIDED + dt.timedelta(minutes=5))
    assert later["id"] != first["id"]


def test_acknowledgement_refuses_bad_input(school_referral):
    with pytest.raises(ValueError, match="response code"):
        build_acknowledgement(school_referral, "maybe", None, HAMPSHIRE, DECIDED)
    with pytest.raises(ValueError, match="MessageHeader"):
        build_acknowledgement({"resourceType": "Bundle", "entry": []}, "ok", None, HAMPSHIRE, DECIDED)
    with pytest.raises(ValueError, match="aware"):
        build_acknowledgement(school_referral, "ok", None, HAMPSHIRE, dt.datetime(2019, 6, 7, 15, 0))


def test_encompass_notification_content(ppns):
    due = dt.datetime(2018, 10, 1, 7, 30, tzinfo=dt.timezone.utc)
    school = Agency("school", "999101", "Riverside Infant School")
    notice = ppns[0]
    message = build_encompass_notification(notice, school, due=due, now=FAMILY_A_RECEIVED)
    validate_resource(message)
    header = _header(message)
    assert header["eventCoding"]["code"] == S.EVENT_ENCOMPASS
    assert header["source"]["endpoint"] == GATEWAY
    assert header["destination"][0]["endpoint"] == RIVERSIDE
    communication = resource(message, "Communication")
    assert header["focus"] == [{"reference": f"urn:uuid:{communication['id']}"}]
    about = {a["type"]: a["identifier"]["value"] for a in communication["about"]}
    assert about == {"Bundle": notice["identifier"]["value"],
                     "ServiceRequest": "3f6c2a1e-8d4b-4f0a-b5c7-2e9d1a7b6c01"}
    text = communication["payload"][0]["contentString"]
    # For the school's key adult: what happened and by when to read it, in words and the gateway's time zone
    # (the notice's 03:00+01:00, the due 07:30 UTC: 08:30 in London), the due also as data.
    assert text == ("Operation Encompass: Dorset Police attended a domestic abuse incident on Sun 9 Sep 2018 at "
                    "03:00 involving Mia Rose Parker's household. The child was not recorded as present. Please read "
                    "this by 08:30 on Mon 1 Oct 2018, and make sure the school's key adult can support the child "
                    "from the start of the school day."), text
    assert communication["extension"] == [{"url": EXT_DUE_BY, "valueDateTime": due.isoformat()}]
    # The incident's place and the adults are not passed on to the school.
    kinds = {e["resource"]["resourceType"] for e in message["entry"]}
    assert kinds == {"MessageHeader", "Organization", "Patient", "Communication"}
    assert "Bournemouth" not in str(message) and "BH1" not in str(message)
    sender = next(e["resource"] for e in message["entry"]
                  if e["fullUrl"] == communication["sender"]["reference"])
    assert sender["identifier"] == [{"system": S.POLICE_FORCE, "value": "DOR"}]
