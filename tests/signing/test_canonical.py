"""Canonical JSON: test vectors (data files) and every fast path's equality with rfc8785."""

from __future__ import annotations

import collections
import enum
import json
import math
import uuid
from pathlib import Path
from unittest import mock

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.signing import canonical
from gateway.signing.canonical import CanonicalizationError, _fast_path_safe, canonical_json

VECTORS = sorted((Path(__file__).parent / "vectors" / "canonical").glob("*.json"))


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path):
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert canonical_json(json.loads(vector["input"])) == vector["expected"].encode("utf-8")


def test_vectors_found():
    assert len(VECTORS) >= 3


def _reference(value):
    try:
        return rfc8785.dumps(value)
    except UnicodeEncodeError:  # rfc8785 raises this, not its own error, for surrogates in keys
        return CanonicalizationError
    except CanonicalizationError as exc:
        return type(exc)


def _ours(value):
    try:
        return canonical_json(value)
    except CanonicalizationError as exc:
        return type(exc)


def _path(value) -> str:
    """Return which encoder canonical_json used for ``value``: orjson, stdlib or rfc8785."""
    with mock.patch.object(canonical, "_stdlib_encode", wraps=canonical._stdlib_encode) as stdlib, \
            mock.patch.object(canonical.rfc8785, "dumps", wraps=rfc8785.dumps) as reference:
        _ours(value)
    return "rfc8785" if reference.called else "stdlib" if stdlib.called else "orjson"


# Text including surrogates, astral characters and control characters: the
# places where the C encoders and JCS could disagree.
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\ud800", "a\udfff", "\U0001f600", "\ufb33", "\u20ac", "\x00\x1f\x7f", '"\\/', "\u2028\u2029", "\ufeff"])
_EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-4, -1e-4, 9.999e-5, math.nextafter(1e-4, 0), math.nextafter(1e-4, 1),
                1e-5, 1e-6, 1.5e-6, 1e-7, 1e16, math.nextafter(1e16, 0), 9999999999999998.0, 2**51 + 0.5, 2**52 + 0.5,
                2**53 - 1.0, 2**53 + 0.0, 1e21, 1e22, 0.1, 0.30000000000000004, 5e-324, 2.2250738585072014e-308,
                1.7976931348623157e308, 123456.789, 4.35, 0.000123456789012345]
_numbers = (
    st.integers(min_value=-(2**60), max_value=2**60)
    | st.sampled_from([2**53 - 1, 2**53, -(2**53 - 1), -(2**53), 2**63, 2**64, -(2**63) - 1, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(_EDGE_FLOATS)
)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=30,
)

# What FHIR JSON holds: any text in values (astral included), keys within
# the BMP, control characters, safe integers, floats in the fixed-notation
# range. canonical_json must take the orjson path for all of it.
_bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=10)
_any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
_safe_floats = st.floats(min_value=1e-4, max_value=1e16, exclude_max=True).filter(lambda f: not f.is_integer())
_fhir_scalars = (st.none() | st.booleans() | _any_text | st.integers(-(2**53 - 1), 2**53 - 1)
                 | _safe_floats | _safe_floats.map(lambda f: -f))
_fhir_json = st.recursive(
    _fhir_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_bmp_text, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=800, deadline=None)
@given(_json)
def test_same_bytes_as_rfc8785(value):
    assert _ours(value) == _reference(value)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fhir_json)
def test_fhir_like_values_take_the_orjson_path_with_the_same_bytes(value):
    assert _ours(value) == _reference(value)
    assert _path(value) == "orjson"


@settings(max_examples=800, deadline=None)
@given(_json | _fhir_json)
def test_each_fast_path_writes_rfc8785_bytes_whenever_its_conditions_hold(value):
    # The conditions in canonical.py, checked on their own: whenever they
    # let an encoder's output through, that output is rfc8785's.
    if _fast_path_safe(value):
        try:
            data = orjson.dumps(value, option=canonical._ORJSON_OPTIONS)
        except TypeError:
            pass
        else:
            if not canonical._has_astral(data) or canonical._keys_in_bmp(value):
                assert data == rfc8785.dumps(value)
    if canonical._stdlib_safe(value):
        try:
            text = canonical._stdlib_encode(value).encode("utf-8")
        except UnicodeEncodeError:
            assert _reference(value) is CanonicalizationError
        else:
            assert text == rfc8785.dumps(value)


