"""What the fuzzers check, one function per target: the gateway's promises about any input.

Each target takes bytes and raises ``AssertionError`` (or lets an unexpected
exception escape) when a promise is broken:

- an adapter either refuses the whole input with a clear
  :class:`~gateway.adapters.base.InputUnreadable`, or accounts for every
  record it read (``records == translated + skipped + rejected``);
- ``POST /fhir/$process-message`` answers every body with a FHIR
  OperationOutcome or message and a status below 500 (``intake``: any bytes;
  ``mutate``: a valid referral changed at places the bytes choose).

``fuzz/fuzz.py`` drives them with atheris; ``tests/hostile/test_fuzz_corpus.py``
runs the kept corpus through them in the normal test suite.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import tempfile
from pathlib import Path

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.translate import translate_stream

NOW = dt.datetime(2024, 3, 14, 12, 0, tzinfo=dt.timezone.utc)
SCHOOL = "urn:x-safeguarding:agency:school:999101"
ADAPTERS = {"csv": "schoolsafe-csv", "json": "concernhub-json", "xml": "ppn-xml"}
TARGETS = (*ADAPTERS, "intake", "mutate")


def translate_target(format_id: str, data: bytes) -> None:
    """Translate ``data`` as ``format_id``: a clear refusal, or every record accounted for."""
    adapter = get_adapter(format_id)
    errors = io.StringIO()
    try:
        summary = translate_stream(adapter, io.BytesIO(data), "fuzz-input", io.StringIO(), errors, now=NOW,
                                   include_all=True)
    except InputUnreadable as exc:
        assert str(exc).startswith("fuzz-input"), f"a refusal that does not name the input: {exc}"
        return
    assert summary.balanced, summary.as_dict()
    for line in errors.getvalue().splitlines():
        entry = json.loads(line)
        assert entry["reason"], entry  # every record not translated says why


@functools.lru_cache(maxsize=1)
def _intake_client():
    """A gateway app on a fresh SQLite database and development PKI (made once per process)."""
    from gateway.demo.standalone import standalone_app

    return standalone_app(Path(tempfile.mkdtemp(prefix="gateway-fuzz-")), NOW).test_client()


def intake_target(data: bytes) -> None:
    """Send ``data`` to ``$process-message`` as a school: any answer but a server error."""
    from gateway.transport.middleware import AGENCY_KEY

    response = _intake_client().post("/fhir/$process-message", data=data, content_type="application/fhir+json",
                                     environ_base={AGENCY_KEY: SCHOOL})
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json(force=True)
    assert body["resourceType"] in ("OperationOutcome", "Bundle"), body


@functools.lru_cache(maxsize=1)
def _referral() -> str:
    from gateway.model import build_bundle
    from gateway.transport.views import warm_up_record

    return json.dumps(build_bundle(warm_up_record(NOW), now=NOW))


def _places(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _places(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _places(inner, (*path, index))


_VALUES = (None, True, False, 0, -1, 5, 1.5, 10**30, "", " ", "x", "\u0000", "9990000018", "2018-09-30",
           "urn:x-safeguarding:agency:school:999101", "<script>alert(1)</script>", "O'Brien; DROP TABLE person;--",
           [], [None], [5], ["x"], {}, {"x": 1}, {"reference": "urn:uuid:x"}, [{}], [[]])


def mutation_target(data: bytes) -> None:
    """A valid referral changed at places ``data`` chooses (every 3 bytes: two choose a place, one a
    value or deleting it), sent to ``$process-message``: the intake's checks, the standard and signing
    on shapes random bytes rarely reach. The same promise as :func:`intake_target`."""
    bundle = json.loads(_referral())
    for at in range(0, len(data) - 2, 3):
        places = [p for p in _places(bundle) if p]
        if not places:
            break
        place = places[int.from_bytes(data[at:at + 2], "big") % len(places)]
        parent = bundle
        for key in place[:-1]:
            parent = parent[key]
        choice = data[at + 2] % (len(_VALUES) + 1)
        if choice == len(_VALUES) and isinstance(parent, dict):
            del parent[place[-1]]
        else:
            parent[place[-1]] = json.loads(json.dumps(_VALUES[choice % len(_VALUES)]))
    intake_target(json.dumps(bundle).encode())


def run(target: str, data: bytes) -> None:
    """Run ``target`` (one of :data:`TARGETS`) on ``data``."""
    if target == "intake":
        intake_target(data)
    elif target == "mutate":
        mutation_target(data)
    else:
        translate_target(ADAPTERS[target], data)
