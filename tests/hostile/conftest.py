"""A gateway app, its clock and a way to send as an agency, for the hostile-input tests.

The agency identity is what the mTLS middleware puts in the environ (proved
over real handshakes in tests/transport/test_mtls.py); here the test client
supplies it, so the tests can send thousands of bad bodies quickly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.routing import Directory
from gateway.store import open_store
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"
SCHOOL = "urn:x-safeguarding:agency:school:999101"
OTHER_SCHOOL = "urn:x-safeguarding:agency:school:999102"
POLICE = "urn:x-safeguarding:agency:police:DOR"
NOW = dt.datetime(2018, 9, 30, 16, 40, tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class Gateway:
    """One app under test, its settings, and a settable clock."""

    app: object
    settings: Settings
    now: dt.datetime = NOW

    def post(self, path: str, body: bytes | None = b"", agency: str | None = SCHOOL, *, stream=None,
             content_length: int | None = None, content_type: str | None = None):
        """POST ``body``, or read ``stream`` as it arrives: without a length (a chunked upload, which
        gunicorn ends itself: ``wsgi.input_terminated``) unless ``content_length`` declares one."""
        from werkzeug.test import EnvironBuilder

        content_type = content_type or ("application/fhir+json" if "fhir" in path else "application/octet-stream")
        builder = EnvironBuilder(path=path, method="POST", data=body or b"", content_type=content_type,
                                 environ_base={AGENCY_KEY: agency} if agency else {})
        environ = builder.get_environ()
        builder.close()
        if stream is not None:
            environ["wsgi.input"] = stream
            if content_length is None:
                environ.pop("CONTENT_LENGTH", None)
                environ["wsgi.input_terminated"] = True
            else:
                environ["CONTENT_LENGTH"] = str(content_length)
        from werkzeug.test import run_wsgi_app
        from werkzeug.wrappers import Request

        # The environ as built (the test client would rebuild it, dropping wsgi.input_terminated).
        app_iter, status, headers = run_wsgi_app(self.app, environ, buffered=True)
        return self.app.test_client().response_wrapper(app_iter, status, headers, request=Request(environ))

    def ingest(self, format_id: str, body: bytes, agency: str | None = SCHOOL, **kwargs):
        return self.post(f"/ingest/{format_id}", body, agency, **kwargs)

    def message(self, body: bytes, agency: str | None = SCHOOL, **kwargs):
        return self.post("/fhir/$process-message", body, agency, **kwargs)


@pytest.fixture
def make_gateway(tmp_path, deployment, upgraded_sqlite):
    """Return ``make(**settings) -> Gateway``: an app on a fresh database with these settings."""
    made = []

    def make(**overrides) -> Gateway:
        folder = tmp_path / f"gateway-{len(made)}"
        overrides.setdefault("database_url", upgraded_sqlite(folder / "gateway.sqlite3"))
        settings = Settings(certs_dir=deployment.dir, replay_window_seconds=600, **overrides)
        store = open_store(settings.database_url)
        Directory(store.engine).load_seed()
        store.close()
        app = create_app(settings)
        gateway = Gateway(app, settings)
        app.config.update(TESTING=True, **{CLOCK_KEY: lambda: gateway.now})
        made.append(app)
        return gateway

    yield make
    for app in made:
        close_intake(app)


@pytest.fixture
def gateway(make_gateway) -> Gateway:
    return make_gateway()


def outcome_texts(response) -> list[str]:
    """Every issue's text and diagnostics of an OperationOutcome answer."""
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    return [f"{i.get('details', {}).get('text', '')} {i.get('diagnostics', '')}" for i in body["issue"]]


def counts(response) -> dict:
    """The ingest summary's counts."""
    from gateway.api.ingest import EXT_INGEST_SUMMARY

    ext = next(e for e in response.get_json()["extension"] if e["url"] == EXT_INGEST_SUMMARY)
    return {e["url"]: e["valueInteger"] for e in ext["extension"]}
