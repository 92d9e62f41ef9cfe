"""Synthetic PPN XML: deterministic, valid, fictional, streamed, with field quirks."""

from __future__ import annotations

import collections
import io
import re
from datetime import datetime, timedelta

import pytest
from lxml import etree
from stdnum.gb import nhs

from gateway.adapters.base import RawRecord
from gateway.adapters.readers.xml import PPN_NS, load_schema, read_ppn_xml
from gateway.adapters.synth.ppn_xml import FORCES, generate, nhs_check_digit

NS = {"ppn": PPN_NS}


def synth(count: int, seed: int = 0, quirks: bool = True) -> bytes:
    out = io.BytesIO()
    generate(out, count, seed=seed, quirks=quirks)
    return out.getvalue()


@pytest.fixture(scope="module")
def batch() -> bytes:
    return synth(1500, seed=7)


@pytest.fixture(scope="module")
def notices(batch) -> list[etree._Element]:
    # Parse once for inspection; the reader is tested on its own elsewhere.
    return etree.fromstring(batch).findall("ppn:PublicProtectionNotice", NS)


def test_same_seed_same_bytes_other_seed_other_bytes():
    assert synth(50, seed=1) == synth(50, seed=1)
    assert synth(50, seed=1) != synth(50, seed=2)


def test_exact_count_including_zero():
    assert synth(0).count(b"<ppn:PublicProtectionNotice ") == 0
    assert synth(37, seed=4).count(b"<ppn:PublicProtectionNotice ") == 37


def test_negative_count_is_refused():
    with pytest.raises(ValueError):
        generate(io.BytesIO(), -1)


def test_whole_batch_validates_and_every_notice_reads(batch):
    schema = load_schema()
    assert schema.validate(etree.fromstring(batch)), schema.error_log
    records = list(read_ppn_xml(io.BytesIO(batch), "synthetic.xml", {}))
    assert len(records) == 1500
    assert all(isinstance(r, RawRecord) for r in records)


def test_written_as_a_stream():
    class Sink(io.RawIOBase):
        def __init__(self):
            self.writes = []

        def writable(self):
            return True

        def write(self, data):
            self.writes.append(len(data))
            return len(data)

    sink = Sink()
    generate(sink, 300, seed=5)
    # One write per notice (plus head and tail), none of them the whole batch.
    assert len(sink.writes) == 302
    assert max(sink.writes) < sum(sink.writes) / 50


def test_nhs_numbers_start_999_and_most_check_digits_are_valid(batch):
    numbers = [n.decode() for n in re.findall(rb"<ppn:NHSNumber>(\d+)</ppn:NHSNumber>", batch)]
    assert numbers and all(n.startswith("999") and len(n) == 10 for n in numbers)
    invalid = [n for n in numbers if not nhs.is_valid(n)]
    assert 0 < len(invalid) < len(numbers) * 0.08


def test_nhs_check_digit_matches_stdnum():
    for body in ("999000000", "999123456", "999765432"):
        check = nhs_check_digit(body)
        if check is None:
            assert not any(nhs.is_valid(body + str(d)) for d in range(10))
        else:
            assert nhs.is_valid(body + str(check))


def test_without_quirks_every_nhs_number_is_valid():
    numbers = re.findall(rb"<ppn:NHSNumber>(\d+)</ppn:NHSNumber>", synth(400, seed=7, quirks=False))
    assert numbers and all(nhs.is_valid(n.decode()) for n in numbers)


