"""Golden cases and rule checks for declarative mappings (``gateway mappings test``).

A case is a folder ``mappings/<format>/cases/<case>/`` holding ``input.*``
and ``expected.json`` (the messages, the error report and the counts); cases
are found by globbing, never listed by hand. Values that change every run
are named once (:data:`VOLATILE`) and stripped before comparing, and a
failing case prints a readable diff.

On top of the goldens, every message is checked against rules that hold for
any mapping: ids are unique, every reference resolves inside the Bundle, the
Bundle is valid FHIR R4, and no input field is silently left unused (a
mapping lists the fields it ignores on purpose under ``ignored_fields``, each
with its reason).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import io
import json
import re
from pathlib import Path

from gateway.adapters.base import BadRecord
from gateway.adapters.errors import MappingError, RecordRejected, RecordSkipped
from gateway.adapters.mapping import Mapping
from gateway.adapters.translate import translate_stream
from gateway.model import FhirInvalid, validate_resource

# Fixed translation time for goldens; what still varies is stripped below.
GOLDEN_NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.timezone.utc)

# (resourceType, element) pairs whose values change on every run.
VOLATILE = {("Bundle", "timestamp"), ("Bundle", "signature"), ("Provenance", "recorded")}
# Entries a golden does not compare: the national standard's verdict is tested with the standard
# (tests/validation); a mapping golden would otherwise change with every new SHOULD item.
NOT_COMPARED = {"OperationOutcome"}


def strip_volatile(resource):
    """Return a copy of ``resource`` (or a list of them) without the :data:`VOLATILE` values."""
    if isinstance(resource, list):
        return [strip_volatile(r) for r in resource]
    if isinstance(resource, dict):
        rtype = resource.get("resourceType")
        out = {k: strip_volatile(v) for k, v in resource.items() if (rtype, k) not in VOLATILE}
        if rtype == "Bundle" and "entry" in out:
            out["entry"] = [e for e in out["entry"] if e.get("resource", {}).get("resourceType") not in NOT_COMPARED]
        return out
    return resource


@dataclasses.dataclass
class CaseResult:
    name: str
    passed: bool
    messages: list[str]


def check_rules(bundle: dict) -> list[str]:
    """Return rule violations of one Bundle: unique ids, resolvable references, valid FHIR."""
    problems = []
    full_urls = [e.get("fullUrl") for e in bundle.get("entry", [])]
    ids = [(e["resource"]["resourceType"], e["resource"].get("id")) for e in bundle.get("entry", [])]
    for dup in sorted({u for u in full_urls if full_urls.count(u) > 1}):
        problems.append(f"fullUrl {dup} appears more than once")
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"{dup[0]}/{dup[1]} appears more than once")
    known = set(full_urls)

    def walk(node, path):
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("urn:uuid:") and ref not in known:
                problems.append(f"{path}.reference {ref} does not resolve inside the Bundle")
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(bundle, "Bundle")
    try:
        validate_resource(bundle)
    except FhirInvalid as exc:
        problems.extend(f"not valid FHIR R4: {p}: {m}" for p, m in exc.errors)
    return problems


def _normalise_used(expr: str) -> str:
    expr = re.sub(r"^\w+\((.*)\)$", r"\1", expr)  # boolean(ds:Signature) reads ds:Signature
    return expr[:-2] if expr.endswith("/.") else expr


def unused_fields(mapping: Mapping, stream, filename: str) -> dict[str, str]:
    """Return ``{field: first place}`` for input fields that hold a value the mapping never reads.

    Fields the mapping lists under ``ignored_fields`` are not reported.
    """
    ignored = set((mapping.spec.get("ignored_fields") or {}).keys())
    found: dict[str, str] = {}
    for raw in mapping.records(stream, filename):
        if isinstance(raw, BadRecord):
            continue
        # Columns the reader already reports as ignored (summary.ignored_fields) are not silent.
        ignored |= set(raw.context.get("ignored_columns") or [])
        acc = mapping.accessor(raw, track=True)
        try:
            mapping.translate(raw, filename=filename, now=GOLDEN_NOW, accessor=acc)
        except RecordSkipped:
            continue  # not this gateway's business, and the report says so: nothing is silently unused
        except RecordRejected:
            pass
        used = {_normalise_used(u) for u in acc.used}
        for path in acc.present():
            if path in ignored or path in used or any(path.startswith(u + "/") or path.startswith(u + ".")
                                                      for u in used):
                continue
            found.setdefault(path, raw.location)
    return found


def _diff(expected, actual, name: str) -> list[str]:
    a = json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(actual, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    return list(difflib.unified_diff(a, b, f"{name}/expected.json", f"{name} (now)", lineterm="", n=2))[:80]


def translate_case(mapping: Mapping, input_path: Path) -> dict:
    """Return what a case produces: ``{"summary", "messages", "errors"}`` (messages as written)."""
    from gateway.validation import validate_bundle

    out, errors = io.StringIO(), io.StringIO()
    with open(input_path, "rb") as stream:
        summary = translate_stream(mapping, stream, input_path.name, out, errors, now=GOLDEN_NOW,
                                   validator=lambda b: validate_bundle(b, now=GOLDEN_NOW, base=False))
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    counts = summary.as_dict()
    return {
        "summary": {k: counts[k] for k in ("records", "translated", "skipped", "rejected", "messages",
                                           "ignored_fields", "missing_fields", "encoding")},
        "messages": messages,
        "errors": [json.loads(line) for line in errors.getvalue().splitlines()],
    }


def run_golden_cases(root: Path, update: bool = False) -> list[CaseResult]:
    """Run every case under ``root`` (a mappings folder, one format's folder, or one case).

    With ``update``, write ``expected.json`` from what the mapping produces
    now (review the diff before committing it). Raises :class:`MappingError`
    when a mapping cannot be loaded.
    """
    root = Path(root)
    if (root / "expected.json").exists() or list(root.glob("input.*")):
        case_dirs = [root]
    else:
        case_dirs = sorted(p.parent for p in root.glob("**/cases/*/input.*"))
    results = []
    for case in case_dirs:
        format_dir = case.parent.parent
        name = f"{format_dir.name}/{case.name}"
        mapping = Mapping.load(format_dir / "mapping.yaml")
        inputs = sorted(case.glob("input.*"))
        if len(inputs) != 1:
            results.append(CaseResult(name, False, [f"expected one input.* file, found {len(inputs)}"]))
            continue
        actual = translate_case(mapping, inputs[0])
        messages: list[str] = []
        counts = actual["summary"]
        if counts["records"] != counts["translated"] + counts["skipped"] + counts["rejected"]:
            messages.append(f"counts do not add up: {counts}")
        for i, bundle in enumerate(actual["messages"]):
            messages += [f"message {i + 1}: {p}" for p in check_rules(bundle)]
        with open(inputs[0], "rb") as stream:
            for field, where in sorted(unused_fields(mapping, stream, inputs[0].name).items()):
                messages.append(f"input field {field!r} (first at {where}) is never read by the mapping; "
                                "map it or list it under ignored_fields with the reason")
        actual["messages"] = strip_volatile(actual["messages"])
        expected_path = case / "expected.json"
        if update:
            expected_path.write_text(json.dumps(actual, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                                     encoding="utf-8")
        elif not expected_path.exists():
            messages.append("no expected.json: run `gateway mappings test --update` and review it")
        else:
            expected = json.loads(expected_path.read_text(encoding="utf-8"))
            if expected != actual:
                messages += _diff(expected, actual, name)
        results.append(CaseResult(name, not messages, messages))
    return results


__all__ = ["GOLDEN_NOW", "VOLATILE", "CaseResult", "MappingError", "check_rules", "run_golden_cases",
           "strip_volatile", "translate_case", "unused_fields"]
