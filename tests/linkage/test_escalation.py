"""Escalation rules: the rules file, Family A end to end from translated messages, and each rule
where it fires, where it narrowly does not, and that it does not fire again on an unrelated event."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

import pytest

from gateway.adapters import get_adapter
from gateway.adapters.translate import translate_stream
from gateway.linkage import escalation
from gateway.linkage.escalation import KINDS, RulesError, evaluate, load_rules, parse_rules
from gateway.linkage.events import Event, event_from_bundle
from gateway.model import systems as S
from tests.routing.helpers import DORSET_POLICE, FAMILY_A_RECEIVED, HAMPSHIRE, RIVERSIDE, SAMPLES, translate

UK = ZoneInfo("Europe/London")
NAMES = {DORSET_POLICE: "Dorset Police", RIVERSIDE: "Riverside Infant School",
         HAMPSHIRE: "Hampshire children's services"}
HAMPSHIRE_POLICE = "urn:x-safeguarding:agency:police:HAM"
OTHER_SCHOOL = "urn:x-safeguarding:agency:school:999102"
GATEWAY = "urn:x-safeguarding:agency:gateway:national"


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def uk(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UK)


_counter = iter(range(1, 10_000))


def event(when: dt.datetime, agency: str = DORSET_POLICE, *, kind: str = S.EVENT_REFERRAL, person_id: str = "mia",
          **fields) -> Event:
    """An event that happened at ``when`` and reached the gateway an hour later."""
    parsed = S.parse_agency_uri(agency)
    return Event(message_id=f"m{next(_counter)}", person_id=person_id, agency=agency, agency_kind=parsed[0],
                 kind=kind, occurred_at=when, recorded_at=when, received_at=when + dt.timedelta(hours=1), **fields)


def da_notice(when, agency=DORSET_POLICE, risk=None, **fields) -> Event:
    return event(when, agency, notice_type="DomesticAbuse", categories=("domestic-abuse",), risk=risk,
                 referral=True, **fields)


def child_concern(when, agency=DORSET_POLICE, **fields) -> Event:
    return event(when, agency, notice_type="ChildConcern", categories=("other",), referral=True, **fields)


def disclosure(when, agency=RIVERSIDE, **fields) -> Event:
    return event(when, agency, kind=S.EVENT_CONCERN, categories=("domestic-abuse",), disclosure=True, **fields)


def school_referral(when, agency=RIVERSIDE, **fields) -> Event:
    return event(when, agency, categories=("neglect",), referral=True, **fields)


def outcome(when, decision: str, **fields) -> Event:
    return event(when, HAMPSHIRE, kind=S.EVENT_OUTCOME, outcome=decision, **fields)


def encompass(when) -> Event:
    return event(when, GATEWAY, kind=S.EVENT_ENCOMPASS)


def fired(rules, events, new, now=None) -> dict[str, escalation.Firing]:
    now = now or new.received_at
    return {f.rule_id: f for f in evaluate(rules, events, new, now=now, agency_names=NAMES)}


# The rules file ------------------------------------------------------------------------------------
def test_the_five_rules_of_the_issue(rules):
    assert [r.id for r in rules] == ["multi-agency-concerns", "domestic-abuse-notice-then-disclosure",
                                     "repeated-lower-level-notices", "dash-high", "concern-after-closed-referral"]
    assert sorted(r.kind for r in rules) == sorted(KINDS)
    for rule in rules:
        assert rule.title and rule.text and len(rule.rationale) > 80 and rule.source


# Family A, from the messages as the gateway translates them -------------------------------------------
@pytest.fixture(scope="module")
def family_a() -> tuple[Event, Event, Event]:
    """Mia's and Leo's PPNs (2018-09-09, received 2018-09-30) and Mia's disclosure at school (2019-03-14)."""
    mia_ppn, leo_ppn = translate("ppn-xml", "ppn-sample.xml")
    out = io.StringIO()
    disclosed_received = dt.datetime(2019, 3, 14, 12, 5, tzinfo=dt.timezone.utc)
    with open(SAMPLES / "schoolsafe-sample.csv", "rb") as stream:
        translate_stream(get_adapter("schoolsafe-csv"), stream, "schoolsafe-sample.csv", out,
                         now=disclosed_received, include_all=True)
    school_disclosure = json.loads(out.getvalue().splitlines()[0])
    return (event_from_bundle(mia_ppn, person_id="mia", received_at=FAMILY_A_RECEIVED),
            event_from_bundle(leo_ppn, person_id="leo", received_at=FAMILY_A_RECEIVED),
            event_from_bundle(school_disclosure, person_id="mia", received_at=disclosed_received))


