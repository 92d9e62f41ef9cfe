"""Who each accepted message is about: normalised, searchable, in the accepting transaction."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from sqlalchemy import select

from gateway.adapters import get_adapter
from gateway.model import build_bundle
from gateway.store.models import MessagePersonRow
from gateway.linkage.matching import fold_name
from gateway.linkage.records import kind_of, people_of

from tests.store.test_services import _message

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
NOW = dt.datetime(2018, 9, 30, 16, 40, tzinfo=dt.timezone.utc)


def _bundles(format_id: str, name: str) -> list[dict]:
    adapter = get_adapter(format_id)
    with open(SAMPLES / name, "rb") as stream:
        return [build_bundle(c, now=NOW) for r in adapter.records(stream, name)
                for c in adapter.translate(r, filename=name, now=NOW) if c["kind"] == "referral"]


def test_the_child_and_the_people_around_them_are_normalised():
    mia = _bundles("ppn-xml", "ppn-sample.xml")[0]
    people = {p["role"]: p for p in people_of(mia)}
    child = people["child"]
    assert (child["family"], child["given"], child["birth_date"]) == ("parker", "mia rose", "2013-05-14")
    assert (child["postcode"], child["postcode_district"]) == ("SP10 1AA", "SP10")
    assert child["nhs_number"] is None and child["upn"] is None        # the police did not know them
    assert child["occurred_at"] == "2018-09-09T03:00:00+01:00"          # event time ...
    assert child["recorded_at"] == "2018-09-30T16:20:00+01:00"          # ... kept apart from recorded time
    assert {"MTH", "FTH"} <= set(people)
    assert child["resource"].startswith("Patient/") and people["MTH"]["resource"].startswith("RelatedPerson/")


def test_school_upn_is_kept_and_an_invalid_identifier_never_is():
    (leo,) = _bundles("schoolsafe-csv", "schoolsafe-sample.csv")
    assert {p["role"]: p for p in people_of(leo)}["child"]["upn"] == "K850210119003"
    patient = next(e["resource"] for e in leo["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000019"}]  # bad check digit
    assert {p["role"]: p for p in people_of(leo)}["child"]["nhs_number"] is None


def test_names_fold_case_accents_and_spacing():
    assert fold_name("  Zoë  O'NEILL ") == "zoe oneill"
    assert fold_name("") is None and fold_name(None) is None


def test_siblings_are_matched_as_children_and_parents_as_adults():
    assert [kind_of(r) for r in ("child", "SIB", "HBRO", "STPSIS", "TWINBRO")] == ["child"] * 5
    assert [kind_of(r) for r in ("MTH", "FTH", "GRMTH", "related")] == ["adult"] * 4


def _record_people(unit, accepted, bundle):
    from sqlalchemy import insert

    rows = [dict(values, message_id=accepted.message_id, source=accepted.sender_agency) for values in people_of(bundle)]
    unit.session.connection().execute(insert(MessagePersonRow.__table__), rows)


def test_rows_are_written_in_the_accepting_transaction(store):
    mia, leo = _bundles("ppn-xml", "ppn-sample.xml")
    for n, bundle in enumerate((mia, leo), start=1):
        accepted = _message(message_id=f"urn:uuid:00000000-0000-4000-8000-00000000000{n}")
        with store.transaction() as unit:
            unit.messages.add(accepted)
            _record_people(unit, accepted, bundle)
    with store.transaction() as unit:
        rows = unit.session.execute(select(MessagePersonRow)).scalars().all()
    # The names and dates are encrypted at rest (docs/encryption.md): compared after reading, not in SQL.
    children = sorted((r.given, r.birth_date, r.postcode_district) for r in rows if r.role == "child")
    by_name = [r.message_id for r in rows if (r.family, r.birth_date) == ("parker", "2015-11-02")]
    assert children == [("leo", "2015-11-02", "SP10"), ("mia rose", "2013-05-14", "SP10")]
    assert by_name == ["urn:uuid:00000000-0000-4000-8000-000000000002"]


def test_a_failed_acceptance_writes_no_people(store):
    (leo,) = _bundles("schoolsafe-csv", "schoolsafe-sample.csv")
    accepted = _message()
    try:
        with store.transaction() as unit:
            unit.messages.add(accepted)
            _record_people(unit, accepted, leo)
            raise RuntimeError("a later accept step refused the message")
    except RuntimeError:
        pass
    with store.transaction() as unit:
        assert unit.session.execute(select(MessagePersonRow)).first() is None


def test_versions_of_one_record_share_its_record_id():
    (leo,) = _bundles("schoolsafe-csv", "schoolsafe-sample.csv")
    adapter = get_adapter("schoolsafe-csv")
    text = (SAMPLES / "schoolsafe-sample.csv").read_bytes().replace(b"third day this week", b"fourth day this week")
    edited = [build_bundle(c, now=NOW) for r in adapter.records(io.BytesIO(text), "edited.csv")
              for c in adapter.translate(r, filename="edited.csv", now=NOW) if c["kind"] == "referral"][0]
    assert edited["id"] != leo["id"]                        # a new version is a new message ...
    assert people_of(edited)[0]["record_id"] == people_of(leo)[0]["record_id"]  # ... of the same record
