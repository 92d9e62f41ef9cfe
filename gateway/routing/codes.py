"""Code systems, codes and extensions that routing adds to the model.

They live here, next to the rules that use them, rather than in
:mod:`gateway.model.systems`; they sit under the same base URL and
``docs/routing.md`` documents each one.
"""

from __future__ import annotations

from gateway.model.systems import BASE, agency_uri, extension_url

#: The agency the gateway itself is, when no other is configured (``gateway certs init`` default).
DEFAULT_GATEWAY_AGENCY = agency_uri("gateway", "national")

#: How a message reaches an agency: pushed to its HTTPS endpoint, or kept in its mailbox for it to pull.
DELIVERY_PUSH = "push"
DELIVERY_MAILBOX = "mailbox"
DELIVERY_MODES = (DELIVERY_PUSH, DELIVERY_MAILBOX)

# A local authority's decision on a referral ---------------------------------------
REFERRAL_DECISION = f"{BASE}/CodeSystem/referral-decision"
#: code -> (display, the FHIR Task.status it gives)
REFERRAL_DECISIONS: dict[str, tuple[str, str]] = {
    "accepted-for-assessment": ("Accepted for assessment", "accepted"),
    "no-further-action": ("No further action", "completed"),
    "signposted-early-help": ("Signposted to early help", "completed"),
    "declined": ("Declined", "rejected"),
}

# Where a child is educated: marks a home-educated child's "school" ---------------------
EDUCATION_SETTING = f"{BASE}/CodeSystem/education-setting"
HOME_EDUCATED = "home-educated"

#: Communication extension: when an Operation Encompass notification must have been read by.
EXT_DUE_BY = extension_url("due-by")

#: MessageHeader.response.code values (FHIR ``response-code``).
ACK_CODES = ("ok", "transient-error", "fatal-error")

# Rule names (PlannedDelivery.rule / Unroutable.rule) -------------------------------------
RULE_SCHOOL_REFERRAL = "school-referral-to-home-la"
RULE_POLICE_NOTICE = "police-notice-to-home-la"
RULE_REFERRAL = "referral-to-home-la"
RULE_ENCOMPASS_SCHOOL = "operation-encompass-to-school"
RULE_ENCOMPASS_LA = "operation-encompass-to-la"
RULE_ADDRESSED = "addressed-message"
RULE_NO_RULE = "no-routing-rule"
#: The rules that deliver an Operation Encompass notification (to a school, or to an LA for a child without one).
ENCOMPASS_RULES = (RULE_ENCOMPASS_SCHOOL, RULE_ENCOMPASS_LA)
#: The rule names of the gateway's own deliveries start with these: an escalation alert's is
#: ``escalation:<rule id>`` (:func:`escalation_rule`), a deadline reminder's ``deadline-<action>``
#: (:func:`deadline_rule`). The inbox tells them apart by them (gateway.delivery.inbox.RULE_KINDS).
ESCALATION_RULE_PREFIX = "escalation:"
DEADLINE_RULE_PREFIX = "deadline-"


def escalation_rule(rule_id: str) -> str:
    """The routing rule of an escalation alert raised by the escalation rule ``rule_id``."""
    return f"{ESCALATION_RULE_PREFIX}{rule_id}"


def deadline_rule(action: str) -> str:
    """The routing rule of a deadline's reminder or escalation ``action``."""
    return f"{DEADLINE_RULE_PREFIX}{action}"
