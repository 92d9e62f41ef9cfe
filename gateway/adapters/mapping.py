"""The declarative mapping engine: a mapping file turns raw records into canonical ones.

A mapping (``mappings/<format>/mapping.yaml``) is data: which reader reads
the file, where each canonical field comes from (a column, a JSON path or an
XPath), how its value is parsed (a named transform from
:mod:`gateway.adapters.transforms`), which ConceptMap codes it, whether it is
required, and which records are referrals. ``docs/mappings.md`` describes the
format; a vendor's variant of a format needs only a new mapping file and
ConceptMaps, no Python.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import yaml

from gateway.adapters import hooks
from gateway.adapters.accessors import CsvAccessor, JsonAccessor, XmlAccessor
from gateway.adapters.base import BadRecord, RawRecord
from gateway.adapters.conceptmap import ConceptMap
from gateway.adapters.errors import MappingError, Problem, RecordRejected, RecordSkipped
from gateway.adapters.readers import get_reader
from gateway.adapters.transforms import FieldContext, FieldProblem, get_transform
from gateway.model import systems as S

_SPEC_KEYS = {"from", "value", "parse", "args", "split", "conceptmap", "required", "merge", "each", "fields",
              "set", "relationship_map", "all", "as_dict", "action", "default"}



def _set_path(record: dict, path: str, value, merge: bool = False) -> None:
    parts = path.split(".")
    node = record
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    last = parts[-1]
    if merge and isinstance(value, dict):
        node.setdefault(last, {}).update(value)
    else:
        node[last] = value


def _get_path(record: dict, path: str):
    node = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


class Mapping:
    """One loaded mapping file, usable as an :class:`~gateway.adapters.base.Adapter`."""

    def __init__(self, spec: dict, directory: Path, source: Path | None = None):
        self.spec, self.directory, self.source = spec, directory, source
        where = source or directory
        for key in ("format", "version", "reader", "fields"):
            if key not in spec:
                raise MappingError(f"{where}: the mapping has no '{key}'")
        self.format_id: str = spec["format"]
        self.description: str = spec.get("description", "")
        self.version: str = str(spec["version"])
        self.reader_options: dict = dict(spec["reader"])
        self._reader = get_reader(self.reader_options.pop("type"))
        self.namespaces: dict = spec.get("namespaces") or {}
        self.timezone = ZoneInfo(spec.get("timezone", "Europe/London"))
        self._conceptmaps: dict[str, ConceptMap] = {}
        self.post_hooks = [hooks.get_hook(name) for name in spec.get("post", [])]
        self._synth = spec.get("synth")
        self._check_specs(spec["fields"], where)
        # Each field spec compiled once into a function (keyed by the spec object).
        self._compiled = {}
        for field_spec in [spec.get("record_id")] + list(spec["fields"].values()) + \
                [s for specs in (spec.get("lists") or {}).values() for s in specs]:
            if field_spec:
                self._compiled[id(field_spec)] = self._compile(field_spec)
        for specs in (spec.get("lists") or {}).values():
            for s in specs:
                self._check_specs({"_": s}, where)
        if self.reader_options.get("required_columns") is None and self._reader_kind == "csv":
            self.reader_options["required_columns"] = self.required_sources()
        if self._reader_kind == "csv":
            self.reader_options.setdefault("known_columns", sorted(self.all_sources()))

    @classmethod
    def load(cls, path: Path) -> "Mapping":
        """Load ``mapping.yaml`` (or a directory holding one); raises :class:`MappingError`."""
        path = Path(path)
        file = path / "mapping.yaml" if path.is_dir() else path
        try:
            spec = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"{file}: cannot read the mapping ({exc})") from None
        if not isinstance(spec, dict):
            raise MappingError(f"{file}: a mapping must be a YAML mapping of keys to values")
        return cls(spec, file.parent, file)

    @property
    def _reader_kind(self) -> str:
        return self.spec["reader"]["type"]

    def _check_specs(self, fields: dict, where) -> None:
        for target, spec in fields.items():
            if not isinstance(spec, dict):
                raise MappingError(f"{where}: field '{target}' must be a mapping with 'from' or 'value'")
            unknown = set(spec) - _SPEC_KEYS
            if unknown:
                raise MappingError(f"{where}: field '{target}' has unknown keys {sorted(unknown)}")
            if not ({"from", "value", "each"} & set(spec)):
                raise MappingError(f"{where}: field '{target}' needs 'from', 'value' or 'each'")
            if "parse" in spec:
                try:
                    get_transform(spec["parse"])
                except KeyError as exc:
                    raise MappingError(f"{where}: field '{target}': {exc.args[0]}") from None
            code_map = (spec.get("args") or {}).get("map") or {}
            odd = [k for k, v in code_map.items() if not isinstance(k, str) or not isinstance(v, str)]
            if odd:
                # YAML reads bare yes/no/on/off as booleans: a silent trap in code tables.
                raise MappingError(f"{where}: field '{target}': code map entries {odd!r} are not text; "
                                   "quote them (e.g. \"yes\": \"yes\")")
            for key in ("conceptmap", "relationship_map"):
                if key in spec:
                    self.conceptmap(spec[key])
            if "fields" in spec:
                self._check_specs(spec["fields"], where)

    def synth(self, out: BinaryIO, count: int, seed: int = 0) -> None:
        """Write ``count`` fictional records in this format; raises LookupError when it has no generator."""
        if not self._synth:
            raise LookupError(f"the format {self.format_id!r} has no synthetic data generator")
        module, _, func = self._synth.partition(":")
        getattr(import_module(module), func)(out, count, seed=seed)

    # -- the pieces a mapping refers to ---------------------------------------------

    def conceptmap(self, name: str) -> ConceptMap:
        """Return the ConceptMap file ``name`` beside the mapping (loaded once)."""
        if name not in self._conceptmaps:
            try:
                self._conceptmaps[name] = ConceptMap.load(self.directory / name)
            except ValueError as exc:
                raise MappingError(str(exc)) from None
        return self._conceptmaps[name]

    def _sources(self, only_required: bool) -> set[str]:
        out: set[str] = set()

        def visit(spec):
            if only_required and not spec.get("required"):
                return
            src = spec.get("from")
            if isinstance(src, list):
                out.update(src)
            elif src:
                out.add(src)

        for key in ("record_id",):
            if key in self.spec:
                visit(self.spec[key])
        for spec in self.spec["fields"].values():
            visit(spec)
        for specs in (self.spec.get("lists") or {}).values():
            for spec in specs:
                visit(spec)
        for cond in _conditions(self.spec.get("referral", {}).get("when")):
            if not only_required and "field" in cond:
                out.add(cond["field"])
        return out

    def required_sources(self) -> list[str]:
        return sorted(self._sources(True))

    def all_sources(self) -> set[str]:
        return self._sources(False)

    # -- the Adapter contract ------------------------------------------------------

    def records(self, stream: BinaryIO, filename: str) -> Iterator[RawRecord | BadRecord]:
        """Yield the raw records of ``stream`` with this mapping's reader."""
        options = dict(self.reader_options)
        options.setdefault("mappings_dir", self.directory)
        return self._reader(stream, filename, options)

    def accessor(self, record: RawRecord, *, track: bool = False):
        """Return the accessor for ``record``; ``$context.<path>`` expressions read document-level facts.

        With ``track``, the accessor's ``used`` set records every expression read.
        """
        kind = self._reader_kind
        used = set() if track else None
        if kind == "csv":
            acc = CsvAccessor(record.data, record.location, used)
        elif kind.endswith("json"):
            acc = JsonAccessor(record.data, record.location if record.location != "/" else "", used)
        else:
            acc = XmlAccessor(record.data, record.location, self.namespaces, used)
        return ContextAware(acc, record.context)

    def translate(self, record: RawRecord, *, filename: str = "", now: dt.datetime | None = None,
                  accessor=None) -> list[dict]:
        """Return the canonical records for one raw record.

        Raises :class:`RecordRejected` listing every required value that is
        missing or unusable.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        acc = accessor or self.accessor(record)
        issues: list[dict] = []
        problems: list[Problem] = []
        canonical: dict = {
            "format": self.format_id,
            "mapping_version": self.version,
            "source": {"file": filename, "location": record.location, "line": record.line,
                       "signature_present": bool(record.context.get("signature_present"))},
            "sender": {"kind": self.spec.get("sender", {}).get("kind", "school")},
        }

        def evaluate(target: str, spec: dict, acc):
            source = _first(spec.get("from"))
            ctx = FieldContext(target, (acc, source) if source else record.location, now, self.timezone, issues)
            try:
                return self._compiled[id(spec)](acc, ctx)
            except FieldProblem as exc:
                if spec.get("required"):
                    problems.append(Problem(target, ctx.location, exc.reason, exc.action or spec.get("action", "")))
                else:
                    ctx.note(exc.reason + "; the value was left out of the message, the source keeps it",
                             exc.action, "unusable-value")
                return None

        def require(target: str, spec: dict, value) -> None:
            if value is None and spec.get("required") and not any(p.field == target for p in problems):
                where = acc.where(_first(spec["from"])) if spec.get("from") else record.location
                problems.append(Problem(target, where, f"'{_first(spec.get('from'))}' is missing or empty",
                                        spec.get("action", "Fill in this required field in the source system.")))

        gate = self.spec.get("skip_unless")
        if gate and not _holds(gate["when"], acc):
            # Decided before any field is read: such a record is not this gateway's business.
            raise RecordSkipped(gate["reason"])

        rid_spec = self.spec.get("record_id")
        if rid_spec:
            canonical["source"]["record_id"] = evaluate("record_id", rid_spec, acc)
            require("record_id", rid_spec, canonical["source"]["record_id"])
        for target, spec in self.spec["fields"].items():
            value = evaluate(target, spec, acc)
            require(target, spec, value)
            if value is not None:
                if target == "." and isinstance(value, dict):
                    canonical.update(value)
                else:
                    _set_path(canonical, target, value, merge=spec.get("merge", False))
        for target, specs in (self.spec.get("lists") or {}).items():
            items = []
            for spec in specs:
                value = evaluate(target, spec, acc)
                if value:
                    items.extend(value if isinstance(value, list) else [value])
            if items:
                _set_path(canonical, target, items)

        if problems:
            raise RecordRejected(problems, record.location)
        categories = _get_path(canonical, "concern.categories") or []
        if any(c.get("system") == S.CONCERN_CONTEXT and c.get("code") == "disclosure" for c in categories):
            # 'Disclosure' is not a harm: it records that the child told someone.
            _set_path(canonical, "concern.disclosure", True)
        if not canonical["source"].get("record_id"):
            canonical["source"]["record_id"] = record.location

        referral = self.spec.get("referral") or {"always": True}
        if referral.get("always") or _holds(referral.get("when"), acc):
            canonical["kind"] = "referral"
        else:
            canonical["kind"] = "concern"
            canonical["skip_reason"] = _format_reason(referral.get("not_referral", "not a referral"), acc)
        canonical["issues"] = issues
        records = [canonical]
        for hook in self.post_hooks:
            records = [out for rec in records for out in hook(rec)]
        if not records:
            raise RecordSkipped(self.spec.get("no_message_reason", "the record gives no message"))
        return records

    # -- values ----------------------------------------------------------------------

    def _compile(self, spec: dict):
        """Return ``fn(accessor, ctx) -> value`` for a field spec, decided once at load time.

        Raises :class:`FieldProblem` (from transforms) when a value is unusable.
        """
        if "each" in spec:
            each_expr = spec["each"]
            subs = [(target, self._compile(sub), _first(sub.get("from")) or "", bool(sub.get("required")),
                     bool(sub.get("merge"))) for target, sub in (spec.get("fields") or {}).items()]
            set_values = spec.get("set") or {}
            as_dict = spec.get("as_dict")
            relationship = self._relationship

            def each_fn(acc, ctx):
                out = []
                for sub_acc in acc.each(each_expr):
                    item: dict = {}
                    for target, fn, source, required, merge in subs:
                        sub_ctx = FieldContext(f"{ctx.field}.{target}", (sub_acc, source), ctx.now, ctx.timezone,
                                               ctx.issues)
                        try:
                            value = fn(sub_acc, sub_ctx)
                        except FieldProblem as exc:
                            if required:
                                raise
                            # One unusable value loses only itself, not the person or item it belongs to.
                            sub_ctx.note(exc.reason + "; the value was left out of the message, the source keeps it",
                                         exc.action, "unusable-value")
                            continue
                        if value is None:
                            continue
                        if target == "." and isinstance(value, dict):
                            item.update(value)
                        else:
                            _set_path(item, target, value, merge=merge)
                    item.update(set_values)
                    out.append(relationship(item, spec, ctx))
                if as_dict:
                    key, val = as_dict["key"], as_dict["value"]
                    return {str(i.get(key)): i.get(val) for i in out if i.get(key) is not None}
                return out
            return each_fn

        if "value" in spec:
            constant = spec["value"]
            return lambda acc, ctx: constant

        sources = tuple(spec["from"]) if isinstance(spec["from"], list) else (spec["from"],)
        all_values = bool(spec.get("all"))
        transform = get_transform(spec.get("parse", "text"))
        args = spec.get("args") or {}
        split = spec.get("split")
        conceptmap = spec.get("conceptmap")
        default = spec.get("default")
        set_values = spec.get("set") or {}
        wants_relationship = bool(spec.get("relationship_map") or set_values)
        categories, relationship = self._categories, self._relationship

        def value_fn(acc, ctx):
            for source in sources:
                raw = acc.get(source, all_values)
                if raw is not None and raw != "" and raw != []:
                    break
            else:
                return default
            if all_values:
                values = [v for v in (transform(v, args, ctx) for v in raw) if v is not None]
                return categories(values, spec, ctx) if conceptmap else values
            if split:
                values = [transform(p.strip(), args, ctx) for p in str(raw).split(split) if p.strip()]
                values = [v for v in values if v is not None]
                if conceptmap:
                    return categories(values, spec, ctx)
                return [relationship(dict(v, **set_values), spec, ctx) if isinstance(v, dict) else v
                        for v in values]
            value = transform(raw, args, ctx)
            if conceptmap and value is not None:
                return categories(value if isinstance(value, list) else [value], spec, ctx)
            if wants_relationship and isinstance(value, dict):
                value = relationship(dict(value, **set_values), spec, ctx)
            return value
        return value_fn

    def _categories(self, labels: list, spec: dict, ctx: FieldContext) -> list[dict]:
        """Map vendor labels to national categories; a label on no map is kept verbatim and flagged."""
        cmap = self.conceptmap(spec["conceptmap"])
        out = []
        for label in labels:
            targets = cmap.lookup(str(label))
            if not targets:
                out.append({"label": str(label), "mapped": False})
                ctx.note(f"category {label!r} is on no map: kept as written and flagged",
                         "Ask the gateway team to add it to the ConceptMap, or use a national category.",
                         "unmapped-category")
                continue
            for t in targets:
                out.append({"label": str(label), "mapped": True, "system": t.system, "code": t.code,
                            "display": t.display})
        return out

    def _relationship(self, person: dict, spec: dict, ctx: FieldContext) -> dict:
        rel = person.get("relationship")
        name = spec.get("relationship_map")
        if not name or not isinstance(rel, dict) or rel.get("code") or not rel.get("label"):
            return person
        targets = self.conceptmap(name).lookup(rel["label"])
        if targets:
            t = targets[0]
            person["relationship"] = {"code": t.code, "display": t.display, "text": rel["label"]}
        else:
            person["relationship"] = {"text": rel["label"]}
            ctx.note(f"relationship {rel['label']!r} is on no map: kept as written",
                     "Ask the gateway team to add it to the relationship ConceptMap.", "unmapped-relationship")
        return person


class ContextAware:
    """Wraps an accessor so that ``$context.a.b`` reads the record's document-level context."""

    PREFIX = "$context."

    def __init__(self, inner, context: dict):
        self.inner, self.context = inner, context
        self.used = inner.used

    def get(self, expr: str, all_values: bool = False):
        if expr.startswith(self.PREFIX):
            value = JsonAccessor(self.context, "").get(expr[len(self.PREFIX):], all_values)
            return value
        return self.inner.get(expr, all_values)

    def each(self, expr: str):
        return self.inner.each(expr)

    def where(self, expr: str) -> str:
        if expr and expr.startswith(self.PREFIX):
            return f"document {expr[len(self.PREFIX):]}"
        return self.inner.where(expr)

    def present(self) -> set[str]:
        return self.inner.present()


