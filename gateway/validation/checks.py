"""The checks the referral standard names, over one indexed message.

:class:`MessageView` walks a Bundle dict once, indexing its entries by
resource type and by full URL and finding the message's main resources (the
MessageHeader, the child's Patient, the ServiceRequest, the referrer).

Most items of the standard are decided by their FHIRPath invariant
(:mod:`gateway.validation.rules`). The functions here are registered under
the names ``standard.yaml`` gives them and are of two kinds, both taking the
view and the item and yielding a :class:`Gap` for every way the item is
missing or wrong:

- a *check* decides an item FHIRPath cannot say (identifier check digits,
  postcodes, timeliness) and yields nothing when the item is present;
- an *explainer* (``explain:``) only words what is missing once the
  invariant has failed, for the sender; it never decides, and when it yields
  nothing the item's own action is told.

They never raise on odd input: an element of the wrong JSON type counts as
absent, and the FHIR base validation reports the type error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from functools import lru_cache
from zoneinfo import ZoneInfo

from gateway.model import identifiers as ids
from gateway.model import systems as S
from gateway.model.terminology import CONCERN_CONTEXT, MESSAGE_EVENTS
from gateway.validation import extensions as X
from gateway.validation.standard import concrete_expression

UK = ZoneInfo("Europe/London")
DAY = dt.timedelta(hours=24)
# A record a few minutes "in the future" is clock skew between systems, not a wrong date.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)

_IDENTIFIER_CHECKS = {
    S.NHS_NUMBER: ids.check_nhs_number,
    S.UPN: ids.check_upn,
    S.SCHOOL_URN: ids.check_urn,
    S.DFE_LA: ids.check_la_number,
}


@dataclasses.dataclass(frozen=True)
class Gap:
    """One way an item is missing or wrong.

    ``expression`` is the FHIRPath of the place (``None``: the item's own place
    in this message); ``text`` tells the sender what to add (``None``: the
    item's action).
    """

    expression: str | None = None
    text: str | None = None


Check = Callable[["MessageView", object], Iterator[Gap]]
CHECKS: dict[str, Check] = {}


def check(name: str):
    """Register a check function under ``name`` (the name ``standard.yaml`` uses)."""
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn
    return register


# Small accessors that treat a value of the wrong JSON type as absent ----------------------
def _d(value) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value) -> list:
    return value if isinstance(value, list) else []


def _s(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def ext_value(ext: dict):
    """Return the ``value[x]`` of an extension dict, or ``None``."""
    for key, value in ext.items():
        if key.startswith("value"):
            return value
    return None


def extensions_by_url(resource: dict) -> dict[str, list[dict]]:
    """Return ``{url: [extension, ...]}`` for a resource's top-level extensions."""
    out: dict[str, list[dict]] = {}
    for ext in _l(resource.get("extension")):
        if isinstance(ext, dict) and isinstance(ext.get("url"), str):
            out.setdefault(ext["url"], []).append(ext)
    return out


def has_ext(exts: dict[str, list[dict]], url: str) -> bool:
    """Return True when an extension ``url`` with a non-empty value is present."""
    return any(ext_value(e) not in (None, "", [], {}) for e in exts.get(url, ()))


def first_value(exts: dict[str, list[dict]], url: str):
    """Return the value of the first extension ``url``, or ``None``."""
    for e in exts.get(url, ()):
        value = ext_value(e)
        if value is not None:
            return value
    return None


@lru_cache(maxsize=4096)
def identifier_problem(system: str, value: str) -> str | None:
    """Return why ``value`` is not a valid identifier of ``system``, or ``None`` (also for unchecked systems)."""
    fn = _IDENTIFIER_CHECKS.get(system)
    return fn(value).problem if fn else None


def identifier_usable(ident: dict) -> bool:
    """Return True for an identifier with a value that is not marked invalid and passes its check."""
    value = _s(ident.get("value"))
    if not value:
        return False
    if any(_d(e).get("url") == S.EXT_IDENTIFIER_INVALID for e in _l(ident.get("extension"))):
        return False
    return identifier_problem(_s(ident.get("system")), value) is None


def usable_identifier(resource: dict | None, system: str) -> dict | None:
    """Return the first usable identifier of ``system`` on ``resource``, or ``None``."""
    for ident in _l(_d(resource).get("identifier")):
        if isinstance(ident, dict) and ident.get("system") == system and identifier_usable(ident):
            return ident
    return None


def _has_name(resource: dict) -> bool:
    for name in _l(resource.get("name")):
        name = _d(name)
        if _s(name.get("text")) or _s(name.get("family")) or any(_s(g) for g in _l(name.get("given"))):
            return True
    return False


def _codings(concept) -> list[dict]:
    return [c for c in _l(_d(concept).get("coding")) if isinstance(c, dict)]


def _has_coding(concept, system: str, code: str | None = None) -> bool:
    return any(c.get("system") == system and (code is None or c.get("code") == code) for c in _codings(concept))


class MessageView:
    """One message Bundle, indexed once for the checks.

    Attributes are ``(index, resource)`` pairs (index in ``Bundle.entry``) or
    ``None`` when the message lacks that resource.
    """

    def __init__(self, bundle: dict, *, now: dt.datetime):
        self.bundle = bundle
        self.now = now
        self.by_type: dict[str, list[tuple[int, dict]]] = {}
        self.by_ref: dict[str, tuple[int, dict]] = {}
        for i, entry in enumerate(_l(bundle.get("entry"))):
            resource = _d(_d(entry).get("resource"))
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str):
                continue
            self.by_type.setdefault(rtype, []).append((i, resource))
            url = _d(entry).get("fullUrl")
            if isinstance(url, str):
                self.by_ref[url] = (i, resource)
            if isinstance(resource.get("id"), str):
                self.by_ref.setdefault(f"{rtype}/{resource['id']}", (i, resource))

        headers = self.by_type.get("MessageHeader", [])
        self.header = headers[0] if headers else None
        header = self.header[1] if self.header else {}

        self.service_request = None
        for ref in _l(header.get("focus")):
            found = self.resolve(ref, "ServiceRequest")
            if found:
                self.service_request = found
                break
        if self.service_request is None and self.by_type.get("ServiceRequest"):
            self.service_request = self.by_type["ServiceRequest"][0]
        sr = self.sr

        self.patient = self.resolve(sr.get("subject"), "Patient")
        if self.patient is None and self.by_type.get("Patient"):
            self.patient = self.by_type["Patient"][0]

        self.sender_org = self.resolve(header.get("sender"), "Organization")
        self.role = self.resolve(header.get("author"), "PractitionerRole") \
            or self.resolve(sr.get("requester"), "PractitionerRole") \
            or (self.by_type["PractitionerRole"][0] if self.by_type.get("PractitionerRole") else None)
        self.practitioner = self.resolve(_d(self.role[1] if self.role else None).get("practitioner"), "Practitioner") \
            or (self.by_type["Practitioner"][0] if self.by_type.get("Practitioner") else None)

        self.sr_ext = extensions_by_url(sr)
        self.patient_ext = extensions_by_url(self.pt)
        self.related = self.by_type.get("RelatedPerson", [])
        self.related_ext = [(i, extensions_by_url(r)) for i, r in self.related]

        agency = S.parse_agency_uri(_s(_d(header.get("source")).get("endpoint")))
        self.sender_kind = agency[0] if agency else None
        if self.sender_kind is None and self.sender_org:
            for kind, system in S.AGENCY_IDENTIFIER_SYSTEM.items():
                if any(_d(i).get("system") == system for i in _l(self.sender_org[1].get("identifier"))):
                    self.sender_kind = kind
                    break

    # -- looking things up
    @property
    def sr(self) -> dict:
        """The ServiceRequest resource, or ``{}``."""
        return self.service_request[1] if self.service_request else {}

    @property
    def pt(self) -> dict:
        """The child's Patient resource, or ``{}``."""
        return self.patient[1] if self.patient else {}

    def index(self, pair) -> int | None:
        return pair[0] if pair else None

    def resolve(self, reference, rtype: str | None = None) -> tuple[int, dict] | None:
        """Return the ``(index, resource)`` a Reference dict points at (of ``rtype``), or ``None``."""
        ref = _d(reference).get("reference")
        found = self.by_ref.get(ref) if isinstance(ref, str) else None
        if found and (rtype is None or found[1].get("resourceType") == rtype):
            return found
        return None

    def observations(self, system: str, code: str) -> list[tuple[int, dict]]:
        """Return the Observations coded ``system#code``."""
        return [(i, o) for i, o in self.by_type.get("Observation", []) if _has_coding(o.get("code"), system, code)]

