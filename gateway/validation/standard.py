"""The referral standard as loaded from ``standard.yaml``, its one definition.

:func:`load_standard` returns the items, identifier checks and content flags
as frozen dataclasses; the validator, the documentation and the FHIR
artefacts all read them from here.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from importlib import resources as importlib_resources

import yaml

from gateway.model import systems as S
from gateway.validation import extensions as X

LEVELS = ("MUST", "SHOULD", "TIMELINESS")
SEVERITY = {"MUST": "error", "SHOULD": "warning", "TIMELINESS": "warning"}
ISSUE_CODE = {"MUST": "required", "SHOULD": "incomplete", "TIMELINESS": "business-rule"}


class StandardError(ValueError):
    """``standard.yaml`` is malformed (a missing key, an unknown level, placeholder or check)."""


@dataclasses.dataclass(frozen=True)
class Alternative:
    """One FHIRPath ``expression`` on one resource of type ``resource`` (``Bundle``: the message itself)."""

    resource: str
    expression: str

    def on_bundle(self) -> str:
        """Return the same test as FHIRPath on the message Bundle: true when some such resource passes."""
        if self.resource == "Bundle":
            return self.expression
        return f"entry.resource.ofType({self.resource}).where({self.expression}).exists()"


def any_of(alternatives: tuple[Alternative, ...]) -> str:
    """Return FHIRPath on the Bundle, true when one of ``alternatives`` holds."""
    parts = [a.on_bundle() for a in alternatives]
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def all_of(conditions: tuple[Alternative, ...]) -> str:
    """Return FHIRPath on the Bundle, true when every one of ``conditions`` holds."""
    parts = [a.on_bundle() for a in conditions]
    return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)


@dataclasses.dataclass(frozen=True)
class Applicability:
    """Which messages an item applies to: ``text`` for people, ``when`` (all must hold; empty: every message)."""

    name: str
    text: str
    when: tuple[Alternative, ...] = ()

    @property
    def fhirpath(self) -> str | None:
        """Return the condition as FHIRPath on the Bundle, or ``None`` when it applies to every message."""
        return all_of(self.when) if self.when else None


@dataclasses.dataclass(frozen=True)
class Item:
    """One item of the minimum dataset.

    ``fhirpath`` is where the item lives in any message;
    :meth:`expression` gives the place in one message. ``invariant`` is the
    rule as FHIRPath alternatives (:class:`Alternative`): the item is present
    when one of them holds; ``check`` names the Python function that decides
    instead, for the rules FHIRPath cannot say (check digits, timeliness), and
    ``explain`` the function that words a failed invariant for the sender.
    """

    id: str
    level: str
    applies: str
    title: str
    why: str
    resource: str
    path: str
    action: str
    check: str | None = None
    explain: str | None = None
    invariant: tuple[Alternative, ...] = ()

    @property
    def decided_by_fhirpath(self) -> bool:
        """True when the gateway decides the item by evaluating its invariant (no Python ``check``)."""
        return self.check is None and bool(self.invariant)

    @property
    def severity(self) -> str:
        return SEVERITY[self.level]

    @property
    def issue_code(self) -> str:
        return ISSUE_CODE[self.level]

    @property
    def fhirpath(self) -> str:
        """Return the generic FHIRPath, e.g. ``Bundle.entry.resource.ofType(Patient).birthDate``."""
        return generic_expression(self.resource, self.path)

    def expression(self, index: int | None, path: str | None = None) -> str:
        """Return the FHIRPath in one Bundle: at entry ``index``, or the generic one when ``None``."""
        return concrete_expression(self.resource, index, self.path if path is None else path)

    def constraint(self, applicability: Applicability) -> str | None:
        """Return the published invariant: FHIRPath on the Bundle, true when the item is present or does not apply.

        ``None`` for an item without an invariant (TIMELINESS).
        """
        if not self.invariant:
            return None
        present = any_of(self.invariant)
        condition = applicability.fhirpath
        return f"({condition}) implies ({present})" if condition else present


@dataclasses.dataclass(frozen=True)
class IdentifierRule:
    """A check of one kind of identifier (``system``) or of postcodes (``element``)."""

    id: str
    title: str
    resources: tuple[str, ...]
    check: str
    why: str
    system: str | None = None
    element: str | None = None


@dataclasses.dataclass(frozen=True)
class Flag:
    """A warning about what the message says (an unmapped code, evidence not secured)."""

    id: str
    title: str
    code: str
    applies: str
    resource: str
    path: str
    check: str
    why: str

    severity = "warning"

    def expression(self, index: int | None, path: str | None = None) -> str:
        return concrete_expression(self.resource, index, self.path if path is None else path)


@dataclasses.dataclass(frozen=True)
class Standard:
    """The whole definition: ``items`` in file order, identifier rules, flags, applicability.

    ``date`` is the date of this version (ISO 8601), stamped on the published resources.
    """

    version: str
    date: str
    applicability: dict[str, Applicability]
    items: tuple[Item, ...]
    identifiers: tuple[IdentifierRule, ...]
    flags: tuple[Flag, ...]

    def level(self, level: str) -> tuple[Item, ...]:
        """Return the items of one level, in file order."""
        return tuple(i for i in self.items if i.level == level)

    def item(self, item_id: str) -> Item:
        """Return the item ``item_id``; raises KeyError when there is none."""
        for i in self.items:
            if i.id == item_id:
                return i
        raise KeyError(item_id)

    def constraint(self, item: Item) -> str | None:
        """Return ``item``'s published invariant (see :meth:`Item.constraint`)."""
        return item.constraint(self.applicability[item.applies])