def test_family_a_disclosure_alerts_hampshire(rules, family_a):
    mia_ppn, leo_ppn, school = family_a
    found = fired(rules, [mia_ppn, leo_ppn, school], school)
    assert set(found) == {"domestic-abuse-notice-then-disclosure", "multi-agency-concerns"}

    sequence = found["domestic-abuse-notice-then-disclosure"]
    assert sequence.person_id == "mia"
    assert sequence.message_ids == (mia_ppn.message_id, leo_ppn.message_id, school.message_id)
    assert sequence.agencies == (DORSET_POLICE, RIVERSIDE)
    assert sequence.reason == ("Police domestic-abuse notice of 2018-09-09 (Dorset Police) followed by a school "
                               "disclosure on 2019-03-14 (Riverside Infant School), within 12 months")
    multi = found["multi-agency-concerns"]
    assert multi.message_ids == sequence.message_ids
    assert multi.reason == ("Concerns from 2 agencies within 12 months: Dorset Police (2018-09-09, 2 messages), "
                            "Riverside Infant School (2019-03-14)")


def test_family_a_household_notice_alone_is_enough(rules, family_a):
    # Only Leo's notice (a household member's) is known: the rule still fires for Mia.
    _, leo_ppn, school = family_a
    found = fired(rules, [leo_ppn, school], school)
    assert found["domestic-abuse-notice-then-disclosure"].message_ids == (leo_ppn.message_id, school.message_id)
    assert found["domestic-abuse-notice-then-disclosure"].person_id == "mia"


def test_family_a_notices_alone_fire_nothing(rules, family_a):
    mia_ppn, leo_ppn, _ = family_a
    assert fired(rules, [mia_ppn, leo_ppn], leo_ppn) == {}


def test_unknown_agency_names_fall_back_to_kind_and_code(rules, family_a):
    mia_ppn, _, school = family_a
    [first, *_] = [f for f in evaluate(rules, [mia_ppn, school], school, now=school.received_at)
                   if f.rule_id == "domestic-abuse-notice-then-disclosure"]
    assert first.reason == ("Police domestic-abuse notice of 2018-09-09 (police force DOR) followed by a school "
                            "disclosure on 2019-03-14 (school 999101), within 12 months")


# Multi-agency concerns ---------------------------------------------------------------------------------
def test_multi_agency_fires_within_the_window_edge(rules):
    police = child_concern(uk(2019, 1, 10, 9, 0))
    school = school_referral(uk(2020, 1, 10, 9, 0))  # exactly 12 months later: included
    assert "multi-agency-concerns" in fired(rules, [police, school], school)


def test_multi_agency_not_after_the_window(rules):
    police = child_concern(uk(2019, 1, 10, 9, 0))
    school = school_referral(uk(2020, 1, 10, 9, 1))
    assert "multi-agency-concerns" not in fired(rules, [police, school], school)


def test_multi_agency_not_one_agency(rules):
    first, second = school_referral(uk(2019, 1, 10, 9, 0)), school_referral(uk(2019, 2, 10, 9, 0))
    assert "multi-agency-concerns" not in fired(rules, [first, second], second)


def test_multi_agency_two_schools_are_two_agencies(rules):
    first, second = school_referral(uk(2019, 1, 10, 9, 0)), school_referral(uk(2019, 2, 10, 9, 0), OTHER_SCHOOL)
    assert "multi-agency-concerns" in fired(rules, [first, second], second)


def test_multi_agency_gateway_messages_and_outcomes_are_not_concerns(rules):
    police = child_concern(uk(2019, 1, 10, 9, 0))
    notified = encompass(uk(2019, 1, 10, 10, 0))
    decided = outcome(uk(2019, 1, 11, 9, 0), "no-further-action")
    assert fired(rules, [police, notified, decided], decided) == {}
    assert "multi-agency-concerns" not in fired(rules, [police, notified, decided], police)


def test_multi_agency_does_not_fire_again_on_an_unrelated_event(rules):
    police, school = child_concern(uk(2019, 1, 10, 9, 0)), school_referral(uk(2019, 2, 10, 9, 0))
    assert "multi-agency-concerns" in fired(rules, [police, school], school)
    later = outcome(uk(2019, 2, 11, 9, 0), "accepted-for-assessment")
    assert fired(rules, [police, school, later], later) == {}


def test_multi_agency_late_notice_joins_an_earlier_window(rules):
    # A notice that reaches the gateway late, about an incident before the school's referral.
    school = school_referral(uk(2019, 6, 7, 9, 0))
    late = dataclasses.replace(child_concern(uk(2019, 5, 30, 9, 0)), received_at=uk(2019, 6, 20, 9, 0))
    found = fired(rules, [school, late], late)
    assert found["multi-agency-concerns"].message_ids == (late.message_id, school.message_id)