def test_fictional_identifiers(notices):
    forces = {n.findtext("ppn:ForceCode", namespaces=NS) for n in notices}
    assert forces <= set(FORCES)
    urns = [s.get("urn") for s in notices[0].getroottree().iterfind(".//ppn:School", NS)]
    assert urns and all(re.fullmatch(r"999\d{3}", u) for u in urns)
    postcodes = [p.text for p in notices[0].getroottree().iterfind(".//ppn:Postcode", NS)]
    assert all(re.fullmatch(r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}", p) for p in postcodes)


def quirk_counts(notices: list[etree._Element]) -> dict[str, int]:
    def text(el, path):
        return el.findtext(path, namespaces=NS)

    ids = collections.Counter(text(n, "ppn:NoticeId") for n in notices)
    refs = collections.Counter(text(n, "ppn:Reference") for n in notices)
    counts = collections.Counter()
    counts["resent"] = sum(1 for c in ids.values() if c > 1)
    counts["shared_reference"] = sum(1 for c in refs.values() if c > 1)
    for n in notices:
        occurred = text(n, "ppn:Incident/ppn:OccurredAt")
        submitted = text(n, "ppn:SubmittedAt")
        if not re.search(r"(Z|[+-]\d\d:\d\d)$", occurred):
            counts["no_offset"] += 1
        elif datetime.fromisoformat(submitted) - datetime.fromisoformat(occurred) >= timedelta(days=7):
            counts["late"] += 1
        if text(n, "ppn:NoticeType") == "DomesticAbuse":
            risk = n.find("ppn:RiskAssessment", NS)
            if risk is None:
                counts["da_no_risk"] += 1
            elif text(risk, "ppn:Completed") == "false":
                counts["dash_not_completed"] += 1
        counts["unsecured"] += len(n.findall("ppn:Evidence/ppn:Item[@secured='false']", NS))
        for person in n.iterfind("ppn:Persons/ppn:Person", NS):
            counts["persons"] += 1
            if len(person.findall("ppn:Name/ppn:Given", NS)) > 1:
                counts["several_given"] += 1
            name = "".join(person.find("ppn:Name", NS).itertext())
            if "'" in name or not name.isascii():
                counts["unusual_name"] += 1
            if person.get("role") == "Child":
                counts["child_no_birthdate"] += person.find("ppn:BirthDate", NS) is None
                counts["child_no_address"] += person.find("ppn:Address", NS) is None
    return counts


QUIRKS = ["resent", "shared_reference", "no_offset", "late", "da_no_risk", "dash_not_completed", "unsecured",
          "several_given", "unusual_name", "child_no_birthdate", "child_no_address"]


PERSON_QUIRKS = {"several_given", "unusual_name", "child_no_birthdate", "child_no_address", "unsecured"}


def test_field_quirks_appear_at_a_low_rate(notices):
    counts = quirk_counts(notices)
    for quirk in QUIRKS:
        assert counts[quirk] > 0, quirk
        # Per person for quirks about a person, otherwise per notice.
        base = counts["persons"] if quirk in PERSON_QUIRKS else len(notices)
        assert counts[quirk] < base * 0.15, (quirk, counts[quirk], base)


def test_no_quirks_when_switched_off():
    plain = etree.fromstring(synth(1500, seed=7, quirks=False)).findall("ppn:PublicProtectionNotice", NS)
    counts = quirk_counts(plain)
    assert {q: counts[q] for q in QUIRKS if counts[q]} == {}


def test_resent_notice_is_byte_for_byte_the_same(batch, notices):
    ids = collections.Counter(n.findtext("ppn:NoticeId", namespaces=NS) for n in notices)
    twice = next(i for i, c in ids.items() if c > 1)
    copies = [etree.tostring(n) for n in notices if n.findtext("ppn:NoticeId", namespaces=NS) == twice]
    assert len(set(copies)) == 1


def test_household_notices_share_reference_but_name_different_children(notices):
    by_ref = collections.defaultdict(list)
    for n in notices:
        by_ref[n.findtext("ppn:Reference", namespaces=NS)].append(n)
    for group in by_ref.values():
        distinct = {n.findtext("ppn:NoticeId", namespaces=NS): n for n in group}
        if len(distinct) > 1:
            children = {tuple(c.itertext()) for n in distinct.values()
                        for c in n.iterfind("ppn:Persons/ppn:Person[@role='Child']/ppn:Name", NS)}
            assert len(children) >= len(distinct) - 1
            return
    pytest.fail("no household with several notices")
