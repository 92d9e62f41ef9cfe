"""``POST /ingest/<format>``, ``GET /fhir/metadata``, ``GET /openapi.json``, through the Flask app.

The agency identity is what the mTLS middleware puts in the environ (proved
over real handshakes in tests/transport/test_mtls.py); here the test client
supplies it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate as validate_openapi

from gateway.api.ingest import EXT_INGEST_SUMMARY
from gateway.api.metadata import DOCS_OPENAPI, render_openapi
from gateway.app import create_app
from gateway.config import Settings
from gateway.model import validate_resource
from gateway.routing import Directory
from gateway.store import open_store
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
SCHOOL = "urn:x-safeguarding:agency:school:999101"
POLICE_DOR = "urn:x-safeguarding:agency:police:DOR"
NOW = dt.datetime(2018, 9, 30, 16, 40, tzinfo=dt.timezone.utc)


@pytest.fixture
def api_app(tmp_path, deployment, upgraded_sqlite):
    settings = Settings(database_url=upgraded_sqlite(tmp_path / "gateway.sqlite3"), certs_dir=deployment.dir,
                        replay_window_seconds=600, max_request_bytes=200_000)
    store = open_store(settings.database_url)
    Directory(store.engine).load_seed()
    store.close()
    app = create_app(settings)
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: NOW})
    yield app
    close_intake(app)


def _ingest(app, format_id: str, body: bytes, agency: str | None):
    environ = {AGENCY_KEY: agency} if agency else {}
    return app.test_client().post(f"/ingest/{format_id}", data=body, content_type="application/octet-stream",
                                  environ_base=environ)


def _counts(outcome: dict) -> dict:
    ext = next(e for e in outcome["extension"] if e["url"] == EXT_INGEST_SUMMARY)
    return {e["url"]: e["valueInteger"] for e in ext["extension"]}


def test_ingest_a_police_batch_accepts_one_message_per_child(api_app):
    response = _ingest(api_app, "ppn-xml", (SAMPLES / "ppn-sample.xml").read_bytes(), POLICE_DOR)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    outcome = response.get_json()
    validate_resource(outcome)
    assert _counts(outcome) == {"records": 2, "translated": 2, "skipped": 0, "rejected": 0, "messages": 2,
                                "accepted": 2, "refused": 0}
    texts = [i["details"]["text"] for i in outcome["issue"]]
    assert sum("accepted" in t and t.startswith("message urn:uuid:") for t in texts) == 2
    # The sender is told what the standard finds missing, per message.
    assert any("21 days" in (i.get("details", {}).get("text") or "") for i in outcome["issue"])


def test_ingest_again_is_idempotent(api_app):
    body = (SAMPLES / "ppn-sample.xml").read_bytes()
    first = _ingest(api_app, "ppn-xml", body, POLICE_DOR).get_json()
    again = _ingest(api_app, "ppn-xml", body, POLICE_DOR).get_json()
    ids = lambda o: sorted(i["diagnostics"] for i in o["issue"] if i["details"]["text"].startswith("message "))
    assert ids(first) == ids(again) and len(ids(first)) == 2
    assert _counts(again)["accepted"] == 2  # the stored answers are returned, nothing is processed twice


def test_ingest_as_another_agency_is_refused_per_message(api_app):
    response = _ingest(api_app, "schoolsafe-csv", (SAMPLES / "schoolsafe-sample.csv").read_bytes(),
                       "urn:x-safeguarding:agency:school:999102")
    outcome = response.get_json()
    assert response.status_code == 200
    assert _counts(outcome)["accepted"] == 0 and _counts(outcome)["refused"] == 1
    assert any(i["severity"] == "error" and "999101" in json.dumps(i) for i in outcome["issue"])


def test_ingest_reports_skipped_records_with_their_place(api_app):
    outcome = _ingest(api_app, "schoolsafe-csv", (SAMPLES / "schoolsafe-sample.csv").read_bytes(), SCHOOL).get_json()
    assert _counts(outcome)["skipped"] == 2 and _counts(outcome)["accepted"] == 1
    skipped = [i for i in outcome["issue"] if ": skipped: " in i["details"]["text"]]
    assert [i["expression"] for i in skipped] == [["row 2"], ["row 3"]]


def test_ingest_errors(api_app):
    assert _ingest(api_app, "ppn-xml", b"<html>error</html>", None).status_code == 401
    unknown = _ingest(api_app, "no-such-format", b"x", SCHOOL)
    assert unknown.status_code == 404 and "known formats" in unknown.get_json()["issue"][0]["diagnostics"]
    html = _ingest(api_app, "ppn-xml", b"<!DOCTYPE html><html><body>Error 500</body></html>", POLICE_DOR)
    assert html.status_code == 400 and html.get_json()["resourceType"] == "OperationOutcome"
    too_big = _ingest(api_app, "schoolsafe-csv", b"x" * 300_000, SCHOOL)
    assert too_big.status_code == 413 and too_big.get_json()["issue"][0]["code"] == "too-costly"


def test_process_message_too_large_is_413(api_app):
    client = api_app.test_client()
    response = client.post("/fhir/$process-message", data=b"{" + b" " * 300_000 + b"}",
                           content_type="application/fhir+json", environ_base={AGENCY_KEY: SCHOOL})
    assert response.status_code == 413 and response.get_json()["resourceType"] == "OperationOutcome"


def test_metadata_is_a_valid_capability_statement(api_app):
    response = api_app.test_client().get("/fhir/metadata")
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    statement = response.get_json()
    validate_resource(statement)
    events = {m["definition"].rsplit("/", 1)[1] for m in statement["messaging"][0]["supportedMessage"]}
    assert {"safeguarding-referral", "operation-encompass-notification", "referral-outcome"} <= events


def test_openapi_is_valid_and_the_docs_copy_is_current(api_app):
    served = api_app.test_client().get("/openapi.json").get_json()
    validate_openapi(served)
    assert {"/ingest/{format}", "/fhir/$process-message", "/mailbox", "/messages/{id}/status"} <= set(served["paths"])
    assert DOCS_OPENAPI.read_text(encoding="utf-8") == render_openapi(), \
        "docs/openapi.json is out of date: run python -m gateway.api.metadata"


def test_a_single_concern_without_its_school_is_sent_as_the_certificates_school(api_app, tmp_path):
    """A concern sent on its own names no organisation: the school is the one its certificate names."""
    concern = json.loads((SAMPLES / "concernhub-sample.json").read_text(encoding="utf-8"))["concerns"][0]
    response = _ingest(api_app, "concernhub-json", json.dumps(concern).encode(), SCHOOL)
    outcome = response.get_json()
    assert response.status_code == 200, outcome
    assert _counts(outcome)["accepted"] == 1 and _counts(outcome)["refused"] == 0
