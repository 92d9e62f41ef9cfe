"""The standard's FHIRPath rules, compiled once and evaluated by the gateway (fhirpathpy).

An item's invariant and an applicability condition are FHIRPath
expressions on one resource of a named type (:class:`~gateway.validation.standard.Alternative`).
The gateway evaluates each expression on the resources of that type in the
message, which is what the published constraint on the Bundle says
(``entry.resource.ofType(T).where(expression).exists()``) without walking
the whole Bundle for every rule. A test evaluates every published constraint
on the whole Bundle and checks that the two agree.

A FHIRPath result counts as true only when it is the single value ``true``
(as FHIR validators read a constraint). An expression that cannot be
evaluated on odd input (a value of the wrong JSON type) counts as false:
the FHIR base validation reports the type error itself. The common
constructs run through :mod:`gateway.validation.fastpath` (fhirpathpy's
parser, then plain Python over the JSON), which hands anything else to
fhirpathpy; a test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from gateway.validation.fastpath import EvaluationError, Unsupported, compile_fast
from gateway.validation.standard import Alternative

R4 = models["r4"]
_OPTIONS = {"returnRawData": True}


class FhirPathError(ValueError):
    """A FHIRPath expression of the standard does not parse; the message names the expression."""


class _Refuse(ErrorListener):
    def syntaxError(self, recognizer, offending_symbol, line, column, msg, e):
        raise FhirPathError(f"column {column + 1}: {msg}")


def check_syntax(expression: str) -> None:
    """Raise :class:`FhirPathError` (naming the column) unless ``expression`` is FHIRPath from end to end.

    fhirpathpy's own parser recovers from syntax errors (``exists(`` parses),
    so the same generated grammar is run here with errors refused.
    """
    lexer = FHIRPathLexer(InputStream(expression))
    parser = FHIRPathParser(CommonTokenStream(lexer))
    for recognizer in (lexer, parser):
        recognizer.removeErrorListeners()
        recognizer.addErrorListener(_Refuse())
    try:
        parser.entireExpression()
    except FhirPathError as exc:
        raise FhirPathError(f"FHIRPath {expression!r} does not parse: {exc}") from None


@cache
def compiled(expression: str) -> Callable[[dict], list]:
    """Return ``expression`` compiled once (FHIR R4 model); raises :class:`FhirPathError` when it does not parse."""
    check_syntax(expression)
    try:
        return fhirpathpy.compile(expression, model=R4, options=_OPTIONS)
    except Exception as exc:  # the parser raises its own exception types
        raise FhirPathError(f"FHIRPath {expression!r} does not parse: {exc}") from None


def is_true(expression: str, resource: dict) -> bool:
    """Return True when ``expression`` evaluated on ``resource`` is the single value ``true``.

    Evaluated by :mod:`gateway.validation.fastpath` when it can, else by fhirpathpy.
    """
    fast = compile_fast(expression)
    if fast is not None:
        try:
            result = fast(resource)
        except EvaluationError:
            return False
        except Unsupported:
            return is_true_by_fhirpathpy(expression, resource)
        return len(result) == 1 and result[0] is True
    return is_true_by_fhirpathpy(expression, resource)


def is_true_by_fhirpathpy(expression: str, resource: dict) -> bool:
    """Return what :func:`is_true` returns, always evaluated by fhirpathpy (the judge of the fast path)."""
    try:
        result = compiled(expression)(resource)
    except Exception:  # fhirpathpy raises plain Exceptions for type errors (lower() on a boolean...)
        return False
    return len(result) == 1 and result[0] is True


def holds(alternative: Alternative, bundle: dict, by_type: dict[str, list[tuple[int, dict]]]) -> bool:
    """Return True when ``alternative`` holds in the message: on the Bundle, or on one resource of its type."""
    if alternative.resource == "Bundle":
        return is_true(alternative.expression, bundle)
    return any(is_true(alternative.expression, resource) for _, resource in by_type.get(alternative.resource, ()))


def any_holds(alternatives: Iterable[Alternative], bundle: dict, by_type) -> bool:
    """Return True when one of ``alternatives`` holds (an item's invariant)."""
    return any(holds(a, bundle, by_type) for a in alternatives)


def all_hold(conditions: Iterable[Alternative], bundle: dict, by_type) -> bool:
    """Return True when every one of ``conditions`` holds (an applicability condition; none: True)."""
    return all(holds(c, bundle, by_type) for c in conditions)


def on_bundle(expression: str, bundle: dict) -> bool:
    """Return True when ``expression`` (a published constraint) is true on the whole ``bundle``."""
    return is_true(expression, bundle)
