"""The nesting measures of gateway/adapters/limits.py and the JSON reader's streaming guard, against
a plain reference walk of the text, on generated JSON cut into blocks anywhere (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.adapters.limits import json_nesting_exceeds
from gateway.adapters.readers.jsonstream import _NestingGuard

# Strings full of what a naive scan would trip on: brackets, quotes and backslashes.
TRICKY = st.text(st.sampled_from('[]{}"\\ab\n'), max_size=8)
DOCUMENTS = st.recursive(st.none() | st.integers() | TRICKY,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
                         max_leaves=30)


def reference_depths(text: bytes) -> list[int]:
    """The nesting depth after each byte, by a plain walk that knows strings and escapes."""
    depth, in_string, escaped, out = 0, False, False, []
    for byte in text:
        if escaped:
            escaped = False
        elif in_string:
            escaped, in_string = byte == 0x5C, byte != 0x22
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
        elif byte in b"]}":
            depth -= 1
        out.append(depth)
    return out


@settings(max_examples=300, deadline=None)
@given(document=DOCUMENTS, limit=st.integers(0, 8), cuts=st.lists(st.integers(1, 9), max_size=40))
def test_the_guard_stops_at_the_byte_that_nests_past_the_limit(document, limit, cuts):
    text = json.dumps(document).encode()
    depths = reference_depths(text)
    expected = next((i for i, d in enumerate(depths) if d > limit), None)
    assert json_nesting_exceeds(text, limit) is (expected is not None)
    guard, position, found = _NestingGuard(limit), 0, None
    for size in [*cuts, len(text)]:
        block = text[position:position + size]
        crossing = guard.feed(block)
        if crossing is not None:
            found = position + crossing
            break
        position += len(block)
        if position >= len(text):
            break
    assert found == expected
