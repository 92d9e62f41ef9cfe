"""HTTP hygiene through the Flask app: Content-Type checked (415), 405 with ``Allow``, FHIR answers as FHIR JSON.

The agency identity is what the mTLS middleware puts in the environ (the
test client supplies it here; ``test_matrix.py`` and
``tests/transport/test_mtls.py`` prove the real handshake delivers it).
"""

from __future__ import annotations

import json
import re

import pytest

from gateway.api.metadata import openapi_document
from gateway.app import create_app
from gateway.config import Settings
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import close_intake

SCHOOL = "urn:x-safeguarding:agency:school:999101"
AGENCIES = (None, SCHOOL, "urn:x-safeguarding:agency:police:TST", "urn:x-safeguarding:agency:la:850",
            "urn:x-safeguarding:agency:gateway:national")
FHIR_JSON = "application/fhir+json"
CSV = (b"Incident ID,School URN,Student,UPN,Date of Birth,Gender,Year Group,Home Postcode,Incident Date,Date Added,"
       b"Categories,Incident,Action Taken,Linked Students,Parents/Carers,Reported By,Status,Referral\r\n")  # no rows


@pytest.fixture
def gateway_app(tmp_path, deployment, upgraded_sqlite):
    app = create_app(Settings(database_url=upgraded_sqlite(tmp_path / "gateway.sqlite3"), certs_dir=deployment.dir))
    app.config["TESTING"] = True
    yield app
    close_intake(app)


@pytest.fixture
def post(gateway_app):
    client = gateway_app.test_client()

    def send(path: str, body: bytes, content_type: str | None, agency: str | None = SCHOOL):
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return client.post(path, data=body, headers=headers, environ_base={AGENCY_KEY: agency} if agency else {})

    return send


def _unsupported(response, *accepted: str) -> None:
    assert response.status_code == 415, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "not-supported" and issue["expression"] == ["Content-Type"]
    for media_type in accepted:
        assert media_type in issue["diagnostics"]


@pytest.mark.parametrize("content_type", ["application/fhir+json", "application/json",
                                          "application/fhir+json; charset=utf-8", "application/json;charset=UTF-8"])
def test_process_message_takes_fhir_json_and_json(post, make_message, content_type):
    response = post("/fhir/$process-message", json.dumps(make_message(SCHOOL)).encode(), content_type)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == FHIR_JSON


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                                          "application/fhir+json; charset=latin-1", None])
@pytest.mark.parametrize("path", ["/fhir/$process-message", "/fhir/Bundle/$validate"])
def test_fhir_endpoints_refuse_other_content_types(post, make_message, gateway_app, path, content_type):
    message = make_message(SCHOOL)
    response = post(path, json.dumps(message).encode(), content_type)
    _unsupported(response, "application/fhir+json", "application/json")
    from gateway.store import open_store

    store = open_store(gateway_app.config["GATEWAY_SETTINGS"].database_url)
    try:
        assert store.find_accepted(message["identifier"]["value"]) is None  # nothing parsed, nothing kept
    finally:
        store.close()


def test_validate_takes_json(post, make_message):
    response = post("/fhir/Bundle/$validate", json.dumps(make_message(SCHOOL)).encode(), "application/json")
    assert response.status_code == 200 and response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "application/octet-stream", None])
def test_ingest_takes_its_formats_type_or_octet_stream(post, content_type):
    response = post("/ingest/schoolsafe-csv", CSV, content_type)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == FHIR_JSON


@pytest.mark.parametrize("format_id, content_type, accepted", [
    ("schoolsafe-csv", "application/json", ("text/csv", "application/octet-stream")),
    ("schoolsafe-csv", "text/plain", ("text/csv", "application/octet-stream")),
    ("ppn-xml", "text/csv", ("application/xml", "text/xml", "application/octet-stream")),
    ("concernhub-json", "application/xml", ("application/json", "application/octet-stream")),
])
def test_ingest_refuses_another_formats_type(post, format_id, content_type, accepted):
    _unsupported(post(f"/ingest/{format_id}", CSV, content_type), *accepted)


def test_ingest_of_xml_as_xml_is_read(post):
    response = post("/ingest/ppn-xml", b"<NoticeBatch xmlns='urn:x-police-uk:ppn:1'/>", "application/xml",
                    agency="urn:x-safeguarding:agency:police:TST")
    assert response.status_code in (200, 400)  # read as XML: not refused for its type
    assert response.mimetype == FHIR_JSON


def _paths():
    for path, operations in openapi_document()["paths"].items():
        yield path, re.sub(r"\{[^}]+\}", "1", path), operations


def test_every_405_says_which_methods_are_allowed(gateway_app):
    client = gateway_app.test_client()
    for path, url, operations in _paths():
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - {m.upper() for m in operations}:
            response = client.open(url, method=method, environ_base={AGENCY_KEY: SCHOOL})
            assert response.status_code == 405, (method, url, response.status_code)
            allowed = {m.strip() for m in response.headers["Allow"].split(",")}
            assert {m.upper() for m in operations} <= allowed, (method, url, allowed)
            assert response.mimetype == FHIR_JSON and response.get_json()["issue"][0]["code"] == "not-supported"


def test_every_answer_has_the_content_type_the_openapi_document_gives(gateway_app, make_message):
    """Each endpoint, asked by each kind of agency (and none), answers as its OpenAPI document says; any
    FHIR resource answered says application/fhir+json."""
    client = gateway_app.test_client()
    seen = 0
    for path, url, operations in _paths():
        for method, operation in operations.items():
            body = json.dumps(make_message(SCHOOL)).encode() if method == "post" else None
            for agency in AGENCIES:
                response = client.open(url, method=method.upper(), data=body,
                                       content_type="application/fhir+json" if body else None,
                                       environ_base={AGENCY_KEY: agency} if agency else {})
                text = response.get_data(as_text=True)
                parsed = json.loads(text) if text.lstrip().startswith("{") else None
                if isinstance(parsed, dict) and "resourceType" in parsed:
                    assert response.mimetype == FHIR_JSON, (method, url, agency, response.status_code)
                declared = operation["responses"].get(str(response.status_code))
                if declared is not None and declared.get("content"):
                    assert response.mimetype in declared["content"], (method, url, agency, response.status_code,
                                                                      response.mimetype)
                seen += 1
    assert seen > 80
