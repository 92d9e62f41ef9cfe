"""The police PPN XML reader: safe parsing, streaming, per-notice validation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lxml import etree

from gateway.adapters.base import BadRecord, InputUnreadable, RawRecord
from gateway.adapters.readers.xml import (
    NOTICE_TAG,
    PPN_NS,
    default_xsd_path,
    load_schema,
    plain_schema_message,
    read_ppn_xml,
)
from gateway.adapters.synth.ppn_xml import generate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PPN = FIXTURES / "ppn"
SAMPLE = FIXTURES / "samples" / "ppn-sample.xml"
NS = {"ppn": PPN_NS}


def read_file(path: Path, options: dict | None = None) -> list[RawRecord | BadRecord]:
    with path.open("rb") as stream:
        return list(read_ppn_xml(stream, path.name, options or {}))


def read_bytes(data: bytes, name: str = "input.xml") -> list[RawRecord | BadRecord]:
    return list(read_ppn_xml(io.BytesIO(data), name, {}))


def unreadable(data: bytes, name: str = "input.xml") -> InputUnreadable:
    with pytest.raises(InputUnreadable) as info:
        read_bytes(data, name)
    return info.value


# The schema ------------------------------------------------------------------


def test_bundled_schema_is_found_through_settings():
    assert default_xsd_path().is_file()
    assert default_xsd_path().parts[-2:] == ("ppn-xml", "ppn.xsd")


def test_bundled_sample_validates_as_a_whole_document():
    schema = load_schema()
    assert schema.validate(etree.parse(str(SAMPLE))), schema.error_log


def test_schema_accepts_time_without_offset_and_version_1_1():
    data = SAMPLE.read_bytes().replace(b"2018-09-09T03:00:00+01:00", b"2018-09-09T03:00:00")
    data = data.replace(b'schemaVersion="1.0"', b'schemaVersion="1.1"')
    records = read_bytes(data)
    assert [type(r) for r in records] == [RawRecord, RawRecord]


def test_schema_rejects_relationship_to_unknown_person():
    data = SAMPLE.read_bytes().replace(b'from="p2" to="p3"', b'from="p2" to="p9"')
    first = read_bytes(data)[0]
    assert isinstance(first, BadRecord)
    assert "'p9'" in first.reason and "not listed under ppn:Persons" in first.reason


def test_plain_schema_message_uses_prefixes_and_plain_words():
    message = ("Element '{urn:x-police-uk:ppn:1}OccurredAt': 'yesterday' is not a valid value of the atomic "
               "type 'xs:dateTime'.")
    assert plain_schema_message(message) == "ppn:OccurredAt: 'yesterday' is not a date and time like 2018-09-09T03:00:00+01:00."


# Reading good files ------------------------------------------------------------


def test_sample_batch_gives_one_record_per_notice():
    records = read_file(SAMPLE)
    assert all(isinstance(r, RawRecord) for r in records)
    assert [r.location for r in records] == [
        "/ppn:NoticeBatch/ppn:PublicProtectionNotice[1]",
        "/ppn:NoticeBatch/ppn:PublicProtectionNotice[2]",
    ]
    assert [r.line for r in records] == [3, 59]
    assert records[0].context == {
        "root": "NoticeBatch",
        "generatedAt": "2018-09-30T17:00:00+01:00",
        "signed": False,
        "schemaVersion": "1.0",
    }


def test_notice_element_is_usable_while_it_is_the_current_record():
    ids = []
    with SAMPLE.open("rb") as stream:
        for record in read_ppn_xml(stream, SAMPLE.name, {}):
            assert record.data.tag == NOTICE_TAG
            ids.append(record.data.findtext("ppn:NoticeId", namespaces=NS))
            assert record.data.find("ppn:Persons", NS) is not None
    assert ids == ["3f6c2a1e-8d4b-4f0a-b5c7-2e9d1a7b6c01", "3f6c2a1e-8d4b-4f0a-b5c7-2e9d1a7b6c02"]


def test_single_notice_file():
    [record] = read_file(PPN / "single-notice.xml")
    assert isinstance(record, RawRecord)
    assert record.location == "/ppn:PublicProtectionNotice"
    assert record.line == 2
    assert record.context == {"root": "PublicProtectionNotice", "generatedAt": None, "signed": False,
                              "schemaVersion": "1.1"}


def test_signature_is_kept_and_its_presence_recorded():
    path = PPN / "signed-notice.xml"
    with path.open("rb") as stream:
        records = read_ppn_xml(stream, path.name, {})
        record = next(records)
        assert isinstance(record, RawRecord)
        assert record.context["signed"] is True
        # The element is still there for the trust step to verify.
        signature = record.data.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
        assert signature is not None
        assert signature.findtext("{http://www.w3.org/2000/09/xmldsig#}SignatureValue").startswith("Zmlj")
        assert list(records) == []


def test_utf8_bom_and_utf16_are_read():
    text = SAMPLE.read_text(encoding="utf-8")
    with_bom = read_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    utf16 = read_bytes(text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert [type(r) for r in with_bom] == [type(r) for r in utf16] == [RawRecord, RawRecord]


def test_other_schema_can_be_given_in_options(tmp_path):
    strict = default_xsd_path().read_text().replace('<xs:pattern value="[A-Z]{2,5}"/>',
                                                     '<xs:pattern value="HAM"/>')
    xsd = tmp_path / "strict.xsd"
    xsd.write_text(strict)
    records = read_file(SAMPLE, {"xsd_path": xsd})
    assert all(isinstance(r, BadRecord) and r.field == "ForceCode" for r in records)


# One bad notice among good ones ---------------------------------------------------


def test_notice_failing_the_schema_is_a_bad_record_and_the_rest_continue():
    records = read_file(PPN / "batch-one-invalid.xml")
    assert [type(r) for r in records] == [RawRecord, BadRecord, RawRecord]
    bad = records[1]
    assert bad.location == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[2]"
    assert bad.field == "NoticeType"
    assert bad.line == 63  # the line of the offending element
    assert "3f6c2a1e-8d4b-4f0a-b5c7-2e9d1a7b6c03" in bad.reason
    assert "'Burglary' is not one of the allowed values" in bad.reason
    assert "{urn:" not in bad.reason
    assert "correct this notice" in bad.action
    assert records[2].location == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[3]"


def test_stray_element_in_a_batch_is_a_bad_record():
    data = SAMPLE.read_bytes().replace(b"</ppn:NoticeBatch>", b"<ppn:Note>hello</ppn:Note></ppn:NoticeBatch>")
    records = read_bytes(data)
    assert [type(r) for r in records] == [RawRecord, RawRecord, BadRecord]
    assert records[2].location == "/ppn:NoticeBatch/ppn:Note"


# Files that are not what they claim ---------------------------------------------


def test_doctype_with_entity_expansion_is_refused():
    with pytest.raises(InputUnreadable) as info:
        read_file(PPN / "doctype-entities.xml")
    assert "the file declares a DOCTYPE" in info.value.reason
    assert "refused for safety" in info.value.reason
    assert "doctype-entities.xml" in str(info.value)


def test_doctype_with_external_entity_is_refused():
    with pytest.raises(InputUnreadable) as info:
        read_file(PPN / "doctype-external-entity.xml")
    assert "the file declares a DOCTYPE" in info.value.reason
    assert "root:" not in str(info.value)


def test_doctype_after_comment_and_declaration_is_refused():
    data = (b'<?xml version="1.0"?>\n<!-- exported -->\n<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd">\n'
            b'<ppn:NoticeBatch xmlns:ppn="urn:x-police-uk:ppn:1"/>')
    assert "DOCTYPE" in unreadable(data).reason


def test_parser_settings_expand_no_entity_even_without_the_prolog_check():
    # Defence in depth: were a DOCTYPE ever to reach lxml, the reader still
    # refuses it at the root element and nothing has been expanded.
    from gateway.adapters.readers import xml as reader

    data = (PPN / "doctype-entities.xml").read_bytes()
    events = etree.iterparse(io.BytesIO(data), events=("start",), resolve_entities=False, load_dtd=False,
                             no_network=True, huge_tree=False)
    _, root = next(events)
    with pytest.raises(InputUnreadable, match="DOCTYPE"):
        reader._check_root(root, "doctype-entities.xml")


def test_html_error_page_is_unreadable():
    with pytest.raises(InputUnreadable) as info:
        read_file(PPN / "html-as-xml.xml")
    assert "HTML page" in info.value.reason
    assert info.value.action


def test_html_without_doctype_is_unreadable():
    assert "HTML page" in unreadable(b"<html><head><title>Error</title></head><body>oops</body></html>").reason


def test_empty_file_is_unreadable():
    assert unreadable(b"").reason == "the file is empty."
    assert unreadable(b" \r\n").reason == "the file is empty."


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, b"\x00\x01\x02garbage", b"NoticeId,ForceCode\n1,HAM\n"])
def test_binary_garbage_or_text_is_unreadable(data):
    error = unreadable(data)
    assert "not an XML file" in error.reason
    assert error.action


def test_archive_is_named():
    assert "gzip archive" in unreadable(b"\x1f\x8b\x08\x00\x00\x00").reason


def test_wrong_namespace_is_unreadable():
    with pytest.raises(InputUnreadable) as info:
        read_file(PPN / "wrong-namespace.xml")
    assert "urn:x-police-uk:ppn:2" in info.value.reason
    assert "urn:x-police-uk:ppn:1" in info.value.reason


def test_wrong_root_element_is_unreadable():
    error = unreadable(b'<?xml version="1.0"?><concerns xmlns="urn:x-other"/>')
    assert "root element is <{urn:x-other}concerns>" in error.reason
    assert "--format" in error.action


def test_not_well_formed_before_the_root_is_unreadable():
    error = unreadable(b'<?xml version="1.0"?><ppn:NoticeBatch xmlns:ppn="urn:x-police-uk:ppn:1" a=>')
    assert "not well-formed XML" in error.reason


# Truncated and broken files ---------------------------------------------------


def test_truncated_file_yields_completed_notices_then_one_bad_record():
    records = read_file(PPN / "truncated.xml")
    assert [type(r) for r in records] == [RawRecord, BadRecord]
    assert records[0].location == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[1]"
    broken = records[1]
    assert broken.location == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[2]"
    assert broken.reason.startswith("file ends in the middle of a notice (truncated?)")
    assert "line 86, column 25" in broken.reason
    assert broken.line == 86
    assert broken.action == "re-export the file"


def test_file_cut_between_notices_says_later_notices_are_missing():
    data = SAMPLE.read_bytes()
    cut = data.index(b"</ppn:NoticeBatch>")
    records = read_bytes(data[:cut])
    assert [type(r) for r in records] == [RawRecord, RawRecord, BadRecord]
    assert "file ends before the end of the batch (truncated?)" in records[2].reason
    assert records[2].action == "re-export the file"


def test_file_cut_inside_the_first_notice_is_unreadable():
    data = SAMPLE.read_bytes()
    error = unreadable(data[: data.index(b"<ppn:Persons>")])
    assert "truncated?" in error.reason and "nothing could be read" in error.reason


def test_broken_markup_in_a_later_notice_is_not_called_truncation():
    data = SAMPLE.read_bytes().replace(b"the couple's younger child", b"the couple's younger & child")
    records = read_bytes(data)
    assert [type(r) for r in records] == [RawRecord, BadRecord]
    assert records[1].location == "/ppn:NoticeBatch/ppn:PublicProtectionNotice[2]"
    assert "truncated" not in records[1].reason
    assert "bare '&'" in records[1].reason


# Memory stays flat --------------------------------------------------------------


def test_notices_are_cleared_as_the_batch_streams():
    stream = io.BytesIO()
    generate(stream, 2000, seed=3)
    stream.seek(0)

    root = None
    largest_tree = 0
    count = 0
    for record in read_ppn_xml(stream, "synthetic.xml", {}):
        assert isinstance(record, RawRecord), getattr(record, "reason", "")
        count += 1
        root = record.data.getparent()
        # Everything before the current notice is gone already, except the
        # previous notice, emptied but left in place for the parser ...
        previous = record.data.getprevious()
        assert previous is None or (len(previous) == 0 and previous.getprevious() is None)
        # ... and the tree never holds more than the parser's read-ahead.
        if count % 50 == 0:
            largest_tree = max(largest_tree, sum(1 for _ in root.iter()))
    assert count == 2000
    # One 32 KiB parser chunk holds about a dozen synthetic notices.
    assert largest_tree < 2000
    # After the last record the last notice is emptied too.
    assert len(root) <= 1 and all(len(child) == 0 for child in root)