# Police domestic-abuse notice, then a school disclosure --------------------------------------------------
RULE_DA = "domestic-abuse-notice-then-disclosure"


def test_sequence_not_after_12_months(rules):
    police = da_notice(uk(2018, 9, 9, 3, 0))
    assert RULE_DA in fired(rules, [police], disclosure(uk(2019, 9, 9, 3, 0)))
    assert RULE_DA not in fired(rules, [police], disclosure(uk(2019, 9, 9, 3, 1)))


def test_sequence_not_a_child_concern_notice(rules):
    assert RULE_DA not in fired(rules, [child_concern(uk(2018, 9, 9, 3, 0))], disclosure(uk(2019, 3, 14, 9, 0)))


def test_sequence_notice_without_type_but_domestic_abuse_category(rules):
    police = event(uk(2018, 9, 9, 3, 0), HAMPSHIRE_POLICE, categories=("domestic-abuse",), referral=True)
    assert RULE_DA in fired(rules, [police], disclosure(uk(2019, 3, 14, 9, 0)))


def test_sequence_not_a_school_record_without_disclosure(rules):
    assert RULE_DA not in fired(rules, [da_notice(uk(2018, 9, 9, 3, 0))], school_referral(uk(2019, 3, 14, 9, 0)))


def test_sequence_order_matters(rules):
    # The disclosure came first and the notice is about a later incident: not this pattern.
    told = disclosure(uk(2019, 3, 14, 9, 0))
    police = da_notice(uk(2019, 4, 1, 3, 0))
    assert RULE_DA not in fired(rules, [told, police], police)


def test_sequence_fires_when_the_notice_arrives_after_the_disclosure(rules):
    # The notice's incident was before the disclosure, but it reached the gateway after it.
    told = disclosure(uk(2019, 3, 14, 9, 0))
    police = dataclasses.replace(da_notice(uk(2019, 3, 1, 3, 0)), received_at=uk(2019, 3, 20, 9, 0))
    found = fired(rules, [told, police], police)
    assert found[RULE_DA].message_ids == (police.message_id, told.message_id)


def test_sequence_does_not_fire_again_on_an_unrelated_event(rules):
    police, told = da_notice(uk(2018, 9, 9, 3, 0)), disclosure(uk(2019, 3, 14, 9, 0))
    referral = school_referral(uk(2019, 6, 7, 9, 0))
    found = fired(rules, [police, told, referral], referral)
    assert RULE_DA not in found
    assert "multi-agency-concerns" in found  # a new concern does join the multi-agency picture


# Three or more lower-level notices in three months -----------------------------------------------------------
RULE_COUNT = "repeated-lower-level-notices"


def test_count_fires_on_the_third(rules):
    notices = [da_notice(uk(2019, 1, 5, 22, 0), risk="standard"), child_concern(uk(2019, 2, 1, 18, 0)),
               da_notice(uk(2019, 4, 5, 22, 0))]  # no DASH level: not assessed counts as lower-level
    found = fired(rules, notices, notices[2])
    assert found[RULE_COUNT].message_ids == tuple(n.message_id for n in notices)
    assert found[RULE_COUNT].reason == (
        "3 incidents with lower-level police notices within 3 months: 2019-01-05 (Dorset Police); "
        "2019-02-01 (Dorset Police); 2019-04-05 (Dorset Police)")


def test_count_not_two(rules):
    notices = [child_concern(uk(2019, 1, 5, 22, 0)), child_concern(uk(2019, 2, 1, 18, 0))]
    assert RULE_COUNT not in fired(rules, notices, notices[1])


def test_count_not_with_a_medium_dash(rules):
    notices = [da_notice(uk(2019, 1, 5, 22, 0), risk="standard"), da_notice(uk(2019, 2, 1, 18, 0), risk="medium"),
               child_concern(uk(2019, 3, 5, 22, 0))]
    assert RULE_COUNT not in fired(rules, notices, notices[2])


def test_count_not_beyond_three_months(rules):
    notices = [child_concern(uk(2019, 1, 5, 22, 0)), child_concern(uk(2019, 2, 1, 18, 0)),
               child_concern(uk(2019, 4, 5, 22, 1))]
    assert RULE_COUNT not in fired(rules, notices, notices[2])


