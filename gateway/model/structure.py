"""A fast, conservative structural pre-check of FHIR R4 JSON: is it *certainly* valid?

Why: accepting a message runs the FHIR R4 base model (``fhir.resources``'
``model_validate``) on the whole Bundle, and most of its ~3 ms go to
``fhir_core``'s Python-level model validators, called once per nested model
(~80 of them in a referral). Almost every message the gateway sees is valid,
so the common case should not pay for building models it throws away.

The guarantee: :func:`certainly_valid` returns True only when it is sure that
``model_validate`` accepts the resource. It returns False when it finds a
problem *and* whenever it meets anything it does not fully understand, so a
False means "ask the reference", never "invalid". Callers
(:func:`gateway.model.fhir.check_resource`) then run the reference, which
decides and words every error. The accept/refuse decision is therefore always
exactly ``fhir.resources``'; only its cost changes.

How: a table per FHIR type is compiled lazily (once per type, under a lock:
the gateway runs threads) from the library's own model classes, never from a
hand-written list: ``model_fields`` (JSON alias, annotation, list or single,
``json_schema_extra``: ``element_required``, ``one_of_many``,
``one_of_many_required``, ``enum_values``), each model's own
``get_required_fields``/``get_one_of_many_fields``, and the primitive types'
patterns and bounds from ``fhir_core.types``. A class whose configuration or
validators are not the ones these rules mirror gets no table (everything of
that type is declined), and a field whose annotation cannot be classified gets
no rule (present, it is an unknown key). Each string primitive type remembers
(boundedly) the strings that passed it: messages repeat most of their systems,
codes and names, and a set lookup is cheaper than a pattern match or a parse.

The rules are stricter than the reference wherever in doubt:

- JSON types as the FHIR JSON format says: booleans only ``true``/``false``,
  integers only JSON integers (never booleans), decimals JSON numbers, strings
  only ``str`` and complex elements only objects; no ``null`` anywhere, no
  empty object, list, or string;
- strings contain no control characters other than tab, CR and LF and are not
  whitespace only; primitive patterns must ``fullmatch``; dates, times and
  instants must parse (leap seconds are declined); base64 must be canonical;
- unknown keys (including field names in place of JSON names) are refused;
  ``resourceType`` must be present, known, concrete and match; a
  Resource-typed element (``Bundle.entry.resource``, ``contained``...) is
  checked as the resource its ``resourceType`` names;
- required elements must be present (a required primitive may be absent only
  when its ``_field`` sibling carries an extension, as ``fhir_core`` allows);
  at most one member of each choice (``value[x]``) group, exactly one when the
  group is required; ``enum_values`` are enforced (the reference does not),
  except the few lists the package cut short with a ``+``;
- primitive siblings (``_birthDate``) are checked as the library's
  ``FHIRPrimitiveExtension`` (``id``/``extension``, at least one present);
  lists of primitives and their ``_field`` lists hold no nulls (declined,
  although FHIR allows them as placeholders).

Declined by design (False, so the reference decides): ``uuid`` and
``integer64`` primitives, leap seconds, nulls in primitive lists, a resource
without ``resourceType`` or of an abstract type (Resource, DomainResource),
strings with other control characters, unpaired surrogates or only
whitespace, values the reference would coerce (``"true"``, ``1`` for a
boolean, numbers as strings, a JSON string holding an object).

This module reads ``fhir_core`` (the library's core: its primitive types and
base model) and gets model classes through :func:`gateway.model.fhir.model_class`;
``fhir.resources`` itself is still imported only by :mod:`gateway.model.fhir`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import math
import re
import sys
import threading
import types
import typing
from collections.abc import Callable
from typing import Any

from annotated_types import Ge, Le, MaxLen, MinLen
from fhir_core import types as ft
from fhir_core.constraints import FHIR_TYPES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic.types import Base64Encoder, EncodedBytes

from gateway.model.fhir import model_class

__all__ = ["certainly_valid"]

Check = Callable[[Any], bool]

#: The model configuration every rule here assumes. Other keys (a global ``str_max_length``,
#: ``strict``...) could make the reference refuse what these rules accept: such classes are declined.
_KNOWN_CONFIG = {"extra", "validate_assignment", "populate_by_name"}
#: fhir_core's own model validators, which the rules below mirror (by qualified name).
_BASE_VALIDATORS = {"FHIRAbstractModel.reject_null_complex_elements",
                    "FHIRAbstractModel.validate_after_model_construction"}
#: The one model-specific validator in the package (FHIRPrimitiveExtension: id, extension or
#: fhir_comments must be present), mirrored by :attr:`_Model.at_least_one`.
_AT_LEAST_ONE_VALIDATOR = "FHIRPrimitiveExtension.validate_extension_or_fhir_comment_required"
#: Resource types that are abstract: the reference accepts them, the pre-check declines them.
_ABSTRACT_RESOURCES = {"Resource", "DomainResource"}
_NONE_TYPES = (type(None),)
#: How the package marks an ``enum_values`` list it cut short ("draft | requested | ... | +", as
#: Task.status): such a list is not enforced (the reference enforces none).
_ENUM_CUT_SHORT = "+"


# Primitives ------------------------------------------------------------------------------------

#: Characters no FHIR string may hold here: C0 controls but tab/LF/CR, DEL, and unpaired surrogates
#: (which neither JSON text nor the reference's Rust-backed string validation can carry).
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_NO_WHITESPACE = re.compile(r"\S+")
#: Seconds of 60 (leap seconds): the reference has a special path for them; declined here.
_LEAP_SECOND = re.compile(r"T\d\d:\d\d:60|^\d\d:\d\d:60")
#: Decimal magnitudes beyond this are declined (``str()`` of huge ints is limited in Python).
_DECIMAL_LIMIT = 10 ** 30
#: How many strings, and how long, each string primitive remembers as valid (:func:`_remembered`).
_REMEMBER_COUNT, _REMEMBER_LENGTH = 4096, 128


def _text(value: Any) -> bool:
    """True for a non-empty ``str`` (not a subclass) with visible content and no unsafe character."""
    return (type(value) is str and value != "" and not value.isspace()
            and (value.isprintable() or _UNSAFE_CHARS.search(value) is None))


def _pattern_rule(metadata: typing.Iterable) -> Check | None:
    """Build a check from a GroupedMetadata's constraints (pattern, MinLen/MaxLen, Ge/Le)."""
    pattern = None
    min_len, max_len, lower, upper = 1, sys.maxsize, None, None
    for item in metadata:
        if isinstance(item, MinLen):
            min_len = max(min_len, item.min_length)
        elif isinstance(item, MaxLen):
            max_len = item.max_length
        elif isinstance(item, Ge):
            lower = item.ge
        elif isinstance(item, Le):
            upper = item.le
        elif set(vars(item)) == {"pattern"}:
            pattern = re.compile(item.pattern)
        else:
            return None
    if lower is not None or upper is not None:
        if pattern is not None or lower is None or upper is None:
            return None
        return lambda value: type(value) is int and lower <= value <= upper
    if pattern is None:
        return None
    fullmatch, unsafe = pattern.fullmatch, _UNSAFE_CHARS.search

    def check(value: Any) -> bool:
        return (type(value) is str and min_len <= len(value) <= max_len and fullmatch(value) is not None
                and not value.isspace() and (value.isprintable() or unsafe(value) is None))
    return check


