"""Property-based tests (hypothesis) of every adapter and of the validator: no input crashes the
gateway or loses a record.

For each adapter: any bytes are either refused as a whole with a clear
:class:`InputUnreadable`, or read with every record accounted for
(``records == translated + skipped + rejected``); inputs built the way the
format is written (rows, concerns, notices) with arbitrary values in every
field are read with exactly one record per row, concern or notice. For the
validator: a referral with any JSON value put anywhere gets an
OperationOutcome, never an exception.

``EXAMPLES`` examples per property and run (150; ``GATEWAY_TEST_EXAMPLES``
sets more for a longer hunt). Hypothesis keeps the failures it finds in
.hypothesis/ and tries them first next time.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.adapters import get_adapter
from gateway.adapters.base import InputUnreadable
from gateway.adapters.translate import translate_stream

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
NOW = dt.datetime(2024, 3, 14, 12, 0, tzinfo=dt.timezone.utc)
EXAMPLES = int(os.environ.get("GATEWAY_TEST_EXAMPLES", "150"))  # more for a longer hunt
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Text as people and systems type it: any character but NUL (the NUL-byte cases are in tests/hostile)
# and lone surrogates (which no encoding carries).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


def _translate(format_id: str, data: bytes):
    """Return the Summary, or None when the input was refused as a whole (with a sentence naming it)."""
    try:
        summary = translate_stream(get_adapter(format_id), io.BytesIO(data), "input", io.StringIO(),
                                   io.StringIO(), now=NOW, include_all=True)
    except InputUnreadable as exc:
        assert str(exc).startswith("input") and exc.reason
        return None
    assert summary.balanced, summary.as_dict()
    return summary


# Any bytes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("format_id, sample", [("schoolsafe-csv", "schoolsafe-sample.csv"),
                                               ("concernhub-json", "concernhub-sample.json"),
                                               ("ppn-xml", "ppn-sample.xml")])
@PROPERTY
@given(data=st.data())
def test_any_bytes_are_refused_clearly_or_read_in_full(format_id, sample, data):
    original = (SAMPLES / sample).read_bytes()
    start = data.draw(st.integers(0, len(original)))
    end = data.draw(st.integers(start, len(original)))
    noise = data.draw(st.binary(max_size=64))
    # A sample with a slice replaced by noise: mostly well-formed, broken somewhere.
    _translate(format_id, original[:start] + noise + original[end:])


# schoolsafe-csv ---------------------------------------------------------------------------------------------

CSV_HEADER = next(csv.reader(io.StringIO((SAMPLES / "schoolsafe-sample.csv").read_text(encoding="utf-8-sig"))))
CSV_ROWS = list(csv.reader(io.StringIO((SAMPLES / "schoolsafe-sample.csv").read_text(encoding="utf-8-sig"))))[1:]


@st.composite
def csv_rows(draw):
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = list(draw(st.sampled_from(CSV_ROWS)))
        for column in draw(st.sets(st.integers(0, len(CSV_HEADER) - 1), max_size=6)):
            row[column] = draw(TEXT)
        rows.append(row)
    return rows


@PROPERTY
@given(rows=csv_rows(), encoding=st.sampled_from(["utf-8", "utf-8-sig"]), ending=st.sampled_from(["\r\n", "\n"]))
def test_schoolsafe_csv_reads_one_record_per_row_whatever_the_cells_hold(rows, encoding, ending):
    out = io.StringIO()
    # csv.writer quotes a cell holding a line end only when that is its own lineterminator: with "\n",
    # a lone "\r" would go out unquoted (not CSV), so that variant quotes every cell.
    quoting = csv.QUOTE_MINIMAL if ending == "\r\n" else csv.QUOTE_ALL
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows([CSV_HEADER, *rows])
    summary = _translate("schoolsafe-csv", out.getvalue().encode(encoding))
    assert summary is not None
    # A row whose cells are all blank is not a record; every other row is exactly one.
    assert summary.records == sum(1 for row in rows if any(cell.strip() for cell in row))


# concernhub-json --------------------------------------------------------------------------------------------

EXPORT = json.loads((SAMPLES / "concernhub-sample.json").read_text(encoding="utf-8"))
CONCERN = EXPORT["concerns"][0]
CONCERN_PATHS = [("id",), ("reference",), ("subject",), ("subject", "firstName"), ("subject", "dateOfBirth"),
                 ("subject", "nhsNumber"), ("subject", "address"), ("subject", "address", "postcode"),
                 ("raisedBy",), ("raisedAt",), ("happenedAt",), ("categories",), ("details",), ("summary",),
                 ("childSpokenTo",), ("parentsInformed",), ("actions",), ("outcome",), ("outcome", "status"),
                 ("family",), ("attachments",), ("riskRating",), ("pupil",)]


@st.composite
def concerns(draw):
    concern = copy.deepcopy(CONCERN)
    for path in draw(st.lists(st.sampled_from(CONCERN_PATHS), max_size=4)):
        target = concern
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = draw(JSON_VALUES)
    return concern


@PROPERTY
@given(items=st.lists(concerns() | JSON_VALUES, max_size=5), version=st.sampled_from(["2.3", "1.4"]))
def test_concernhub_json_reads_one_record_per_concern_whatever_it_holds(items, version):
    export = {**EXPORT, "exportVersion": version, "concerns": items}
    summary = _translate("concernhub-json", json.dumps(export).encode())
    assert summary is not None and summary.records == len(items)


@PROPERTY
@given(concern=concerns())
def test_a_single_concern_is_one_record(concern):
    if not {"id", "reference", "subject", "pupil"} & concern.keys():
        return
    summary = _translate("concernhub-json", json.dumps(concern).encode())
    assert summary is not None and summary.records == 1


# ppn-xml ----------------------------------------------------------------------------------------------------

XML_TREE = etree.fromstring((SAMPLES / "ppn-sample.xml").read_bytes())
XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r"), max_size=40)


@st.composite
def notice_batches(draw):
    batch = copy.deepcopy(XML_TREE)
    notices = list(batch)
    for _ in range(draw(st.integers(0, 3))):
        batch.append(copy.deepcopy(draw(st.sampled_from(notices))))
    leaves = [e for e in batch.iter() if isinstance(e.tag, str) and len(e) == 0]
    for element in draw(st.lists(st.sampled_from(leaves), max_size=6)):
        element.text = draw(XML_TEXT)
    for element in draw(st.lists(st.sampled_from(leaves), max_size=2)):
        element.getparent().remove(element) if element.getparent() is not None else None
    return batch


@PROPERTY
@given(batch=notice_batches())
def test_ppn_xml_reads_one_record_per_notice_whatever_the_fields_hold(batch):
    summary = _translate("ppn-xml", etree.tostring(batch, xml_declaration=True, encoding="UTF-8"))
    assert summary is not None and summary.records == len(batch)


# The validator ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def referral() -> dict:
    from gateway.model import build_bundle
    from gateway.transport.views import warm_up_record

    return build_bundle(warm_up_record(NOW), now=NOW)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*path, index))


@pytest.mark.parametrize("value", [True, 5, 1.5, "text"])
def test_an_extension_that_is_not_a_list_is_answered(referral, value):
    from gateway.validation import validate_bundle

    bundle = copy.deepcopy(referral)
    bundle["entry"][5]["resource"]["extension"] = value
    outcome = validate_bundle(bundle, now=NOW, base=True)
    assert any(i["severity"] == "error" and "extension" in " ".join(i.get("expression", []))
               for i in outcome["issue"]), outcome


@pytest.mark.parametrize("value", [[], ["safeguarding-referral"], {"code": "x"}])
def test_an_event_code_that_is_a_list_is_answered(referral, value):
    from gateway.validation import validate_bundle

    bundle = copy.deepcopy(referral)
    bundle["entry"][0]["resource"]["eventCoding"]["code"] = value
    outcome = validate_bundle(bundle, now=NOW, base=True)
    assert any(i["severity"] in ("error", "fatal") for i in outcome["issue"]), outcome


@PROPERTY
@given(data=st.data())
def test_the_validator_answers_any_referral_with_an_operation_outcome(referral, data):
    from gateway.validation import validate_bundle
    from gateway.validation.validator import NotABundle

    bundle = copy.deepcopy(referral)
    paths = [p for p in _paths(bundle) if p]
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        target = bundle
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):  # an earlier change removed the place
            continue
    if bundle.get("resourceType") != "Bundle":
        with pytest.raises(NotABundle):  # documented: the caller (the intake) refuses it before
            validate_bundle(bundle, now=NOW, base=True)
        return
    outcome = validate_bundle(bundle, now=NOW, base=True)
    assert outcome["resourceType"] == "OperationOutcome" and isinstance(outcome["issue"], list)
    for issue in outcome["issue"]:
        assert issue["severity"] in ("fatal", "error", "warning", "information"), issue