def test_count_siblings_notices_of_one_incident_count_once(rules):
    mia = da_notice(uk(2019, 1, 5, 22, 0))
    leo = dataclasses.replace(da_notice(uk(2019, 1, 5, 22, 0)), person_id="leo")
    third = child_concern(uk(2019, 2, 1, 18, 0))
    assert RULE_COUNT not in fired(rules, [mia, leo, third], third)
    fourth = child_concern(uk(2019, 3, 1, 18, 0))
    assert RULE_COUNT in fired(rules, [mia, leo, third, fourth], fourth)


def test_count_does_not_fire_again_on_an_unrelated_event(rules):
    notices = [child_concern(uk(2019, 1, 5, 22, 0)), child_concern(uk(2019, 2, 1, 18, 0)),
               child_concern(uk(2019, 3, 5, 22, 0))]
    assert RULE_COUNT in fired(rules, notices, notices[2])
    told = disclosure(uk(2019, 3, 6, 9, 0), agency=RIVERSIDE)
    assert RULE_COUNT not in fired(rules, notices + [told], told)


# DASH High ---------------------------------------------------------------------------------------------------
def test_dash_high_fires(rules):
    police = da_notice(uk(2019, 2, 1, 23, 0), risk="high")
    found = fired(rules, [], police)
    assert found["dash-high"].message_ids == (police.message_id,)
    assert found["dash-high"].reason == "DASH level High: Dorset Police on 2019-02-01"


def test_dash_medium_does_not(rules):
    assert "dash-high" not in fired(rules, [], da_notice(uk(2019, 2, 1, 23, 0), risk="medium"))


def test_a_school_rating_is_not_a_dash_level(rules):
    assert "dash-high" not in fired(rules, [], school_referral(uk(2019, 2, 1, 9, 0), risk="high"))


def test_dash_high_does_not_fire_again_on_an_unrelated_event(rules):
    police = da_notice(uk(2019, 2, 1, 23, 0), risk="high")
    later = child_concern(uk(2019, 2, 20, 23, 0))
    assert "dash-high" not in fired(rules, [police, later], later)


# A new concern within 12 months of a declined or no-further-action referral ------------------------------------
RULE_AFTER = "concern-after-closed-referral"


@pytest.mark.parametrize("decision", ["declined", "no-further-action"])
def test_after_outcome_fires(rules, decision):
    decided = outcome(uk(2019, 1, 10, 11, 0), decision)
    concern = school_referral(uk(2019, 6, 7, 9, 0))
    found = fired(rules, [decided, concern], concern)
    assert found[RULE_AFTER].message_ids == (decided.message_id, concern.message_id)
    label = {"declined": "declined", "no-further-action": "no further action"}[decision]
    assert found[RULE_AFTER].reason == (
        f"Referral decided {label} on 2019-01-10 (Hampshire children's services), followed by a new concern on "
        "2019-06-07 (Riverside Infant School), within 12 months")


@pytest.mark.parametrize("decision", ["accepted-for-assessment", "signposted-early-help"])
def test_after_outcome_not_other_decisions(rules, decision):
    concern = school_referral(uk(2019, 6, 7, 9, 0))
    assert RULE_AFTER not in fired(rules, [outcome(uk(2019, 1, 10, 11, 0), decision), concern], concern)


def test_after_outcome_not_after_12_months(rules):
    decided = outcome(uk(2019, 1, 10, 11, 0), "declined")
    assert RULE_AFTER in fired(rules, [decided], school_referral(uk(2020, 1, 10, 11, 0)))
    assert RULE_AFTER not in fired(rules, [decided], school_referral(uk(2020, 1, 10, 11, 1)))


def test_after_outcome_not_a_concern_before_the_decision(rules):
    earlier = school_referral(uk(2019, 1, 9, 9, 0))
    decided = outcome(uk(2019, 1, 10, 11, 0), "declined")
    assert RULE_AFTER not in fired(rules, [earlier, decided], decided)


def test_after_outcome_does_not_fire_again_on_an_unrelated_event(rules):
    decided = outcome(uk(2019, 1, 10, 11, 0), "declined")
    concern = school_referral(uk(2019, 6, 7, 9, 0))
    notified = encompass(uk(2019, 6, 8, 9, 0))
    assert fired(rules, [decided, concern, notified], notified) == {}


# Evaluation in general ---------------------------------------------------------------------------------------
def test_event_dated_in_the_future_takes_part_in_nothing(rules):
    police = da_notice(uk(2018, 9, 9, 3, 0))
    told = disclosure(uk(2019, 3, 14, 9, 0))
    assert fired(rules, [police, told], told, now=uk(2019, 3, 14, 9, 0)) != {}
    assert fired(rules, [police, told], told, now=uk(2019, 3, 14, 8, 0)) == {}