def _no_whitespace_text(value: Any) -> bool:
    """A url: any ``str`` to the reference; here visible text without whitespace."""
    return _text(value) and _NO_WHITESPACE.fullmatch(value) is not None


def _date_rule(marker: ft.Date) -> Check:
    """date: the library's pattern, and a full date must be a real date."""
    fullmatch = marker.pattern.fullmatch

    def check(value: Any) -> bool:
        if type(value) is not str or fullmatch(value) is None:
            return False
        if len(value) == 10:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return False
        return True
    return check


def _datetime_rule(marker: ft.DateTime, *, instant: bool) -> Check:
    """dateTime/instant: the library's pattern; full dates and date-times must parse, with a zone."""
    fullmatch = marker.pattern.fullmatch

    def check(value: Any) -> bool:
        if type(value) is not str or fullmatch(value) is None:
            return False
        if len(value) <= 7 and not instant:  # YYYY or YYYY-MM: the pattern is the whole rule
            return True
        try:
            if len(value) == 10 and not instant:
                dt.date.fromisoformat(value)
                return True
            if _LEAP_SECOND.search(value):
                return False
            return dt.datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False
    return check


def _time_rule(marker: ft.Time) -> Check:
    """time: the library's pattern, and it must parse (no leap second)."""
    fullmatch = marker.pattern.fullmatch

    def check(value: Any) -> bool:
        if type(value) is not str or fullmatch(value) is None or _LEAP_SECOND.search(value):
            return False
        try:
            dt.time.fromisoformat(value)
        except ValueError:
            return False
        return True
    return check


