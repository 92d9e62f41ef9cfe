"""OperationOutcome ``issue.expression`` in FHIR R4's simple form: element names and indexes, one node.

The checks name places with full FHIRPath (``extension('…')``, ``where(…)``,
``ofType(…)``), which tells a person exactly what is meant but is not what
R4 asks of ``issue.expression``: "simple FHIRPath limited to element names,
repetition indicators and the default child accessor". :func:`simple_expression`
walks the rich expression over the message and returns the deepest node it
names that exists and is one node (``Bundle.entry[3].resource.extension[2]``;
for something missing, the element that should hold it; a repeating element
named without choosing an item, such as ``identifier``, gives its parent). The validator keeps
the rich form beside it in ``issue.location``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.validation.fastpath import _CHOICES
from gateway.validation.rules import is_true

_INDEXED = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\[(\d+)\]$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_CALL = re.compile(r"^([A-Za-z]+)\((.*)\)$", re.S)


@lru_cache(maxsize=4096)
def split_steps(expression: str) -> tuple[str, ...]:
    """Return the steps of a FHIRPath path, split at the dots outside parentheses and quotes."""
    if "(" not in expression and "'" not in expression:
        return tuple(expression.split("."))
    steps, depth, quoted, current = [], 0, False, []
    for char in expression:
        if char == "'" and depth >= 0:
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ".":
            steps.append("".join(current))
            current = []
            continue
        current.append(char)
    steps.append("".join(current))
    return tuple(steps)


def _child(path: str, node, name: str) -> list[tuple[str, object]]:
    if not isinstance(node, dict):
        return []
    key = name if name in node else next((name + s for s in _CHOICES.get(name, ()) if name + s in node), None)
    if key is None:
        return []
    value = node[key]
    if isinstance(value, list):
        return [(f"{path}.{name}[{i}]", v) for i, v in enumerate(value)]
    return [(f"{path}.{name}", value)]


def _step(candidates: list[tuple[str, object]], step: str) -> list[tuple[str, object]] | None:
    """Return the candidates after one step, or ``None`` for a step the simple form cannot follow."""
    if _NAME.match(step):
        return [c for path, node in candidates for c in _child(path, node, step)]
    indexed = _INDEXED.match(step)
    if indexed:
        name, index = indexed.group(1), int(indexed.group(2))
        out = []
        for path, node in candidates:
            value = node.get(name) if isinstance(node, dict) else None
            if isinstance(value, list) and index < len(value):
                out.append((f"{path}.{name}[{index}]", value[index]))
        return out
    call = _CALL.match(step)
    if not call:
        return None
    function, argument = call.groups()
    if function == "first" and not argument:
        return candidates[:1]
    if function == "tail" and not argument:
        return candidates[1:]
    if function == "where":
        return [(p, n) for p, n in candidates if isinstance(n, dict) and is_true(argument, n)]
    if function in ("ofType", "is") and _NAME.match(argument):
        return [(p, n) for p, n in candidates if isinstance(n, dict) and n.get("resourceType") == argument]
    if function == "extension" and argument.startswith("'") and argument.endswith("'"):
        url = argument[1:-1]
        return [(f"{path}.extension[{i}]", e) for path, node in candidates
                if isinstance(node, dict) and isinstance(node.get("extension"), list)
                for i, e in enumerate(node["extension"]) if isinstance(e, dict) and e.get("url") == url]
    return None


def simple_expression(bundle: dict, expression: str) -> str:
    """Return the simple-form FHIRPath of the deepest single existing node ``expression`` names in ``bundle``.

    ``expression`` starts at ``Bundle``; anything else gives ``"Bundle"``.
    """
    steps = split_steps(expression)
    if steps[0] != "Bundle":
        return "Bundle"
    candidates: list[tuple[str, object]] = [("Bundle", bundle)]
    best = "Bundle"
    for step in steps[1:]:
        following = _step(candidates, step)
        if not following:
            break
        # A repeating element named without choosing one of its items names them all, not its only item.
        unchosen = bool(_NAME.match(step)) and any(
            isinstance(node, dict) and isinstance(node.get(step), list) for _, node in candidates)
        candidates = following
        if len(candidates) == 1 and not unchosen:
            best = candidates[0][0]
    return best
