"""Canonical JSON: test vectors (data files) and the fast path's equality with rfc8785."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.signing.canonical import CanonicalizationError, _fast_path_safe, canonical_json

VECTORS = sorted((Path(__file__).parent / "vectors" / "canonical").glob("*.json"))


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path):
    vector = json.loads(path.read_text(encoding="utf-8"))
    assert canonical_json(json.loads(vector["input"])) == vector["expected"].encode("utf-8")


def test_vectors_found():
    assert len(VECTORS) >= 3


# Text including surrogates, astral characters and control characters: the
# places where the standard library and JCS could disagree.
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "\ud800", "a\udfff", "\U0001f600", "\ufb33", "\u20ac", "\x00\x1f\x7f", '"\\/'])
_numbers = (
    st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 1e21, 1e-7, 0.1, 2**53 + 0.0])
)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=30,
)


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


@settings(max_examples=600, deadline=None)
@given(_json)
def test_same_bytes_as_rfc8785(value):
    assert _ours(value) == _reference(value)


def test_fast_path_taken_for_fhir_like_values():
    value = {"resourceType": "Bundle", "total": 3, "entry": [{"value": 12.5, "flag": True, "none": None}]}
    assert _fast_path_safe(value)
    assert not _fast_path_safe({"x": 1.0})           # integral float: "1.0" vs "1"
    assert not _fast_path_safe({"\U0001f600": 1})     # astral key: UTF-16 order differs
    assert not _fast_path_safe({"x": 2**53})