def _decimal_rule(marker: type[ft.Decimal]) -> Check:
    """decimal: a JSON number (int or finite float, never bool) whose text matches the library's pattern."""
    fullmatch = marker.pattern.fullmatch

    def check(value: Any) -> bool:
        kind = type(value)
        if kind is int:
            return -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT
        return kind is float and math.isfinite(value) and fullmatch(str(value)) is not None
    return check


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _base64(value: Any) -> bool:
    """base64Binary: canonical base64 text that decodes strictly."""
    if type(value) is not str or not value or _BASE64.fullmatch(value) is None:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _remembered(check: Check) -> Check:
    """``check`` of a string primitive, remembering the strings that passed.

    Messages repeat most of their strings (systems, codes, displays, the sender's
    names), so a set lookup replaces most pattern matches and date parses. Only
    ``str`` values are remembered (``1 == True == 1.0`` must never share an
    entry), only short ones, and the set starts again when full.
    """
    passed: set[str] = set()

    def remembered(value: Any) -> bool:
        if type(value) is not str:
            return False
        if value in passed:
            return True
        if not check(value):
            return False
        if len(value) <= _REMEMBER_LENGTH:
            if len(passed) >= _REMEMBER_COUNT:
                passed.clear()
            passed.add(value)
        return True
    return remembered


_PRIMITIVES: dict[Any, Check | None] = {}


def _primitive_rule(base: Any, metadata: tuple) -> Check | None:
    """Return the check for ``Annotated[base, *metadata]`` (a fhir_core primitive), or None.

    One check per primitive type, shared by every field of that type (and so is its memory).
    """
    key = (base, metadata)
    try:
        return _PRIMITIVES[key]
    except KeyError:
        pass
    except TypeError:  # unhashable metadata: a check of its own
        return _primitive_check(base, metadata)
    check = _primitive_check(base, metadata)
    if check is not None and base in (str, dt.date, dt.datetime, dt.time):
        check = _remembered(check)
    _PRIMITIVES[key] = check
    return check


def _primitive_check(base: Any, metadata: tuple) -> Check | None:
    """The check for one fhir_core primitive (see :func:`_primitive_rule`)."""
    markers = [m for m in metadata if type(m).__module__ == ft.__name__]
    others = [m for m in metadata if type(m).__module__ != ft.__name__]
    if len(markers) != 1:
        return None
    marker = markers[0]
    kind = type(marker)
    if kind is ft.Base64Binary:
        if base is bytes and len(others) == 1 and isinstance(others[0], EncodedBytes) \
                and others[0].encoder is Base64Encoder:
            return _base64
        return None
    if others:
        return None
    if kind in (ft.String, ft.Code, ft.Id, ft.Uri, ft.Canonical, ft.Oid, ft.Markdown):
        return _pattern_rule(marker) if base is str else None
    if kind in (ft.Integer, ft.UnsignedInt, ft.PositiveInt):
        return _pattern_rule(marker) if base is int else None
    if kind is ft.Url:
        return _no_whitespace_text
    if kind is ft.Xhtml:
        return _text if base is str else None
    if kind is ft.Date:
        return _date_rule(marker) if base is dt.date else None
    if kind is ft.Instant:
        return _datetime_rule(marker, instant=True) if base is dt.datetime else None
    if kind is ft.DateTime:
        return _datetime_rule(marker, instant=False) if base is dt.datetime else None
    if kind is ft.Time:
        return _time_rule(marker) if base is dt.time else None
    if kind is ft.Decimal:
        return _decimal_rule(kind) if base is decimal.Decimal else None
    return None  # Integer64, and anything newer