def test_every_bmp_character_as_key_and_value():
    # All 63,488 non-surrogate BMP code points, in keys (sorted together, in
    # one object) and in values, control characters and U+2028 included.
    points = [*range(0xD800), *range(0xE000, 0x10000)]
    value = {chr(cp) + "k": chr(cp) + "v" for cp in points}
    assert _path(value) == "orjson"
    assert canonical_json(value) == rfc8785.dumps(value)
    for cp in range(0x80):  # and each ASCII one alone, with its escape
        single = {"k" + chr(cp): [chr(cp)]}
        assert canonical_json(single) == rfc8785.dumps(single), hex(cp)


@pytest.mark.parametrize("value, path", [
    ({"resourceType": "Bundle", "total": 3, "entry": [{"value": 12.5, "flag": True, "none": None}]}, "orjson"),
    ({"text": "line\nbreak\ttab\x00nul\x1fus\x7fdel \"quoted\" back\\slash /"}, "orjson"),
    ({"name": "Zo\u00eb \u00c5ngstr\u00f6m \u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629"}, "orjson"),
    ({"note": "emoji in a value \U0001f600 \U0001d11e", "\u00e9": 1, "e": 2}, "orjson"),
    ({"\ue000": 1, "\U00010000": 2}, "rfc8785"),        # astral key: UTF-16 order differs from code points
    ({"a": {"b": [{"\U0001f600x": None}]}}, "rfc8785"),
    ({"x": 1.0}, "rfc8785"),                            # integral float: "1.0" vs "1"
    ({"x": -0.0}, "rfc8785"),
    ({"x": 1e16}, "rfc8785"),                           # exponent thresholds differ
    ({"x": 1.5e-6}, "rfc8785"),
    ({"x": 2251799813685248.5}, "orjson"),              # 2**51 + 0.5: near the largest with a fraction
    ({"x": math.nextafter(1e-4, 1)}, "orjson"),
    ({"x": 2**53 - 1, "y": -(2**53 - 1)}, "orjson"),
    ({"x": 2**53}, "rfc8785"),                          # outside JCS's integer domain: an error
    ({"x": float("nan")}, "rfc8785"),                   # orjson would write null
    ({"x": float("inf")}, "rfc8785"),
    ({"x": "\ud800"}, "rfc8785"),                       # lone surrogate: an error
    ({1: "x"}, "rfc8785"),                              # non-string key: an error
    ({"x": (1, 2)}, "rfc8785"),                         # a tuple: rfc8785 writes an array
    ({"x": collections.OrderedDict(b=1, a=2)}, "rfc8785"),
    ({"x": uuid.UUID(int=1)}, "rfc8785"),               # orjson would write a string; JCS refuses
    ({"x": enum.Enum("E", "A").A}, "rfc8785"),
    ({"x": orjson.Fragment(b"[1]")}, "rfc8785"),
])
def test_targeted_values(value, path):
    assert _ours(value) == _reference(value)
    assert _path(value) == path


def test_deep_nesting_beyond_orjson_uses_the_standard_library():
    value = ["leaf", 1.5]
    for depth in range(300):  # orjson stops at 255 levels
        value = {"d": value, "n": depth} if depth % 2 else [value]
    assert _path(value) == "stdlib"
    assert canonical_json(value) == rfc8785.dumps(value)


def test_nested_realistic_bundle_takes_the_orjson_path():
    bundle = {"resourceType": "Bundle", "type": "message", "timestamp": "2025-03-01T10:00:00+00:00",
              "entry": [{"fullUrl": f"urn:uuid:{uuid.UUID(int=n)}", "resource": {
                  "resourceType": "Observation", "id": f"o{n}", "valueQuantity": {"value": 37.5 + n / 100},
                  "component": [{"valueInteger": n, "valueBoolean": n % 2 == 0, "note": [{"text": "\u00e9\n"}]}]}}
                  for n in range(1, 40)]}
    assert _path(bundle) == "orjson"
    assert canonical_json(bundle) == rfc8785.dumps(bundle)
