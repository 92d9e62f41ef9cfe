"""Validate a message Bundle against FHIR R4 and the referral standard.

The result is a FHIR OperationOutcome: one issue per problem, each with a
severity, a code, an ``expression`` (R4's simple FHIRPath: the one node of
the message it is about, or the element that should hold what is missing),
the fuller FHIRPath of the place in ``location`` when that says more, text
that tells a person what to add, and the item of the standard it is about
(``details.coding``). The
completeness score (the share of the applicable SHOULD items present, 0-100)
travels as an extension of the OperationOutcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from gateway.model import identifiers as ids
from gateway.model import systems as S
from gateway.model import FhirInvalid, check_resource
from gateway.validation import extensions as X
from gateway.validation.checks import CHECKS, Gap, MessageView, _d, _l, _s
from gateway.validation.expressions import simple_expression
from gateway.validation.rules import all_hold, any_holds
from gateway.validation.standard import Standard, load_standard


class NotABundle(ValueError):
    """The input is not a FHIR Bundle (not a JSON object, or another resourceType)."""


def _coding(item_id: str, title: str) -> dict:
    return {"system": X.STANDARD_ITEM, "code": item_id, "display": title}


def _issue(severity: str, code: str, text: str, expression: str | None, item_id: str | None = None,
           title: str = "") -> dict:
    details: dict = {"text": text}
    if item_id:
        details["coding"] = [_coding(item_id, title)]
    issue = {"severity": severity, "code": code, "details": details}
    if expression:
        issue["expression"] = [expression]
    return issue


def base_issues(bundle: dict) -> list[dict]:
    """Return error issues for everything the FHIR R4 base model rejects in ``bundle`` (none when valid)."""
    try:
        check_resource(bundle)
    except FhirInvalid as exc:
        return [_issue("error", "structure", f"Not valid FHIR R4: {message}", path, "fhir-base", "FHIR R4 base model")
                for path, message in exc.errors]
    except (KeyError, TypeError, ValueError) as exc:
        return [_issue("error", "structure", f"Not valid FHIR R4: {exc}", "Bundle", "fhir-base", "FHIR R4 base model")]
    return []


_IDENTIFIER_CHECK_FUNCTIONS = {
    "check_nhs_number": ids.check_nhs_number, "check_upn": ids.check_upn, "check_urn": ids.check_urn,
    "check_la_number": ids.check_la_number, "check_postcode": ids.check_postcode,
}


def _marked_invalid(ident: dict) -> str | None:
    for ext in _l(ident.get("extension")):
        if _d(ext).get("url") == S.EXT_IDENTIFIER_INVALID:
            return _s(_d(ext).get("valueString")) or "marked invalid by the translator"
    return None


def _identifier_issues(view: MessageView, standard: Standard) -> Iterable[dict]:
    suffix = " It is kept in the message, marked invalid, and never used for linking; correct it at source."
    for rule in standard.identifiers:
        fn = _IDENTIFIER_CHECK_FUNCTIONS[rule.check]
        for rtype in rule.resources:
            for i, resource in view.by_type.get(rtype, []):
                if rule.system:
                    for j, ident in enumerate(_l(resource.get("identifier"))):
                        ident = _d(ident)
                        value = _s(ident.get("value"))
                        if ident.get("system") != rule.system or not value:
                            continue
                        problem = _marked_invalid(ident) or fn(value).problem
                        if problem:
                            yield _issue("warning", "value", problem.rstrip(".") + "." + suffix,
                                         f"Bundle.entry[{i}].resource.identifier[{j}]", rule.id, rule.title)
                else:
                    addresses = [resource.get("address")] if rtype == "Location" else _l(resource.get("address"))
                    for k, address in enumerate(addresses):
                        postcode = _s(_d(address).get("postalCode"))
                        problem = fn(postcode).problem if postcode else None
                        if problem:
                            where = "address" if rtype == "Location" else f"address[{k}]"
                            yield _issue("warning", "value", problem.rstrip(".") + "." + suffix,
                                         f"Bundle.entry[{i}].resource.{where}.postalCode", rule.id, rule.title)


_DEFAULT_INDEX = {
    "Patient": lambda v: v.index(v.patient),
    "ServiceRequest": lambda v: v.index(v.service_request),
    "MessageHeader": lambda v: v.index(v.header),
    "Practitioner": lambda v: v.index(v.practitioner),
    "PractitionerRole": lambda v: v.index(v.role),
}


def _simple_form(bundle: dict, issue: dict) -> None:
    """Give ``issue.expression`` R4's simple form (one node), keeping a richer FHIRPath in ``issue.location``."""
    if "expression" not in issue:
        return
    rich = issue["expression"][0]
    simple = simple_expression(bundle, rich)
    issue["expression"] = [simple]
    if simple != rich:
        issue["location"] = [rich]


