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
class Item:
    """One item of the minimum dataset.

    ``fhirpath`` is where the item lives in any message;
    :meth:`expression` gives the place in one message.
    """

    id: str
    level: str
    applies: str
    title: str
    why: str
    resource: str
    path: str
    check: str
    action: str
    invariant: str | None = None

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
    """The whole definition: ``items`` in file order, identifier rules, flags, applicability."""

    version: str
    applicability: dict[str, str]
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


def _constants() -> dict[str, str]:
    names = {k: v for k, v in vars(S).items() if k.isupper() and isinstance(v, str)}
    names.update({k: v for k, v in vars(X).items() if k.isupper() and isinstance(v, str)})
    return names


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
    values = {k: _resolve(v, constants, f"{where}.{k}") for k, v in raw.items()}
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
    applicability = dict(data["applicability"])
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
    identifiers = tuple(_build(IdentifierRule, raw, constants, f"identifiers[{n}]")
                        for n, raw in enumerate(data.get("identifiers") or []))
    flags = tuple(_build(Flag, raw, constants, f"flags[{n}]") for n, raw in enumerate(data.get("flags") or []))
    return Standard(str(data["version"]), applicability, items, identifiers, flags)


@cache
def load_standard() -> Standard:
    """Return the referral standard defined in ``gateway/validation/standard.yaml`` (read once)."""
    text = importlib_resources.files("gateway.validation").joinpath("standard.yaml").read_text(encoding="utf-8")
    return parse_standard(text)
