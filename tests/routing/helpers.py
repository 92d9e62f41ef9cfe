"""Helpers for the routing tests: Family A's messages as translated, and editing them."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

from gateway.adapters import get_adapter
from gateway.adapters.translate import translate_stream

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
UTC = dt.timezone.utc
#: When the gateway receives Dorset Police's two notices: Sunday 30 September 2018, 17:05 BST.
FAMILY_A_RECEIVED = dt.datetime(2018, 9, 30, 16, 5, tzinfo=UTC)
HAMPSHIRE = "urn:x-safeguarding:agency:la:850"
BCP = "urn:x-safeguarding:agency:la:839"
RIVERSIDE = "urn:x-safeguarding:agency:school:999101"
DORSET_POLICE = "urn:x-safeguarding:agency:police:DOR"


def translate(fmt: str, name: str, now: dt.datetime = FAMILY_A_RECEIVED) -> list[dict]:
    """Return the message Bundles of a sample file, as ``gateway translate`` makes them."""
    out = io.StringIO()
    with open(SAMPLES / name, "rb") as stream:
        translate_stream(get_adapter(fmt), stream, name, out, now=now)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def resource(bundle: dict, resource_type: str) -> dict:
    """Return the first resource of ``resource_type`` in ``bundle`` (to edit in place)."""
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)