def generic_expression(resource: str, path: str) -> str:
    """Return ``Bundle.<path>`` or ``Bundle.entry.resource.ofType(<resource>).<path>``."""
    if resource == "Bundle":
        return f"Bundle.{path}" if path else "Bundle"
    base = f"Bundle.entry.resource.ofType({resource})"
    return f"{base}.{path}" if path else base


def concrete_expression(resource: str, index: int | None, path: str) -> str:
    """Return the FHIRPath of ``path`` in the entry at ``index`` (generic when ``index`` is None)."""
    if resource == "Bundle" or index is None:
        return generic_expression(resource, path)
    base = f"Bundle.entry[{index}].resource"
    return f"{base}.{path}" if path else base


_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def _fhirpath_codes(codes) -> str:
    return " | ".join(f"'{code}'" for code in codes)


def _constants() -> dict[str, str]:
    from gateway.model.terminology import CONCERN_CATEGORIES, MESSAGE_EVENTS

    names = {k: v for k, v in vars(S).items() if k.isupper() and isinstance(v, str)}
    names.update({k: v for k, v in vars(X).items() if k.isupper() and isinstance(v, str)})
    names.update(MESSAGE_EVENT_CODES=_fhirpath_codes(MESSAGE_EVENTS),
                 CONCERN_CATEGORY_CODES=_fhirpath_codes(CONCERN_CATEGORIES),
                 AGENCY_KINDS_ALTERNATIVES="|".join(S.AGENCY_KINDS))
    return names


def _alternatives(raw, constants: dict[str, str], where: str) -> tuple[Alternative, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise StandardError(f"standard.yaml, {where}: expected {{resource type: FHIRPath}}, got {raw!r}")
    out = []
    for resource, expression in raw.items():
        if not isinstance(expression, str) or not expression.strip():
            raise StandardError(f"standard.yaml, {where}.{resource}: expected a FHIRPath expression")
        out.append(Alternative(str(resource), " ".join(_resolve(expression, constants, f"{where}.{resource}").split())))
    return tuple(out)


def _resolve(text, constants: dict[str, str], where: str):
    if not isinstance(text, str):
        return text

    def sub(match):
        name = match.group(1)
        if name not in constants:
            raise StandardError(f"standard.yaml, {where}: unknown constant {{{name}}}")
        return constants[name]

    return " ".join(_PLACEHOLDER.sub(sub, text).split()) if "\n" in text else _PLACEHOLDER.sub(sub, text)


def _build(cls, raw: dict, constants: dict[str, str], where: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - fields
    if unknown:
        raise StandardError(f"standard.yaml, {where}: unknown keys {', '.join(sorted(unknown))}")
    values = {k: _alternatives(v, constants, f"{where}.{k}") if k in ("invariant", "when")
              else _resolve(v, constants, f"{where}.{k}") for k, v in raw.items()}
    if "resources" in values:
        values["resources"] = tuple(str(values["resources"]).split())
    try:
        return cls(**values)
    except TypeError as exc:
        raise StandardError(f"standard.yaml, {where}: {exc}") from None


def parse_standard(text: str) -> Standard:
    """Return the :class:`Standard` defined by YAML ``text``; raises :class:`StandardError`."""
    data = yaml.safe_load(text)
    constants = _constants()
    applicability = {name: _build(Applicability, {"name": name, **raw}, constants, f"applicability.{name}")
                     for name, raw in data["applicability"].items()}
    items = tuple(_build(Item, raw, constants, f"items[{n}]") for n, raw in enumerate(data["items"]))
    seen: set[str] = set()
    for item in items:
        if item.level not in LEVELS:
            raise StandardError(f"standard.yaml, item {item.id}: level {item.level!r} is not one of {LEVELS}")
        if item.applies not in applicability:
            raise StandardError(f"standard.yaml, item {item.id}: applies {item.applies!r} is not defined")
        if item.id in seen:
            raise StandardError(f"standard.yaml: item id {item.id!r} is used twice")
        seen.add(item.id)
        if item.level != "TIMELINESS" and not item.invariant:
            raise StandardError(f"standard.yaml, item {item.id}: a {item.level} item needs an invariant")
        if not item.check and not item.invariant:
            raise StandardError(f"standard.yaml, item {item.id}: give an invariant or a check")
        if item.check and item.explain:
            raise StandardError(f"standard.yaml, item {item.id}: a check words its own gaps; drop explain")
    _check_fhirpath(items, applicability)
    identifiers = tuple(_build(IdentifierRule, raw, constants, f"identifiers[{n}]")
                        for n, raw in enumerate(data.get("identifiers") or []))
    flags = tuple(_build(Flag, raw, constants, f"flags[{n}]") for n, raw in enumerate(data.get("flags") or []))
    return Standard(str(data["version"]), str(data["date"]), applicability, items, identifiers, flags)


def _check_fhirpath(items: tuple[Item, ...], applicability: dict[str, Applicability]) -> None:
    """Raise :class:`StandardError` naming the first invariant or condition that is not FHIRPath."""
    from gateway.validation.rules import FhirPathError, compiled

    places = [(f"item {i.id}, invariant.{a.resource}", a.expression) for i in items for a in i.invariant]
    places += [(f"applicability.{name}.when.{a.resource}", a.expression)
               for name, ap in applicability.items() for a in ap.when]
    for where, expression in places:
        try:
            compiled(expression)
        except FhirPathError as exc:
            raise StandardError(f"standard.yaml, {where}: {exc}") from None


@cache
def load_standard() -> Standard:
    """Return the referral standard defined in ``gateway/validation/standard.yaml`` (read once)."""
    text = importlib_resources.files("gateway.validation").joinpath("standard.yaml").read_text(encoding="utf-8")
    return parse_standard(text)