def _comments(value: Any) -> bool:
    """fhir_comments: a string or a non-empty list of strings (the reference takes either)."""
    if type(value) is list:
        return bool(value) and all(_text(item) for item in value)
    return _text(value)


# Tables ----------------------------------------------------------------------------------------

#: How a field's value is checked: ``target(value)``, or as one object / a list of objects of the
#: model ``target`` (inlined in :func:`_valid`: most of the tree is objects).
_CALL, _OBJECT, _OBJECTS, _RESOURCE, _RESOURCES = "call", "object", "objects", "resource", "resources"
#: How many objects deep the pre-check looks. ``fhir.resources`` itself fails (RecursionError) on
#: elements nested a couple of hundred deep, which a lighter recursion here would still accept; no
#: message comes near this depth, so anything deeper is handed to the library to judge.
_MAX_DEPTH = 32


class _Model:
    """The table of one FHIR type, filled on first use by :func:`_compile`.

    ``fields`` maps each JSON key to ``(kind, target, choice group or None)``; it is None when
    the type is declined. ``required`` lists ``(key, primitive-extension key exempting it or None)``.
    """

    __slots__ = ("cls", "ready", "fields", "required", "required_keys", "required_groups", "at_least_one",
                 "complete")

    def __init__(self, cls: type):
        self.cls, self.ready = cls, False
        self.fields: dict[str, tuple[str, Any, int | None]] | None = None
        self.required: tuple[tuple[str, str | None], ...] = ()
        self.required_keys: frozenset[str] = frozenset()
        self.required_groups: tuple[int, ...] = ()
        self.at_least_one: tuple[str, ...] = ()
        #: :func:`_complete` when the type has whole-object rules, else None (most have none).
        self.complete: Callable[[_Model, dict, set[int] | None], bool] | None = None


_MODELS: dict[type, _Model] = {}
_RESOURCES: dict[tuple[str | None, str], _Model] = {}
#: Guards compiling and the caches; re-entrant because compiling a type makes the (empty) tables
#: of the types it refers to.
_LOCK = threading.RLock()


def _model_of(cls: type) -> _Model:
    """Return the table of ``cls`` (made empty here; filled when first used)."""
    model = _MODELS.get(cls)
    if model is None:
        with _LOCK:
            model = _MODELS.setdefault(cls, _Model(cls))
    return model


def _make_ready(model: _Model) -> None:
    """Fill ``model`` once, under the lock; ``ready`` is set last, after every other attribute."""
    with _LOCK:
        if not model.ready:
            try:
                _compile(model)
            except Exception:  # noqa: BLE001 - a class these rules cannot read is declined, once
                model.fields = None
            model.ready = True


def _resource_model(prefix: str | None, resource_type: Any) -> _Model | None:
    """Return the table of the concrete resource ``resource_type`` names, or None when unknown.

    ``prefix`` is the fhir_core type-map prefix of a Resource-typed field, which the reference
    dispatches through; None at the top level, where :func:`~gateway.model.fhir.validate_resource`
    uses :func:`~gateway.model.fhir.model_class` alone.
    Only the resources found are remembered: ``resourceType`` comes from the sender, and a cache of
    every name ever sent would grow without bound.
    """
    if type(resource_type) is not str:
        return None
    found = _RESOURCES.get((prefix, resource_type))
    if found is not None or resource_type in _ABSTRACT_RESOURCES:
        return found
    try:
        cls = model_class(resource_type)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    if not (cls.has_resource_base() and cls.get_resource_type() == resource_type
            and (prefix is None or FHIR_TYPES_MAPS.get(f"{prefix}{resource_type}Type")
                 == f"{cls.__module__}.{cls.__qualname__}")):
        return None
    found = _model_of(cls)
    with _LOCK:
        _RESOURCES[(prefix, resource_type)] = found
    return found