def _first(source):
    return source[0] if isinstance(source, list) else source


def _conditions(cond) -> Iterator[dict]:
    if not cond:
        return
    if "any" in cond or "all" in cond:
        for c in cond.get("any", []) + cond.get("all", []):
            yield from _conditions(c)
    else:
        yield cond


def _holds(cond, acc) -> bool:
    """Evaluate a rule: ``any``/``all`` of ``{field, equals|in|blank}`` or ``{exists: expr}`` tests."""
    if not cond:
        return False
    if "any" in cond:
        return any(_holds(c, acc) for c in cond["any"])
    if "all" in cond:
        return all(_holds(c, acc) for c in cond["all"])
    if "exists" in cond:
        found = acc.get(cond["exists"], True)
        return any(v not in (None, "", False) for v in found)
    value = acc.get(cond["field"])
    text = "" if value is None else str(value).strip()
    if "blank" in cond:
        return (text == "") == bool(cond["blank"])
    if "equals" in cond:
        return text.casefold() == str(cond["equals"]).casefold()
    if "in" in cond:
        return text.casefold() in {str(v).casefold() for v in cond["in"]}
    raise MappingError(f"referral rule {cond!r} needs 'equals', 'in' or 'blank'")


def _format_reason(template: str, acc) -> str:
    """Fill ``{source expression}`` placeholders (dotted paths allowed) with the record's values."""
    def fill(match):
        value = acc.get(match.group(1))
        return "" if value is None else str(value)
    return re.sub(r"\{([^{}]+)\}", fill, template)


def category_system(category: dict) -> str:
    """Return the code system of a mapped canonical category (national harm or context)."""
    return category.get("system") or S.CONCERN_CATEGORY
