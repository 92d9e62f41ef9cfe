"""RFC 8785 (JCS) canonical JSON, with fast paths that give the same bytes.

``rfc8785.dumps`` is pure Python (about 400 us for a 10 KB Bundle). Two C
encoders write the very same bytes whenever the value holds nothing where
their rules and JCS's differ:

``orjson.dumps(value, option=OPT_SORT_KEYS | OPT_STRICT_INTEGER)`` (about
6 us), the first choice:

* keys: orjson sorts by UTF-8 bytes, which is code point order; JCS sorts
  by UTF-16 code units. The two orders agree unless a key holds a character
  outside the Basic Multilingual Plane (then U+E000..U+FFFF and the
  surrogate pairs swap places). Such a character is four UTF-8 bytes
  starting with 0xF0..0xF4, so one scan of the *output* for those bytes
  says whether the keys need looking at at all.
* strings: both write UTF-8 as is and escape only ``"``, ``\\`` and U+0000
  to U+001F, with the same short forms (``\\b \\t \\n \\f \\r``) and
  lower-case ``\\u00xx`` otherwise (checked for every BMP code point, as key
  and as value, by ``tests/signing/test_canonical.py``); a lone surrogate
  makes orjson raise.
* integers: identical digits; ``OPT_STRICT_INTEGER`` makes orjson raise
  outside +-(2**53 - 1), exactly JCS's (and ``rfc8785``'s) domain.
* floats: both write the shortest round-trip digits, and in fixed notation
  for ``1e-4 <= |f| < 1e16``; outside that range the exponent thresholds
  differ, and an integral float is ``1.0`` for orjson but ``1`` for JCS.
  orjson also writes NaN and infinities as ``null`` where JCS refuses them.
  So a float is allowed only when it is not integral and within that range.
* types: orjson also encodes tuples, enums, UUIDs, dataclasses, dates and
  subclasses; JCS only JSON's types. Only exact ``dict``, ``list``, ``str``,
  ``int``, ``bool``, ``None`` and (as above) ``float`` are allowed.

:func:`_fast_path_safe` checks the types and floats in one walk over the
value (keys are left to the output scan). Whatever orjson refuses (a lone
surrogate, a non-string key, an integer beyond 2**53, nesting deeper than
255) goes to the standard library's C encoder under the same conditions (it
writes the same bytes; see :func:`_stdlib_safe`) and otherwise to
``rfc8785``, which then raises its own error or writes the bytes.
``tests/signing/test_canonical.py`` proves equality with ``rfc8785`` with a
Hypothesis property test on each path.
"""

from __future__ import annotations

import json

import orjson
import rfc8785

CanonicalizationError = rfc8785.CanonicalizationError

_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
_orjson_dumps = orjson.dumps
_stdlib_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True,
                                  separators=(",", ":")).encode
_INT_LIMIT = 2**53 - 1
# UTF-8 lead bytes of the characters beyond U+FFFF (four-byte sequences).
_ASTRAL_LEAD_BYTES = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


def _fast_path_safe(value) -> bool:
    """Return whether ``value`` holds only JSON types and floats both encoders write as JCS does.

    Integers are left to ``OPT_STRICT_INTEGER`` and keys to
    :func:`_keys_in_bmp`. Iterative, so deep nesting costs no recursion.
    """
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list:
            extend(item)
        elif kind is int or kind is bool or item is None:
            continue
        elif kind is float:
            if not 1e-4 <= abs(item) < 1e16 or item.is_integer():
                return False
        else:
            return False
    return True


def _keys_in_bmp(value) -> bool:
    """Return whether every key of every object in ``value`` is a string within the BMP."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str or not (key.isascii() or max(key) < "\U00010000"):
                    return False
                push(child)
        elif kind is list:
            stack.extend(item)
    return True


def _stdlib_safe(value) -> bool:
    """Return whether the standard library's encoder writes JCS's bytes for ``value``.

    With sorted keys, compact separators and ``ensure_ascii=False`` it escapes
    strings as JCS does and sorts keys by code point; it writes integers of
    any size (so they are bounded here) and floats as ``repr`` does.
    """
    if not _fast_path_safe(value) or not _keys_in_bmp(value):
        return False
    stack = [value]
    pop = stack.pop
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int and not -_INT_LIMIT <= item <= _INT_LIMIT:
            return False
    return True


def _has_astral(data: bytes) -> bool:
    if data.isascii():
        return False
    return any(lead in data for lead in _ASTRAL_LEAD_BYTES)


def canonical_json(value) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of a JSON value.

    Raises :class:`CanonicalizationError` for values JCS cannot represent
    (NaN, infinities, integers beyond 2**53, lone surrogates, non-string keys).
    """
    if _fast_path_safe(value):
        try:
            data = _orjson_dumps(value, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: see the module's docstring
            pass
        else:
            if not _has_astral(data) or _keys_in_bmp(value):
                return data
        if _stdlib_safe(value):
            try:
                return _stdlib_encode(value).encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: let rfc8785 raise its own error
    try:
        return rfc8785.dumps(value)
    except UnicodeEncodeError as exc:  # rfc8785 lets this through for surrogates in keys
        raise CanonicalizationError(f"input contains non-UTF-8 codepoints: {exc}") from None