class _ResourceField:
    """A Resource-typed field (``Bundle.entry.resource``, ``contained``): checked in :func:`_valid`
    as the resource its ``resourceType`` names, one level deeper."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str):
        self.prefix = prefix


def _list_check(item: Check) -> Check:
    """A JSON array of at least one item, every item passing ``item`` (so no nulls)."""
    def check(value: Any) -> bool:
        if type(value) is not list or not value:
            return False
        for one in value:
            if not item(one):
                return False
        return True
    return check


def _strip_none(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (``X | Y | None`` -> ``Union[X, Y]``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a not in _NONE_TYPES)
        return args[0] if len(args) == 1 else typing.Union[args]
    return annotation


def _classify(annotation: Any) -> tuple[Check | type, bool] | None:
    """Return ``(check of one value or model class, is a list)`` for a field's annotation, or None
    when it is not understood."""
    annotation = _strip_none(annotation)
    if annotation == typing.Union[str, typing.List[str]]:
        return _comments, False
    many = typing.get_origin(annotation) is list
    if many:
        (annotation,) = typing.get_args(annotation)
        annotation = _strip_none(annotation)
    if annotation is bool:
        return _boolean, many
    if typing.get_origin(annotation) is typing.Annotated:
        check = _primitive_rule(annotation.__origin__, annotation.__metadata__)
        return (check, many) if check is not None else None
    if isinstance(annotation, type) and issubclass(annotation, ft.FhirElementOrResourceBase):
        if annotation.get_model_klass().__name__ == "Resource":
            return _ResourceField(annotation._prefix), many
        return None  # Element-typed fields: not used by the package's resources
    if isinstance(annotation, type) and issubclass(annotation, ft.FhirBase):
        return annotation.get_model_klass(), many
    return None


def _supported_class(cls: type) -> bool:
    """True when ``cls`` validates only as the rules here mirror (config, validators, hooks)."""
    if not (isinstance(cls, type) and issubclass(cls, FHIRAbstractModel)):
        return False
    if set(cls.model_config) - _KNOWN_CONFIG or cls.__init__ is not FHIRAbstractModel.__init__:
        return False
    if cls.__pydantic_post_init__ is not None:
        return False
    for method in ("_validate_one_of_many", "_validate_required_primitive_elements"):
        if getattr(cls, method) is not getattr(FHIRAbstractModel, method):
            return False
    decorators = cls.__pydantic_decorators__
    if decorators.field_validators or decorators.validators or decorators.root_validators:
        return False
    names = {d.func.__qualname__ for d in decorators.model_validators.values()}
    return names - {_AT_LEAST_ONE_VALIDATOR} == _BASE_VALIDATORS


def _compile(model: _Model) -> None:
    """Fill ``model`` from its class's ``model_fields``; leave ``fields`` None when not understood."""
    cls = model.cls
    if not _supported_class(cls):
        return
    fields: dict[str, tuple[str, Any, int | None]] = {}
    groups: dict[str, int] = {}
    group_required: dict[int, bool] = {}
    required: dict[str, str | None] = {}
    probe = cls.model_construct()
    own_required = dict(probe.get_required_fields())
    own_groups = {member: prefix for prefix, members in probe.get_one_of_many_fields().items()
                  for member in members}
    for key, info in cls.model_fields.items():
        alias = info.alias or key
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required") or key in own_required:
            # fhir_core lets a required primitive be absent when its ``_field`` carries an extension;
            # pydantic's own required fields (``default=...``) have no such exemption.
            ext_key = None if info.is_required() else own_required.get(key)
            required[alias] = cls.model_fields[ext_key].alias if ext_key else None
        classified = _classify(info.annotation) if not info.metadata else None
        if classified is None:
            continue  # present -> an unknown key -> declined
        target, many = classified
        if isinstance(target, type):
            field: tuple = (_OBJECTS if many else _OBJECT, _model_of(target))
        elif isinstance(target, _ResourceField):
            field = (_RESOURCES if many else _RESOURCE, target.prefix)
        else:
            enum = extra.get("enum_values")
            if enum and _ENUM_CUT_SHORT not in enum:
                target = _enum_check(target, enum)
            field = (_CALL, _list_check(target) if many else target)
        group = None
        prefix = extra.get("one_of_many")
        if prefix != own_groups.get(key):
            return  # the field's schema and the model's method describe the choice differently: decline
        if prefix:
            if many or not isinstance(extra.get("one_of_many_required"), bool):
                return
            group = groups.setdefault(prefix, len(groups))
            group_required[group] = group_required.get(group, False) or extra["one_of_many_required"]
        fields[alias] = (*field, group)
    if cls.has_resource_base():
        resource_type = cls.get_resource_type()
        fields["resourceType"] = (_CALL, lambda value: type(value) is str and value == resource_type, None)
        required["resourceType"] = None
    validators = {d.func.__qualname__ for d in cls.__pydantic_decorators__.model_validators.values()}
    if _AT_LEAST_ONE_VALIDATOR in validators:
        model.at_least_one = tuple(a for a in ("id", "extension", "fhir_comments") if a in fields)
        if not model.at_least_one:
            return
    model.required = tuple(required.items())
    model.required_keys = frozenset(required)
    model.required_groups = tuple(g for g, is_required in group_required.items() if is_required)
    if model.required or model.required_groups or model.at_least_one:
        model.complete = _complete
    model.fields = fields