def test_a_message_listed_twice_counts_once(rules):
    notices = [child_concern(uk(2019, 1, 5, 22, 0)), child_concern(uk(2019, 2, 1, 18, 0))]
    assert RULE_COUNT not in fired(rules, notices + notices, notices[1])


def test_evaluate_rejects_naive_now(rules):
    with pytest.raises(ValueError, match="aware"):
        evaluate(rules, [], child_concern(uk(2019, 1, 5, 22, 0)), now=dt.datetime(2019, 1, 6))


# Checking the file -----------------------------------------------------------------------------------------------
GOOD_RULE = """
  - id: r1
    title: A rule
    text: What the worker reads.
    rationale: Why.
    source: Where from.
    kind: level
    parameters:
      levels: [high]
      match: {is: concern}
"""
HEADER = """
version: "1"
matchers:
  concern:
    description: concerns
    kind: [safeguarding-referral, safeguarding-concern]
rules:
"""


def test_a_minimal_file_loads(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(HEADER + GOOD_RULE, encoding="utf-8")
    [rule] = load_rules(path)
    assert (rule.id, rule.kind, rule.settings["levels"]) == ("r1", "level", ("high",))


@pytest.mark.parametrize("change, message", [
    (("kind: level", "kind: levels"), r"rule 1 \(r1\): kind 'levels' is unknown; expected one of multi_agency"),
    (("    rationale: Why.\n", ""), r"rule 1 \(r1\): 'rationale' is missing or empty \(why the rule exists"),
    (("    source: Where from.\n", ""), r"rule 1 \(r1\): 'source' is missing or empty"),
    (("match: {is: concern}", "match: {is: concerns}"), r"no matcher named 'concerns' \(known: concern\)"),
    (("match: {is: concern}", "match: {colour: red}"), r"parameters.match.colour: unknown key"),
    (("match: {is: concern}", "match: {agency_kind: health}"), r"'health' is not a value of agency_kind"),
    (("match: {is: concern}", "match: {disclosure: 'yes'}"), r"'yes' is not a value of disclosure"),
    (("levels: [high]", "levels: high"), r"parameters.levels: expected a non-empty list"),
    (("levels: [high]", "levels: [high]\n      colour: red"), r"unknown parameters colour"),
    (("id: r1", "id: [r1]"), r"rule 1: 'id' is missing or empty"),
])
def test_malformed_rules_are_named(change, message):
    with pytest.raises(RulesError, match=message):
        parse_rules(HEADER + GOOD_RULE.replace(*change), name="rules.yaml")


@pytest.mark.parametrize("window", ["12 moths", "0 months", "12", "twelve months", "-1 days", "1.5 months"])
def test_bad_window(window):
    text = HEADER + f"""
  - id: w
    title: t
    text: t
    rationale: r
    source: s
    kind: count_within
    parameters:
      window: {window}
      min_count: 3
      match: {{is: concern}}
"""
    with pytest.raises(RulesError, match=r"rules.yaml: rule 1 \(w\): parameters.window: .* is not a period such as "
                                         r"'12 months'"):
        parse_rules(text, name="rules.yaml")


def test_bad_outcome_code():
    text = HEADER + """
  - id: o
    title: t
    text: t
    rationale: r
    source: s
    kind: after_outcome
    parameters:
      window: 12 months
      outcomes: [closed]
      then: {label: a new concern, match: {is: concern}}
"""
    with pytest.raises(RulesError, match=r"parameters.outcomes: \['closed'\] not among accepted-for-assessment"):
        parse_rules(text, name="rules.yaml")


def test_duplicate_ids_and_cycles():
    with pytest.raises(RulesError, match="id 'r1' is used by an earlier rule"):
        parse_rules(HEADER + GOOD_RULE + GOOD_RULE)
    cycle = HEADER.replace("    description: concerns\n", "    is: other\n") + "  []\n"
    cycle = cycle.replace("rules:\n", "  other:\n    is: concern\nrules:\n")
    with pytest.raises(RulesError, match="refers to itself"):
        parse_rules(cycle)


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(RulesError, match=r"rules.yaml: not valid YAML at line 3, column 1"):
        parse_rules("rules:\n  - id: [\n", name="rules.yaml")
    with pytest.raises(RulesError, match="cannot read the escalation rules"):
        load_rules(tmp_path / "absent.yaml")


# The generated table in docs/escalation.md ----------------------------------------------------------------------
def test_docs_table_is_up_to_date():
    assert escalation.main(["--check"]) == 0


def test_docs_table_names_every_rule(rules):
    table = escalation.rules_table(rules)
    for rule in rules:
        assert f"`{rule.id}`" in table and rule.title in table
    assert "`window`: 12 months" in table
