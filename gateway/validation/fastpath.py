"""A faster evaluator for the small part of FHIRPath the standard's rules use; fhirpathpy stays the judge.

fhirpathpy wraps every node it visits in typed objects, which costs about
2 ms per rule on a referral message: twenty-odd rules would make validation,
on the gateway's accept path, tens of times slower. :func:`compile_fast`
turns the parse tree that fhirpathpy's own parser gives into Python closures
over the JSON as it is, for the constructs the rules use: member access
(choice elements such as ``value`` read as ``valueBoolean``...),
``where``, ``exists``, ``empty``, ``first``, ``count``, ``not``,
``extension``, ``startsWith``, ``matches``, ``lower``, ``ofType``/``is``
with a resource type, ``=``, ``>``, ``in``, ``|``, ``and``, ``or``,
``implies``, literals. Anything else (another function, a primitive's
extension ``_value``, a type the data does not have) is not guessed at:
compiling gives ``None``, or evaluating raises :class:`Unsupported`, and the
caller hands the expression to fhirpathpy. A test runs every rule through
both evaluators on every case of the standard and the golden outputs, and on
variants of them with each element taken out, and requires the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from fhirpathpy.models import models
from fhirpathpy.parser import parse

Collection = list
Fn = Callable[[Collection], Collection]


class Unsupported(Exception):
    """The data or the expression goes beyond what this evaluator does; evaluate with fhirpathpy."""


class EvaluationError(Exception):
    """The expression cannot be evaluated on this data (FHIRPath's error: a rule then does not hold)."""


def _choice_names() -> dict[str, tuple[str, ...]]:
    """Return ``{element name: (JSON suffixes...)}`` for the choice elements of FHIR R4 (``value``...)."""
    out: dict[str, set[str]] = {}
    for path, types in models["r4"]["choiceTypePaths"].items():
        name = path.rsplit(".", 1)[-1]
        out.setdefault(name, set()).update(t[:1].upper() + t[1:] for t in types)
    return {name: tuple(sorted(suffixes)) for name, suffixes in out.items()}


_CHOICES = _choice_names()
def _resource_types() -> frozenset[str]:
    parents = models["r4"]["type2Parent"]

    def is_resource(name: str) -> bool:
        while name in parents:
            name = parents[name]
            if name == "Resource":
                return True
        return False
    return frozenset(name for name in parents if is_resource(name))


_RESOURCE_TYPES = _resource_types()


def _member(name: str) -> Fn:
    suffixes = _CHOICES.get(name, ())

    def get(items: Collection) -> Collection:
        out = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if "_" + name in item:
                raise Unsupported(f"primitive extension _{name}")
            value = item.get(name)
            if value is None and suffixes:
                for suffix in suffixes:
                    if "_" + name + suffix in item:
                        raise Unsupported(f"primitive extension _{name}{suffix}")
                    if name + suffix in item:
                        value = item[name + suffix]
                        break
            if value is None:
                continue
            if isinstance(value, list):
                out.extend(v for v in value if v is not None)
            else:
                out.append(value)
        return out
    return get


def _single(items: Collection):
    if len(items) > 1:
        raise EvaluationError("a collection of more than one item where one was expected")
    return items[0] if items else None


def _truth(items: Collection) -> bool | None:
    """A Boolean operand: None for empty. Other singletons are left to fhirpathpy (its reading is the judge)."""
    if not items:
        return None
    value = _single(items)
    if not isinstance(value, bool):
        raise Unsupported(f"a {type(value).__name__} where a Boolean was expected")
    return value


def _string(items: Collection, what: str) -> str | None:
    value = _single(items)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EvaluationError(f"{what} of a {type(value).__name__}")
    return value


def _equal(a, b) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _functions(name: str, params: list, focus_fn: Fn) -> Fn:
    if name == "exists" and not params:
        return lambda c: [bool(focus_fn(c))]
    if name == "empty" and not params:
        return lambda c: [not focus_fn(c)]
    if name == "first" and not params:
        return lambda c: focus_fn(c)[:1]
    if name == "count" and not params:
        return lambda c: [len(focus_fn(c))]
    if name == "not" and not params:
        def negate(c):
            value = _truth(focus_fn(c))
            return [] if value is None else [not value]
        return negate
    if name == "where" and len(params) == 1:
        criteria = params[0].fn

        def where(c):
            out = []
            for item in focus_fn(c):
                if _truth(criteria([item])):
                    out.append(item)
            return out
        return where
    if name == "extension" and len(params) == 1 and params[0].literal is not None:
        url = params[0].literal
        return lambda c: [e for item in focus_fn(c) if isinstance(item, dict)
                          for e in _as_list(item.get("extension")) if isinstance(e, dict) and e.get("url") == url]
    if name in ("startsWith", "matches") and len(params) == 1 and isinstance(params[0].literal, str):
        argument = params[0].literal
        pattern = re.compile(argument) if name == "matches" else None

        def test(c):
            value = _string(focus_fn(c), name)
            if value is None:
                return []
            return [bool(pattern.search(value))] if pattern else [value.startswith(argument)]
        return test
    if name == "lower" and not params:
        def lower(c):
            value = _string(focus_fn(c), "lower()")
            return [] if value is None else [value.lower()]
        return lower
    if name in ("ofType", "is") and len(params) == 1 and params[0].type_name in _RESOURCE_TYPES:
        wanted = params[0].type_name
        if name == "ofType":
            return lambda c: [i for i in focus_fn(c) if isinstance(i, dict) and i.get("resourceType") == wanted]

        def is_type(c):
            value = _single(focus_fn(c))
            return [] if value is None else [isinstance(value, dict) and value.get("resourceType") == wanted]
        return is_type
    raise Unsupported(f"function {name}() with {len(params)} parameter(s)")


class _Compiled:
    """A compiled node: ``fn`` maps the input collection to the output; a literal or type name when it is one."""

    def __init__(self, fn: Fn, literal=None, type_name: str | None = None, constant: list | None = None):
        self.fn, self.literal, self.type_name = fn, literal, type_name
        # The result whatever the input, for expressions of literals only (a list of codes).
        self.constant = [literal] if literal is not None else constant

    def __call__(self, c):
        return self.fn(c)


def _as_list(value) -> list:
    """A JSON value as FHIRPath navigates it: a list as it is, nothing as empty, anything else as one item."""
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _children(node: dict) -> list[dict]:
    return node.get("children") or []


def _compile(node: dict, focus: Fn | None = None) -> _Compiled:
    kind = node.get("type")
    kids = _children(node)
    if kind is None or kind in ("TermExpression", "InvocationTerm", "LiteralTerm", "ParenthesizedTerm"):
        if len(kids) != 1:
            raise Unsupported(f"{kind} with {len(kids)} children")
        return _compile(kids[0], focus)
    if kind == "StringLiteral":
        text = node["text"][1:-1]
        if "\\" in text:
            raise Unsupported("escapes in a string literal")
        return _Compiled(lambda c, v=text: [v], literal=text)
    if kind == "BooleanLiteral":
        value = node["text"] == "true"
        return _Compiled(lambda c, v=value: [v], literal=value)
    if kind == "NumberLiteral":
        text = node["text"]
        value = float(text) if "." in text else int(text)
        return _Compiled(lambda c, v=value: [v], literal=value)
    if kind == "MemberInvocation":
        name = kids[0]["text"]
        if focus is None and name[:1].isupper():
            # A type name: a parameter of ofType() or is(); anywhere else FHIRPath's type filter, not done here.
            def type_filter(c):
                raise Unsupported(f"type name {name} as an expression")
            return _Compiled(type_filter, type_name=name)
        get = _member(name)
        source = focus or (lambda c: c)
        return _Compiled(lambda c: get(source(c)))
    if kind == "FunctionInvocation":
        functn = kids[0]
        name = _children(functn)[0]["text"]
        params = [_compile(p) for p in _children(_children(functn)[1])] if len(_children(functn)) > 1 else []
        return _Compiled(_functions(name, params, focus or (lambda c: c)))
    if kind == "InvocationExpression":
        left = _compile(kids[0], focus)
        return _compile(kids[1], left.fn)
    if kind in ("AndExpression", "OrExpression", "ImpliesExpression"):
        a, b = _compile(kids[0], focus), _compile(kids[1], focus)
        op = node["terminalNodeText"][0]
        return _Compiled(_logic(op, a.fn, b.fn))
    if kind == "EqualityExpression" and node["terminalNodeText"] == ["="]:
        a, b = _compile(kids[0], focus).fn, _compile(kids[1], focus).fn

        def equal(c):
            x, y = a(c), b(c)
            if not x or not y:
                return []
            return [len(x) == len(y) and all(_equal(p, q) for p, q in zip(x, y))]
        return _Compiled(equal)
    if kind == "InequalityExpression" and node["terminalNodeText"] == [">"]:
        a, b = _compile(kids[0], focus).fn, _compile(kids[1], focus).fn

        def greater(c):
            x, y = _single(a(c)), _single(b(c))
            if x is None or y is None:
                return []
            if isinstance(x, bool) or isinstance(y, bool) or not all(isinstance(v, (int, float)) for v in (x, y)):
                raise Unsupported("> on values other than numbers")
            return [x > y]
        return _Compiled(greater)
    if kind == "MembershipExpression" and node["terminalNodeText"] == ["in"]:
        a, b = _compile(kids[0], focus), _compile(kids[1], focus)

        if b.constant is not None:
            keys = frozenset((type(v), v) for v in b.constant)

            def member_of_constant(c):
                x = a(c)
                if not x:
                    return []
                value = _single(x)
                return [isinstance(value, (str, bool, int, float)) and (type(value), value) in keys]
            return _Compiled(member_of_constant)

        def member(c):
            x = a(c)
            if not x:
                return []
            value = _single(x)
            return [any(_equal(value, v) for v in b(c))]
        return _Compiled(member)
    if kind == "UnionExpression":
        left, right = _compile(kids[0], focus), _compile(kids[1], focus)
        a, b = left.fn, right.fn
        if left.constant is not None and right.constant is not None:
            values: list = []
            for v in left.constant + right.constant:
                if not any(_equal(v, w) for w in values):
                    values.append(v)
            return _Compiled(lambda c: list(values), constant=values)

        def union(c):
            out = []
            for v in a(c) + b(c):
                if not any(_equal(v, w) for w in out):
                    out.append(v)
            return out
        return _Compiled(union)
    raise Unsupported(f"{kind} {node.get('terminalNodeText')}")


def _logic(op: str, a: Fn, b: Fn) -> Fn:
    def run(c):
        x = _truth(a(c))
        if op == "and":
            if x is False:
                return [False]
            y = _truth(b(c))
            if y is False:
                return [False]
            return [True] if x is True and y is True else []
        if op == "or":
            if x is True:
                return [True]
            y = _truth(b(c))
            if y is True:
                return [True]
            return [False] if x is False and y is False else []
        if op == "implies":
            if x is False:
                return [True]
            y = _truth(b(c))
            if x is True:
                return [] if y is None else [y]
            return [True] if y is True else []
        raise Unsupported(op)
    return run


@cache
def compile_fast(expression: str) -> Fn | None:
    """Return a function from a resource (dict) to the FHIRPath result, or ``None`` when unsupported.

    The function raises :class:`Unsupported` for data it does not handle,
    and :class:`EvaluationError` where FHIRPath gives an error.
    """
    try:
        compiled = _compile(parse(expression)).fn
    except Unsupported:
        return None
    return lambda resource: compiled([resource])