def _enum_check(check: Check, values: typing.Iterable) -> Check:
    """A coded value limited to ``enum_values`` (each of which passes ``check`` itself)."""
    allowed = frozenset(v for v in values if check(v))
    return lambda value: type(value) is str and value in allowed


# Checking --------------------------------------------------------------------------------------

def _valid(model: _Model, data: dict, depth: int = 0) -> bool:
    """True when ``data`` (a dict, ``depth`` objects deep) meets every rule of ``model``."""
    if not model.ready:
        _make_ready(model)
    fields = model.fields
    if fields is None or not data or depth > _MAX_DEPTH:
        return False
    seen = None
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            return False
        kind, target, group = field
        if kind is _CALL:
            if not target(value):
                return False
        elif kind is _OBJECT:
            if type(value) is not dict or not _valid(target, value, depth + 1):
                return False
        elif kind is _OBJECTS:
            if type(value) is not list or not value:
                return False
            for item in value:
                if type(item) is not dict or not _valid(target, item, depth + 1):
                    return False
        else:  # _RESOURCE, _RESOURCES: target is the type-map prefix
            items = value if kind is _RESOURCES else (value,)
            if type(items) is not list and kind is _RESOURCES or not items:
                return False
            for item in items:
                if type(item) is not dict:
                    return False
                found = _resource_model(target, item.get("resourceType"))
                if found is None or not _valid(found, item, depth + 1):
                    return False
        if group is not None:
            if seen is None:
                seen = {group}
            elif group in seen:
                return False
            else:
                seen.add(group)
    return model.complete is None or model.complete(model, data, seen)


def _complete(model: _Model, data: dict, seen: set[int] | None) -> bool:
    """The rules on the object as a whole: required elements and choices, FHIRPrimitiveExtension's."""
    if not data.keys() >= model.required_keys:
        for key, ext in model.required:
            if key not in data and (ext is None or "extension" not in data.get(ext, ())):
                return False
    for group in model.required_groups:
        if seen is None or group not in seen:
            return False
    if model.at_least_one and not any(key in data for key in model.at_least_one):
        return False
    return True


def certainly_valid(resource: Any) -> bool:
    """True only when ``fhir.resources``' ``model_validate`` certainly accepts ``resource``.

    False means "not sure": a problem was found, or something the rules do not
    cover. Never raises.
    """
    if type(resource) is not dict:
        return False
    try:
        model = _resource_model(None, resource.get("resourceType"))
        return model is not None and _valid(model, resource)
    except Exception:  # noqa: BLE001 - anything unexpected (RecursionError...) means "not sure"
        return False