def at(resource: str, index: int | None, path: str) -> str:
    """Return the FHIRPath of ``path`` in entry ``index`` (generic for ``resource`` when ``None``)."""
    return concrete_expression(resource, index, path)


# Times -------------------------------------------------------------------------------------------
def instant_bounds(value) -> tuple[dt.datetime, dt.datetime] | None:
    """Return the earliest and latest instant a FHIR date or dateTime can mean, or ``None``.

    A date alone spans its whole (UK) day; a time without an offset is UK time.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            start = dt.datetime(int(text), 1, 1, tzinfo=UK)
            return start, dt.datetime(int(text) + 1, 1, 1, tzinfo=UK) - dt.timedelta(microseconds=1)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            start = dt.datetime(year, month, 1, tzinfo=UK)
            end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UK)
            return start, end - dt.timedelta(microseconds=1)
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), tzinfo=UK)
            return start, start + DAY - dt.timedelta(microseconds=1)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UK)
    return moment, moment


def describe_delay(delta: dt.timedelta) -> str:
    """Return a delay in words: ``21 days 13 hours``, ``1 day``, ``30 hours``... rounded down to hours."""
    hours = int(delta.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours or not days:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    return " ".join(parts)


def _sr_time(view: MessageView, url: str):
    return first_value(view.sr_ext, url)


# MUST --------------------------------------------------------------------------------------------
@check("message_identity")
def message_identity(view: MessageView, item) -> Iterator[Gap]:
    bundle = view.bundle
    if bundle.get("type") != "message":
        yield Gap("Bundle.type", f"Bundle.type is {bundle.get('type')!r}; a referral is sent as a Bundle of "
                                 "type 'message'.")
    if not _s(_d(bundle.get("identifier")).get("value")):
        yield Gap("Bundle.identifier", "The message has no identifier (Bundle.identifier.value); give every "
                                       "message its own identifier, e.g. urn:uuid:<uuid>.")
    first = _d(_d((_l(bundle.get("entry")) or [None])[0]).get("resource"))
    if first.get("resourceType") != "MessageHeader":
        yield Gap("Bundle.entry[0].resource", "The first entry of a message must be its MessageHeader.")
        return
    event = _d(first.get("eventCoding"))
    code = event.get("code")
    if event.get("system") != S.MESSAGE_EVENT or not isinstance(code, str) or code not in MESSAGE_EVENTS:
        yield Gap("Bundle.entry[0].resource.eventCoding",
                  f"MessageHeader.eventCoding must be a code of {S.MESSAGE_EVENT} "
                  f"({', '.join(MESSAGE_EVENTS)}), not {event.get('code')!r}.")


@check("sender")
def sender(view: MessageView, item) -> Iterator[Gap]:
    if view.header is None:
        yield Gap(at("MessageHeader", None, ""), "The message has no MessageHeader. " + item.action)


@check("child_identified")
def child_identified(view: MessageView, item) -> Iterator[Gap]:
    if view.patient is None:
        yield Gap(at("Patient", None, ""), "The message has no Patient for the child. " + item.action)
        return
    pt = view.pt
    if usable_identifier(pt, S.NHS_NUMBER) or usable_identifier(pt, S.UPN):
        return
    named = _has_name(pt)
    dated = bool(_s(pt.get("birthDate"))) or has_ext(view.patient_ext, X.EXT_EXPECTED_DUE_DATE)
    if named and dated:
        return
    lacking = [what for what, ok in (("name", named), ("date of birth (or expected due date)", dated)) if not ok]
    yield Gap(text=f"The child has no valid NHS number or UPN, and no {' and no '.join(lacking)}. " + item.action)


@check("routable")
def routable(view: MessageView, item) -> Iterator[Gap]:
    if view.patient is None:
        yield Gap(at("Patient", None, "address.postalCode"), item.action)
        return
    for address in _l(view.pt.get("address")):
        postcode = _s(_d(address).get("postalCode"))
        if postcode and ids.check_postcode(postcode).valid:
            return
    if view.sender_kind == "la":
        return
    orgs = [view.sender_org[1]] if view.sender_org else []
    school = view.resolve(first_value(view.patient_ext, S.EXT_SCHOOL), "Organization")
    if school:
        orgs.append(school[1])
    for org in orgs:
        if usable_identifier(org, S.DFE_LA) or usable_identifier(org, S.SCHOOL_URN):
            return
    yield Gap()


@check("concern_category")
def concern_category(view: MessageView, item) -> Iterator[Gap]:
    if view.service_request is None:
        yield Gap(at("ServiceRequest", None, ""), "The message has no ServiceRequest for the referral. " + item.action)
        return
    context = [CONCERN_CONTEXT[c["code"]][0] for concept in _l(view.sr.get("category")) for c in _codings(concept)
               if c.get("system") == S.CONCERN_CONTEXT and c.get("code") in CONCERN_CONTEXT]
    if context:
        yield Gap(text=f"Only {', '.join(repr(c) for c in context)} is recorded, which describes the record, not a "
                       "kind of harm. " + item.action)


# SHOULD ------------------------------------------------------------------------------------------
@check("nhs_number")
def nhs_number(view: MessageView, item) -> Iterator[Gap]:
    if usable_identifier(view.pt, S.NHS_NUMBER) or has_ext(view.patient_ext, S.EXT_NHS_NUMBER_ABSENT_REASON):
        return
    for ident in _l(view.pt.get("identifier")):
        if _d(ident).get("system") == S.NHS_NUMBER and _s(_d(ident).get("value")):
            yield Gap(text=f"The NHS number {ident['value']!r} is not valid, so the child has no usable NHS number. "
                           "Correct it, or record why it is not known (extension nhs-number-absent-reason).")
            return
    yield Gap()


@check("related_people")
def related_people(view: MessageView, item) -> Iterator[Gap]:
    if not view.related:
        yield Gap(text="No parents, carers or household members are named. " + item.action)


@check("parents_informed")
def parents_informed(view: MessageView, item) -> Iterator[Gap]:
    if _d(first_value(view.sr_ext, S.EXT_PARENTS_INFORMED)).get("code") == "no":
        yield Gap(at("ServiceRequest", view.index(view.service_request),
                     f"extension('{X.EXT_PARENTS_NOT_INFORMED_REASON}')"),
                  "The parents have not been told of the referral; say why (for example that telling them "
                  "would put the child at risk).")


@check("school")
def school(view: MessageView, item) -> Iterator[Gap]:
    if view.sender_kind == "school":
        return  # the child's own school is sending
    found = view.resolve(first_value(view.patient_ext, S.EXT_SCHOOL), "Organization")
    if found and usable_identifier(found[1], S.SCHOOL_URN):
        return
    if found:
        yield Gap(at("Organization", found[0], "identifier"),
                  "The child's school is named without a valid 6-digit URN; give its URN.")
    else:
        yield Gap()


@check("referrer_name")
def referrer_name(view: MessageView, item) -> Iterator[Gap]:
    yield Gap(at("Practitioner", view.index(view.practitioner), "name"))


@check("referrer_role")
def referrer_role(view: MessageView, item) -> Iterator[Gap]:
    yield Gap(at("PractitionerRole", view.index(view.role), "code"))


@check("referrer_contact")
def referrer_contact(view: MessageView, item) -> Iterator[Gap]:
    yield Gap(at("PractitionerRole", view.index(view.role), "telecom"))


@check("dash")
def dash(view: MessageView, item) -> Iterator[Gap]:
    found = view.observations(S.RISK_KIND, "dash")
    if not found:
        yield Gap(at("ServiceRequest", view.index(view.service_request), "supportingInfo"),
                  "No DASH risk assessment is attached to this domestic-abuse notice. " + item.action)
        return
    i, obs = found[0]
    completed = None
    for comp in _l(obs.get("component")):
        if _has_coding(_d(comp).get("code"), S.DASH_QUESTION, "completed"):
            completed = _d(comp).get("valueBoolean")
    if completed is not True:
        judgement = "; ".join(_s(_d(n).get("text")) for n in _l(obs.get("note")) if _s(_d(n).get("text")))
        why = f" (the officer wrote: {judgement})" if judgement else ""
        yield Gap(at("Observation", i, "component.where(code.coding.code = 'completed').value"),
                  f"The DASH risk assessment was not completed{why}. {item.action}")
    elif not _codings(obs.get("valueCodeableConcept")):
        yield Gap(at("Observation", i, "value"), "The DASH risk assessment has no risk level; give it "
                                                  "(standard, medium or high).")


def _evidence(view: MessageView) -> Iterator[tuple[int, dict, bool | None, str]]:
    for i, obs in view.observations(S.EVIDENCE_TYPE, S.EVIDENCE_ITEM):
        secured = None
        for comp in _l(obs.get("component")):
            if _has_coding(_d(comp).get("code"), S.EVIDENCE_TYPE, "secured"):
                secured = _d(comp).get("valueBoolean")
        kind = next((c.get("code") for cat in _l(obs.get("category")) for c in _codings(cat) if c.get("code")), "")
        described = _s(obs.get("valueString"))
        label = f"{kind} ({described})" if kind and described else (kind or described or "an evidence item")
        yield i, obs, secured, label


@check("evidence")
def evidence(view: MessageView, item) -> Iterator[Gap]:
    items = list(_evidence(view))
    if not items:
        yield Gap(at("ServiceRequest", view.index(view.service_request), "supportingInfo"),
                  "No evidence items are listed. " + item.action)
        return
    for i, _, secured, label in items:
        if secured is None:
            yield Gap(at("Observation", i, "component.where(code.coding.code = 'secured').value"),
                      f"Say whether the evidence {label} was secured.")


@check("consent")
def consent(view: MessageView, item) -> Iterator[Gap]:
    value = first_value(view.sr_ext, S.EXT_CONSENT_TO_SHARE)
    if value not in (None, ""):
        yield Gap(at("ServiceRequest", view.index(view.service_request), f"extension('{X.EXT_LAWFUL_BASIS}')"),
                  f"Consent to share is {value!r} and no lawful basis for sharing without consent is recorded; "
                  "state the lawful basis.")


# TIMELINESS --------------------------------------------------------------------------------------
def _late(view: MessageView, item, later_value, what: str, path: str) -> Iterator[Gap]:
    occurred = instant_bounds(_sr_time(view, S.EXT_OCCURRED))
    later = instant_bounds(later_value)
    if not occurred or not later:
        return
    delay = later[0] - occurred[1]  # the shortest delay the values allow
    if delay > DAY:
        yield Gap(at("ServiceRequest", view.index(view.service_request), path),
                  f"{what} {describe_delay(delay)} after the incident (it happened {_sr_time(view, S.EXT_OCCURRED)}, "
                  f"{what.lower()} {later_value}); the standard is within 24 hours. {item.action}")


@check("ppn_late")
def ppn_late(view: MessageView, item) -> Iterator[Gap]:
    submitted = _sr_time(view, S.EXT_SUBMITTED)
    if submitted:
        yield from _late(view, item, submitted, "Submitted", f"extension('{S.EXT_SUBMITTED}')")
    else:
        yield from _late(view, item, view.sr.get("authoredOn"), "Recorded", "authoredOn")


@check("school_late")
def school_late(view: MessageView, item) -> Iterator[Gap]:
    yield from _late(view, item, view.sr.get("authoredOn"), "Recorded", "authoredOn")


_DATES = (
    ("ServiceRequest", "authoredOn", "the date it was recorded"),
    ("ServiceRequest", S.EXT_OCCURRED, "the date it happened"),
    ("ServiceRequest", S.EXT_SUBMITTED, "the date it was submitted"),
    ("ServiceRequest", S.EXT_REPORTED, "the date it was reported to police"),
    ("Patient", "birthDate", "the child's date of birth"),
)


@check("future_date")
def future_date(view: MessageView, item) -> Iterator[Gap]:
    limit = view.now + FUTURE_TOLERANCE
    for rtype, key, what in _DATES:
        pair = view.service_request if rtype == "ServiceRequest" else view.patient
        if pair is None:
            continue
        if key.startswith("http"):
            value, path = _sr_time(view, key), f"extension('{key}')"
        else:
            value, path = pair[1].get(key), key
        bounds = instant_bounds(value)
        if bounds and bounds[0] > limit:
            yield Gap(at(rtype, pair[0], path),
                      f"{what.capitalize()} ({value}) is {describe_delay(bounds[0] - view.now)} in the future. "
                      f"{item.action}")


@check("dates_in_order")
def dates_in_order(view: MessageView, item) -> Iterator[Gap]:
    occurred_value = _sr_time(view, S.EXT_OCCURRED)
    occurred, recorded_at = instant_bounds(occurred_value), instant_bounds(view.sr.get("authoredOn"))
    if occurred and recorded_at and occurred[0] > recorded_at[1]:
        yield Gap(text=f"It happened ({occurred_value}) {describe_delay(occurred[0] - recorded_at[1])} after it was "
                       f"recorded ({view.sr.get('authoredOn')}). {item.action}")


# Content flags -----------------------------------------------------------------------------------
@check("unmapped_category")
def unmapped_category(view: MessageView, flag) -> Iterator[Gap]:
    for j, concept in enumerate(_l(view.sr.get("category"))):
        concept = _d(concept)
        if any(_d(e).get("url") == S.EXT_UNMAPPED_CATEGORY for e in _l(concept.get("extension"))):
            yield Gap(at("ServiceRequest", view.index(view.service_request), f"category[{j}]"),
                      f"The category {concept.get('text')!r} has no national code; it is kept as written. Use a "
                      "national category, or ask the gateway operator to map this label.")


@check("evidence_not_secured")
def evidence_not_secured(view: MessageView, flag) -> Iterator[Gap]:
    for i, _, secured, label in _evidence(view):
        if secured is False:
            yield Gap(at("Observation", i, "component.where(code.coding.code = 'secured').value"),
                      f"Evidence not secured: {label}. Secure it now if it can still be recovered.")