class _Applicability:
    """Which kinds of message (``applicability`` in standard.yaml) one message is, each evaluated once."""

    def __init__(self, view: MessageView, standard: Standard):
        self.view, self.standard, self.known = view, standard, {}

    def __call__(self, name: str) -> bool:
        if name not in self.known:
            self.known[name] = all_hold(self.standard.applicability[name].when, self.view.bundle, self.view.by_type)
        return self.known[name]


def _gaps(view: MessageView, item) -> list[Gap]:
    """Return the ways ``item`` is missing from the message (none when it is present).

    The item's FHIRPath invariant decides, unless the item names a Python
    ``check`` (rules FHIRPath cannot say); once the invariant has failed, the
    item's explainer words what is missing, or the item's action is told.
    """
    if item.check:
        return list(CHECKS[item.check](view, item))
    if any_holds(item.invariant, view.bundle, view.by_type):
        return []
    return (list(CHECKS[item.explain](view, item)) if item.explain else []) or [Gap()]


def validate_bundle(bundle: dict, *, now: dt.datetime, base: bool = True, standard: Standard | None = None) -> dict:
    """Return a FHIR OperationOutcome (dict) for one message Bundle.

    ``now`` is the time the checks compare against (dates in the future);
    it must be timezone-aware. With ``base=True`` the Bundle is also checked
    against the FHIR R4 base model and each failure is an error; pass
    ``base=False`` when the caller has already done that (the translator
    builds Bundles it has validated). Errors (a MUST item missing, a base
    failure) mean the message must be refused; warnings go back to the
    sender. The last issue is always an information summary. Raises
    :class:`NotABundle` when ``bundle`` is not a dict with resourceType
    ``Bundle``, and ``ValueError`` when ``now`` is naive.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise NotABundle(f"expected a FHIR Bundle, got {found!r}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    standard = standard or load_standard()
    issues: list[dict] = base_issues(bundle) if base else []
    view = MessageView(bundle, now=now)
    applies = _Applicability(view, standard)

    should_applicable = should_present = 0
    for item in standard.items:
        if not applies(item.applies):
            continue
        gaps = _gaps(view, item)
        if item.level == "SHOULD":
            should_applicable += 1
            should_present += not gaps
        default_index = _DEFAULT_INDEX.get(item.resource, lambda v: None)(view) if gaps else None
        for gap in gaps:
            issues.append(_issue(item.severity, item.issue_code, gap.text or item.action,
                                 gap.expression or item.expression(default_index), item.id, item.title))
    for flag in standard.flags:
        if applies(flag.applies):
            for gap in CHECKS[flag.check](view, flag):
                issues.append(_issue(flag.severity, flag.code, gap.text or flag.title,
                                     gap.expression or flag.expression(None), flag.id, flag.title))
    issues.extend(_identifier_issues(view, standard))

    for issue in issues:
        _simple_form(bundle, issue)

    score = round(100 * should_present / should_applicable) if should_applicable else 100
    errors = sum(1 for i in issues if i["severity"] == "error")
    warnings = sum(1 for i in issues if i["severity"] == "warning")
    verdict = "refused: add what the errors name and send it again" if errors else "accepted"
    issues.append({"severity": "information", "code": "informational", "details": {
        "text": f"Message {_s(bundle.get('id')) or '(no id)'}: {errors} error{'s' * (errors != 1)}, "
                f"{warnings} warning{'s' * (warnings != 1)}; completeness {score}% "
                f"({should_present} of {should_applicable} recommended items); {verdict}."}})
    return {
        "resourceType": "OperationOutcome",
        "extension": [{"url": S.EXT_COMPLETENESS, "valueInteger": score}],
        "issue": issues,
    }


def has_errors(outcome: dict) -> bool:
    """Return True when the OperationOutcome has an issue of severity ``error`` or ``fatal``."""
    return any(_d(i).get("severity") in ("error", "fatal") for i in _l(_d(outcome).get("issue")))


def completeness(outcome: dict) -> int | None:
    """Return the completeness score of an outcome from :func:`validate_bundle`, or ``None``."""
    for ext in _l(_d(outcome).get("extension")):
        if _d(ext).get("url") == S.EXT_COMPLETENESS:
            return ext.get("valueInteger")
    return None


def gap_items(outcome: dict) -> list[str]:
    """Return the ids of the standard's items, identifier checks and flags an outcome's issues name."""
    out = []
    for issue in _l(_d(outcome).get("issue")):
        for coding in _l(_d(_d(issue).get("details")).get("coding")):
            if _d(coding).get("system") == X.STANDARD_ITEM:
                out.append(coding.get("code"))
    return out


def summary(outcome: dict) -> dict:
    """Return ``{"errors": n, "warnings": n, "completeness": score}`` for an outcome."""
    issues = [_d(i) for i in _l(_d(outcome).get("issue"))]
    return {"errors": sum(i.get("severity") in ("error", "fatal") for i in issues),
            "warnings": sum(i.get("severity") == "warning" for i in issues),
            "completeness": completeness(outcome)}
