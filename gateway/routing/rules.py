"""Routing rules: who receives a message, and by when.

:func:`route_message` is a pure function of the message Bundle, the
directory and ``now`` (when the gateway received the message: passed in,
never read here). It returns the planned deliveries, or :class:`Unroutable`
with the reason; a message is never silently dropped. ``docs/routing.md``
explains each rule and why.

The original message is delivered as received (it is signed; routing never
edits it); the destination travels beside it in :class:`PlannedDelivery`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from gateway.model import systems as S
from gateway.routing import bundles as B
from gateway.routing.codes import (
    DEFAULT_GATEWAY_AGENCY,
    EDUCATION_SETTING,
    HOME_EDUCATED,
    RULE_ADDRESSED,
    RULE_ENCOMPASS_LA,
    RULE_ENCOMPASS_SCHOOL,
    RULE_NO_RULE,
    RULE_POLICE_NOTICE,
    RULE_REFERRAL,
    RULE_SCHOOL_REFERRAL,
)
from gateway.routing.interfaces import Agency, AgencyDirectory
from gateway.routing.messages import build_acknowledgement, build_encompass_notification, build_outcome_message
from gateway.routing.places import normalise_district
from gateway.routing.schoolday import LOCAL_TIMEZONE, next_school_day_start

__all__ = ["PlannedDelivery", "Unroutable", "build_acknowledgement", "build_encompass_notification",
           "build_outcome_message", "is_domestic_abuse_notice", "route_message"]

_HOME_EDUCATED_NAME = re.compile(r"home[\s-]*educat|elective\s+home", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class PlannedDelivery:
    """One message for one agency.

    ``destination`` is the agency URI; ``message`` the Bundle to deliver (the
    original as received, or one the gateway built); ``rule`` the rule's name
    and ``reason`` a sentence an operator can read; ``due`` the time by which
    it must have arrived, or ``None`` when no deadline applies.
    """

    destination: str
    message: dict
    rule: str
    reason: str
    due: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Unroutable:
    """A message no rule could deliver, and why (for the operators' queue)."""

    message_id: str | None
    rule: str
    reason: str


def route_message(bundle: dict, directory: AgencyDirectory, *, now: dt.datetime,
                  gateway_agency: str = DEFAULT_GATEWAY_AGENCY,
                  timezone: str = LOCAL_TIMEZONE) -> list[PlannedDelivery] | Unroutable:
    """Return the deliveries that ``bundle``, received at ``now``, must make, or :class:`Unroutable`.

    * a response (acknowledgement), a referral outcome or an Operation
      Encompass notification goes to its ``MessageHeader.destination``;
    * a referral goes to children's services of the child's home LA
      (:func:`_route_referral`), and a police domestic-abuse notice also
      gives an Operation Encompass notification (:func:`_encompass`);
    * a concern record that is not a referral (``safeguarding-concern``) is
      kept but sent to nobody: the empty list;
    * anything else is :class:`Unroutable`.

    Never raises for a malformed message: that is unroutable, with the reason.
    """
    mid = B.message_id(bundle)
    header = B.message_header(bundle)
    if header is None:
        return Unroutable(mid, RULE_NO_RULE, "the message has no MessageHeader as its first entry")
    event = B.event_code(header)
    if isinstance(header.get("response"), dict) or event in (S.EVENT_OUTCOME, S.EVENT_ENCOMPASS):
        return _route_addressed(bundle, header, mid, directory)
    if event == S.EVENT_CONCERN:
        return []
    if event != S.EVENT_REFERRAL:
        return Unroutable(mid, RULE_NO_RULE, f"no routing rule for event {event!r}")
    return _route_referral(bundle, header, mid, directory, now, gateway_agency, timezone)


def _route_addressed(bundle: dict, header: dict, mid: str | None,
                     directory: AgencyDirectory) -> list[PlannedDelivery] | Unroutable:
    destinations = B.destination_endpoints(header)
    if not destinations:
        return Unroutable(mid, RULE_ADDRESSED, "the message names no destination (MessageHeader.destination)")
    out = []
    for uri in destinations:
        agency = directory.agency(uri)
        if agency is None:
            return Unroutable(mid, RULE_ADDRESSED, f"destination {uri} is not an agency in the directory")
        out.append(PlannedDelivery(agency.uri, bundle, RULE_ADDRESSED, f"addressed to {agency.name} ({uri})"))
    return out


def is_domestic_abuse_notice(bundle: dict) -> bool:
    """Return whether ``bundle`` is a police notice about domestic abuse.

    A police sender (``MessageHeader.source.endpoint``) and a focus
    ServiceRequest whose PPN notice type is ``DomesticAbuse`` or, without a
    notice type, whose category is ``domestic-abuse``.
    """
    header = B.message_header(bundle) or {}
    parsed = S.parse_agency_uri(B.source_endpoint(header) or "")
    if parsed is None or parsed[0] != "police":
        return False
    request = B.focus_request(bundle) or {}
    codings = [c for cat in request.get("category") or () if isinstance(cat, dict)
               for c in cat.get("coding") or () if isinstance(c, dict)]
    notice_types = [c.get("code") for c in codings if c.get("system") == S.NOTICE_TYPE]
    if notice_types:
        return "DomesticAbuse" in notice_types
    return any(c.get("system") == S.CONCERN_CATEGORY and c.get("code") == "domestic-abuse" for c in codings)


def _school_urn(bundle: dict, patient: dict) -> tuple[dict | None, str | None]:
    school = B.child_school(bundle, patient)
    return school, (B.identifier_value(school, S.SCHOOL_URN) if school is not None else None)


def _is_home_educated(school: dict | None) -> bool:
    if school is None:
        return False
    for concept in school.get("type") or ():
        for coding in (concept or {}).get("coding") or ():
            if coding.get("system") == EDUCATION_SETTING and coding.get("code") == HOME_EDUCATED:
                return True
    return bool(_HOME_EDUCATED_NAME.search(school.get("name") or ""))


def _route_referral(bundle: dict, header: dict, mid: str | None, directory: AgencyDirectory, now: dt.datetime,
                    gateway_agency: str, timezone: str) -> list[PlannedDelivery] | Unroutable:
    sender = S.parse_agency_uri(B.source_endpoint(header) or "")
    sender_kind = sender[0] if sender else None
    rule = {"school": RULE_SCHOOL_REFERRAL, "police": RULE_POLICE_NOTICE}.get(sender_kind, RULE_REFERRAL)
    patient = B.child(bundle)
    if patient is None:
        return Unroutable(mid, rule, "the referral names no child (no ServiceRequest.subject Patient)")

    # The child's home LA: where the child lives, never where the incident happened.
    la_code, why = None, []
    postcode = B.home_postcode(patient)
    if postcode is None:
        why.append("the child's home postcode is not known")
    elif normalise_district(postcode) is None:
        why.append(f"the child's home postcode {postcode!r} is not a UK postcode")
    else:
        la_code = directory.la_for_postcode(postcode)
        if la_code is None:
            why.append(f"postcode district {normalise_district(postcode)} (home postcode {postcode}) is not in "
                       "the directory")
        else:
            why.append(f"home postcode {postcode} is in LA {la_code}")

    # If the home LA is not known: the LA of the child's school (or of the sending school).
    if la_code is None:
        _, urn = _school_urn(bundle, patient)
        if urn is None and sender_kind == "school":
            urn = sender[1]
        if urn is None:
            why.append("no school is known")
        else:
            la_code = directory.la_of_school(urn)
            why.append(f"so the school's LA {la_code}" if la_code else f"school {urn} is not in the directory")
    if la_code is None:
        return Unroutable(mid, rule, "no destination: " + "; ".join(why))
    la = directory.agency_by_code("la", la_code)
    if la is None:
        return Unroutable(mid, rule, "; ".join(why) + f", but LA {la_code} has no agency in the directory")

    deliveries = [PlannedDelivery(la.uri, bundle, rule, f"to {la.name}: " + "; ".join(why))]
    if is_domestic_abuse_notice(bundle):
        deliveries.append(_encompass(bundle, patient, la, mid, directory, now, gateway_agency, timezone))
    return deliveries


def _encompass(bundle: dict, patient: dict, la: Agency, mid: str | None, directory: AgencyDirectory,
               now: dt.datetime, gateway_agency: str, timezone: str) -> PlannedDelivery:
    """Operation Encompass: the child's school hears before the next school day; else the home LA."""
    school, urn = _school_urn(bundle, patient)
    due = next_school_day_start(now, timezone=timezone)
    destination, rule = la, RULE_ENCOMPASS_LA
    if _is_home_educated(school):
        reason = "the child is home-educated"
    elif urn is None:
        reason = "the child's school is not known" if school is None else \
            f"the child's school ({school.get('name') or 'unnamed'}) is named without a URN"
    else:
        school_agency = directory.school_agency(urn)
        if school_agency is None:
            reason = f"school {urn} is not connected to the gateway"
        else:
            destination, rule, reason = school_agency, RULE_ENCOMPASS_SCHOOL, f"the child's school is {urn}"
    if destination is la:
        reason += f", so the notification goes to {la.name} instead"
    message = build_encompass_notification(bundle, destination, due=due, now=now, gateway_agency=gateway_agency,
                                           timezone=timezone)
    return PlannedDelivery(destination.uri, message, rule,
                           f"Operation Encompass to {destination.name}: {reason}; due before the next school day",
                           due)
