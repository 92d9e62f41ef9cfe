"""Routing rules, each on its own, and Family A end to end."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.model import systems as S
from gateway.model import validate_resource
from gateway.routing import (
    Agency,
    PlannedDelivery,
    Unroutable,
    build_acknowledgement,
    build_outcome_message,
    route_message,
)
from gateway.routing.codes import (
    EDUCATION_SETTING,
    EXT_DUE_BY,
    RULE_ADDRESSED,
    RULE_ENCOMPASS_LA,
    RULE_ENCOMPASS_SCHOOL,
    RULE_POLICE_NOTICE,
    RULE_SCHOOL_REFERRAL,
)

from .helpers import BCP, FAMILY_A_RECEIVED, HAMPSHIRE, RIVERSIDE, UTC, resource

DUE_FAMILY_A = "2018-10-01T08:30:00+01:00"


def _patient(bundle):
    return resource(bundle, "Patient")


def _set_home_postcode(bundle, postcode):
    patient = _patient(bundle)
    if postcode is None:
        patient.pop("address", None)
    else:
        patient["address"] = [{"use": "home", "postalCode": postcode, "country": "GB"}]


def _school_org(bundle):
    patient = _patient(bundle)
    ref = next(e["valueReference"]["reference"] for e in patient["extension"] if e["url"] == S.EXT_SCHOOL)
    return next(e["resource"] for e in bundle["entry"] if e["fullUrl"] == ref)


def _drop_school(bundle):
    patient = _patient(bundle)
    patient["extension"] = [e for e in patient.get("extension", []) if e["url"] != S.EXT_SCHOOL]


def _route(bundle, directory, now=FAMILY_A_RECEIVED):
    result = route_message(bundle, directory, now=now)
    if not isinstance(result, Unroutable):
        for delivery in result:
            assert isinstance(delivery, PlannedDelivery)
            validate_resource(delivery.message)
    return result


# Family A ----------------------------------------------------------------------------------
def test_family_a_police_notices(ppns, sqlite_directory):
    deliveries = [d for bundle in ppns for d in _route(bundle, sqlite_directory)]
    referrals = [d for d in deliveries if d.rule == RULE_POLICE_NOTICE]
    notifications = [d for d in deliveries if d.rule == RULE_ENCOMPASS_SCHOOL]
    assert len(deliveries) == 4
    # Two referrals to Hampshire (the children's home LA), none to BCP (where the incident was).
    assert [d.destination for d in referrals] == [HAMPSHIRE, HAMPSHIRE]
    assert not [d for d in deliveries if d.destination == BCP]
    assert [d.message for d in referrals] == ppns  # delivered as received: two distinct messages
    assert referrals[0].message["id"] != referrals[1].message["id"]
    # Two Operation Encompass notifications to Riverside Infant School, due Monday 08:30 BST.
    assert [d.destination for d in notifications] == [RIVERSIDE, RIVERSIDE]
    assert [d.due.isoformat() for d in notifications] == [DUE_FAMILY_A, DUE_FAMILY_A]
    assert notifications[0].due == dt.datetime(2018, 10, 1, 7, 30, tzinfo=UTC)
    children = {resource(d.message, "Patient")["birthDate"] for d in notifications}
    assert children == {"2013-05-14", "2015-11-02"}


def test_family_a_school_referral(school_referral, sqlite_directory):
    (delivery,) = _route(school_referral, sqlite_directory)
    assert resource(school_referral, "ServiceRequest")["identifier"][0]["value"] == "4263"
    assert (delivery.destination, delivery.rule, delivery.due) == (HAMPSHIRE, RULE_SCHOOL_REFERRAL, None)
    assert delivery.message is school_referral
    assert "SP10" in delivery.reason


# School referrals ---------------------------------------------------------------------------
def test_school_referral_goes_to_the_home_la_even_when_the_school_is_elsewhere(school_referral, sqlite_directory):
    # A Hampshire school's pupil who lives in Bournemouth: BCP, not Hampshire.
    _set_home_postcode(school_referral, "BH2 5AA")
    (delivery,) = _route(school_referral, sqlite_directory)
    assert delivery.destination == BCP and delivery.rule == RULE_SCHOOL_REFERRAL


@pytest.mark.parametrize("postcode", [None, "not a postcode", "old-address"])
def test_school_referral_without_a_usable_home_postcode_goes_to_the_schools_la(school_referral, postcode,
                                                                               sqlite_directory):
    if postcode == "old-address":
        # A postcode the directory knows (BCP), but of an old address: not where the child lives now.
        _patient(school_referral)["address"] = [{"use": "old", "postalCode": "BH1 1AA"}]
    else:
        _set_home_postcode(school_referral, postcode)
    (delivery,) = _route(school_referral, sqlite_directory)
    assert delivery.destination == HAMPSHIRE
    assert "the school's LA 850" in delivery.reason


def test_school_referral_with_unknown_district_falls_back_to_the_school(school_referral, sqlite_directory):
    _set_home_postcode(school_referral, "ZE1 0AA")  # Shetland: not in the demo directory
    (delivery,) = _route(school_referral, sqlite_directory)
    assert delivery.destination == HAMPSHIRE
    assert "postcode district ZE1 (home postcode ZE1 0AA) is not in the directory" in delivery.reason


# Police notices ------------------------------------------------------------------------------
def test_police_notice_goes_to_the_home_la_whichever_force_and_wherever_the_incident(ppns, sqlite_directory):
    bundle = ppns[0]
    # The incident was in Bournemouth (BH1, BCP); the force is Dorset's. Neither matters.
    assert resource(bundle, "Location")["address"]["postalCode"] == "BH1 2AA"
    _set_home_postcode(bundle, "SO23 8UJ")
    assert [d.destination for d in _route(bundle, sqlite_directory)] == [HAMPSHIRE, RIVERSIDE]
    _set_home_postcode(bundle, "BH2 5AA")
    assert [d.destination for d in _route(bundle, sqlite_directory)] == [BCP, RIVERSIDE]


def test_police_notice_never_routes_on_the_incident_location(ppns, sqlite_directory):
    bundle = ppns[0]
    _set_home_postcode(bundle, None)
    _drop_school(bundle)
    result = _route(bundle, sqlite_directory)
    assert isinstance(result, Unroutable)
    assert result.rule == RULE_POLICE_NOTICE
    assert "home postcode is not known" in result.reason and "no school is known" in result.reason
    assert result.message_id == bundle["identifier"]["value"]


def test_police_notice_without_home_postcode_uses_the_childs_schools_la(ppns, sqlite_directory):
    bundle = ppns[0]
    _set_home_postcode(bundle, None)
    referral, notification = _route(bundle, sqlite_directory)
    assert referral.destination == HAMPSHIRE and "school's LA 850" in referral.reason
    assert notification.destination == RIVERSIDE


def test_a_child_concern_notice_gives_no_encompass_notification(ppns, sqlite_directory):
    bundle = ppns[0]
    request = resource(bundle, "ServiceRequest")
    for category in request["category"]:
        for coding in category.get("coding", []):
            if coding["system"] == S.NOTICE_TYPE:
                coding["code"] = "ChildConcern"
    (delivery,) = _route(bundle, sqlite_directory)
    assert delivery.destination == HAMPSHIRE


# Operation Encompass -------------------------------------------------------------------------
def test_encompass_to_the_la_when_the_school_is_not_known(ppns, sqlite_directory):
    bundle = ppns[0]
    _drop_school(bundle)
    referral, notification = _route(bundle, sqlite_directory)
    assert (notification.destination, notification.rule) == (HAMPSHIRE, RULE_ENCOMPASS_LA)
    assert "school is not known" in notification.reason
    assert notification.due.isoformat() == DUE_FAMILY_A
    assert notification.message["id"] != referral.message["id"]


@pytest.mark.parametrize("how", ["name", "code"])
def test_encompass_to_the_la_for_a_home_educated_child(ppns, sqlite_directory, how):
    bundle = ppns[0]
    school = _school_org(bundle)
    school["identifier"] = []
    if how == "name":
        school["name"] = "Elective home education"
    else:
        school["type"] = [{"coding": [{"system": EDUCATION_SETTING, "code": "home-educated"}]}]
    _, notification = _route(bundle, sqlite_directory)
    assert (notification.destination, notification.rule) == (HAMPSHIRE, RULE_ENCOMPASS_LA)
    assert "home-educated" in notification.reason


def test_encompass_to_the_la_when_the_school_is_not_connected(ppns, sqlite_directory):
    bundle = ppns[0]
    _school_org(bundle)["identifier"][0]["value"] = "999104"  # Chalk Hill Academy: known, not connected
    _, notification = _route(bundle, sqlite_directory)
    assert notification.destination == HAMPSHIRE and "999104 is not connected" in notification.reason


def test_encompass_to_a_school_in_another_la(ppns, sqlite_directory):
    bundle = ppns[0]
    _school_org(bundle)["identifier"][0]["value"] = "999102"  # Harbourside Primary, in BCP
    referral, notification = _route(bundle, sqlite_directory)
    assert referral.destination == HAMPSHIRE
    assert notification.destination == "urn:x-safeguarding:agency:school:999102"


def test_encompass_due_time_counts_from_receipt_not_from_the_incident(ppns, sqlite_directory):
    # Received on the Friday before the early May bank holiday 2024: due Tuesday.
    _, notification = _route(ppns[0], sqlite_directory, now=dt.datetime(2024, 5, 3, 15, 0, tzinfo=UTC))
    assert notification.due.isoformat() == "2024-05-07T08:30:00+01:00"
    communication = resource(notification.message, "Communication")
    assert communication["sent"] == "2024-05-03T15:00:00+00:00"
    assert communication["extension"] == [{"url": EXT_DUE_BY, "valueDateTime": "2024-05-07T08:30:00+01:00"}]


def test_encompass_notification_is_deterministic(ppns, sqlite_directory):
    first = _route(ppns[0], sqlite_directory)[1].message
    again = _route(ppns[0], sqlite_directory)[1].message
    assert first == again
    other_child = _route(ppns[1], sqlite_directory)[1].message
    assert other_child["id"] != first["id"]


# Unroutable -----------------------------------------------------------------------------------
def test_la_without_an_agency_is_unroutable(school_referral, sqlite_directory):
    _set_home_postcode(school_referral, "DT1 1AA")  # Dorset (838): in the directory, not connected
    result = _route(school_referral, sqlite_directory)
    assert isinstance(result, Unroutable)
    assert "LA 838 has no agency" in result.reason


def test_no_postcode_and_unknown_school_is_unroutable(school_referral, empty_directory):
    result = _route(school_referral, empty_directory)
    assert isinstance(result, Unroutable)
    assert "SP10" in result.reason and "school 999101 is not in the directory" in result.reason


def test_a_referral_without_a_child_is_unroutable(school_referral, sqlite_directory):
    school_referral["entry"] = [e for e in school_referral["entry"] if e["resource"]["resourceType"] != "Patient"]
    result = _route(school_referral, sqlite_directory)
    assert isinstance(result, Unroutable) and "no child" in result.reason


@pytest.mark.parametrize("breakage", ["no-header", "unknown-event", "garbage-entries"])
def test_malformed_messages_are_unroutable_not_exceptions(school_referral, sqlite_directory, breakage):
    if breakage == "no-header":
        school_referral["entry"] = school_referral["entry"][1:]
    elif breakage == "unknown-event":
        school_referral["entry"][0]["resource"]["eventCoding"]["code"] = "something-else"
    else:
        school_referral["entry"] = [school_referral["entry"][0], "not an entry", {"resource": 3}]
    result = route_message(school_referral, sqlite_directory, now=FAMILY_A_RECEIVED)
    assert isinstance(result, Unroutable) and result.reason


def test_a_concern_record_is_kept_but_sent_to_nobody(school_referral, sqlite_directory):
    school_referral["entry"][0]["resource"]["eventCoding"]["code"] = S.EVENT_CONCERN
    assert route_message(school_referral, sqlite_directory, now=FAMILY_A_RECEIVED) == []


# Outcomes and acknowledgements go where they are addressed ---------------------------------
def test_outcome_goes_back_to_the_referrer(school_referral, sqlite_directory):
    outcome = build_outcome_message(school_referral, "no-further-action", "Needs met by the school's support plan.",
                                    HAMPSHIRE, FAMILY_A_RECEIVED)
    (delivery,) = _route(outcome, sqlite_directory)
    assert (delivery.destination, delivery.rule) == (RIVERSIDE, RULE_ADDRESSED)
    assert delivery.message is outcome


def test_outcome_to_a_police_referrer(ppns, sqlite_directory):
    outcome = build_outcome_message(ppns[0], "accepted-for-assessment", "Section 47 enquiry opened.", HAMPSHIRE,
                                    FAMILY_A_RECEIVED)
    (delivery,) = _route(outcome, sqlite_directory)
    assert delivery.destination == "urn:x-safeguarding:agency:police:DOR"


def test_acknowledgement_goes_to_the_original_sender(school_referral, sqlite_directory):
    ack = build_acknowledgement(school_referral, "fatal-error", "Not delivered to Hampshire within 5 days",
                                "urn:x-safeguarding:agency:gateway:national", FAMILY_A_RECEIVED)
    (delivery,) = _route(ack, sqlite_directory)
    assert delivery.destination == RIVERSIDE


def test_addressed_message_to_an_unknown_agency_is_unroutable(school_referral, sqlite_directory):
    outcome = build_outcome_message(school_referral, "declined", "Not a safeguarding matter.", HAMPSHIRE,
                                    FAMILY_A_RECEIVED)
    outcome["entry"][0]["resource"]["destination"][0]["endpoint"] = "urn:x-safeguarding:agency:school:999999"
    result = _route(outcome, sqlite_directory)
    assert isinstance(result, Unroutable) and "999999 is not an agency" in result.reason
    del outcome["entry"][0]["resource"]["destination"]
    assert "no destination" in _route(outcome, sqlite_directory).reason


def test_routing_reads_the_directory_on_both_backends(ppns, directory):
    # The same rule against the seeded directory on SQLite and PostgreSQL.
    deliveries = _route(ppns[0], directory)
    assert [d.destination for d in deliveries] == [HAMPSHIRE, RIVERSIDE]
    directory.add_agency(Agency("la", "838", "Dorset children's services"))
    _set_home_postcode(ppns[0], "DT1 1AA")
    assert _route(ppns[0], directory)[0].destination == "urn:x-safeguarding:agency:la:838"
