"""Synthetic concernhub-json exports: deterministic, valid per the spec, with the field quirks."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from stdnum.gb import nhs, upn

from gateway.adapters.readers.jsonstream import read_concernhub_json
from gateway.adapters.synth import concernhub_json
from gateway.adapters.synth.fictional import CHILD_FIRST_NAMES, SURNAMES

SPEC_CATEGORIES = set(concernhub_json.CATEGORIES) | {"disclosure"}


def make(count: int = 60, seed: int = 0, quirks: bool = True) -> bytes:
    out = io.BytesIO()
    concernhub_json.generate(out, count, seed=seed, quirks=quirks)
    return out.getvalue()


@pytest.fixture(scope="module")
def export() -> dict:
    return json.loads(make(200, seed=5))


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert make(seed=1) == make(seed=1)
    assert make(seed=1) != make(seed=2)


@pytest.mark.parametrize("count", [0, 1, 37])
def test_output_is_json_with_the_requested_count(count):
    document = json.loads(make(count).decode("utf-8"))
    assert len(document["concerns"]) == count
    assert document["exportVersion"] == "2.3"


def test_the_gateway_reader_reads_it():
    records = list(read_concernhub_json(io.BytesIO(make(25)), "synth.json", {}))
    assert len(records) == 25 and records[0].context["versionFamily"] == "2.x"


def test_organisation_is_fictional(export):
    organisation = export["organisation"]
    assert organisation["urn"].startswith("999") and len(organisation["urn"]) == 6
    assert organisation["laNumber"] in {"850", "851", "852"}


def test_content_follows_the_spec(export):
    concerns = export["concerns"]
    assert len({c["id"] for c in concerns}) == len(concerns)
    statuses = {c["outcome"]["status"] for c in concerns}
    assert {"referred", "open", "monitoring", "closed"} <= statuses
    referrals = [c for c in concerns if c["outcome"]["status"] == "referred"
                 and c["outcome"].get("referredTo") in ("MASH", "childrens-services")]
    assert 0.15 < len(referrals) / len(concerns) < 0.45
    relationships = {m["relationship"] for c in concerns for m in c["family"]}
    assert {"mother", "sibling"} <= relationships
    assert any(m.get("concernsAbout") for c in concerns for m in c["family"])
    attachments = [a for c in concerns for a in c["attachments"]]
    assert attachments and all(len(a["sha256"]) == 64 and a["size"] > 0 for a in attachments)
    for concern in concerns:
        subject = concern["subject"]
        born = dt.date.fromisoformat(subject["dateOfBirth"])
        raised = dt.date.fromisoformat(concern["raisedAt"][:10])
        age = raised.year - born.year - ((raised.month, raised.day) < (born.month, born.day))
        assert 2 <= age <= 17
        if subject["upn"]:
            assert upn.is_valid(subject["upn"])
        assert subject["firstName"] in CHILD_FIRST_NAMES
        assert subject["lastName"] in SURNAMES or subject["lastName"] == ""


def test_names_include_apostrophes_and_accents(export):
    names = {c["subject"]["lastName"] for c in export["concerns"]} | {
        c["subject"]["firstName"] for c in export["concerns"]}
    assert any("'" in name for name in names)
    assert any(any(ord(ch) > 127 for ch in name) for name in names)


def test_quirks_seen_in_the_field_are_present(export):
    concerns = export["concerns"]
    numbers = [c["subject"]["nhsNumber"] for c in concerns]
    assert all(n.replace(" ", "").startswith("999") for n in numbers)
    assert any(" " in n for n in numbers)
    invalid = [n for n in numbers if not nhs.is_valid(n)]
    assert invalid and len(invalid) < len(numbers) * 0.15  # only the quirk fails the check digit
    assert any(len(c["raisedAt"]) == 19 for c in concerns)  # no offset
    assert any(c["happenedAt"] and c["happenedAt"][:10] > c["raisedAt"][:10] for c in concerns)
    assert any(c["subject"]["upn"] == "" or c["riskRating"] == "" for c in concerns)
    assert any(set(c["categories"]) - SPEC_CATEGORIES for c in concerns)
    assert any(c["subject"]["lastName"] == "" for c in concerns)  # one name only


def test_without_quirks_the_export_is_clean():
    document = json.loads(make(200, quirks=False))
    for concern in document["concerns"]:
        assert nhs.is_valid(concern["subject"]["nhsNumber"])
        assert concern["raisedAt"][-6] in "+-"
        assert set(concern["categories"]) <= SPEC_CATEGORIES
        assert "" not in (concern["subject"]["upn"], concern["riskRating"], concern["subject"]["lastName"])
        assert not concern["happenedAt"] or concern["happenedAt"][:10] <= concern["raisedAt"][:10]


def test_it_streams_to_a_write_only_file(tmp_path):
    """Nothing is read back or seeked: a pipe or socket is a fine target."""

    class WriteOnly(io.RawIOBase):
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, data):
            self.parts.append(bytes(data))
            return len(data)

    target = WriteOnly()
    concernhub_json.generate(target, 30, seed=4)
    assert b"".join(target.parts) == make(30, seed=4)
    assert len(target.parts) > 30  # written concern by concern
