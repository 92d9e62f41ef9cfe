"""Fixtures that build on each other: settings -> app -> client/runner."""

from __future__ import annotations

import dataclasses as _dataclasses
import os as _os
import shutil

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.app import create_app
from gateway.config import Settings

#: Fixtures more than one directory's tests use, registered here once for the whole run (a test module
#: that imported them would make second copies of their session-scoped fixtures).
pytest_plugins = ["tests.shared_delivery", "tests.shared_console"]

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "samples"


# Databases at the schema's head revision ------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One SQLite database upgraded to the schema's head for the whole run (tests get copies of it)."""
    from gateway.store import schema

    path = tmp_path_factory.mktemp("schema") / "head.sqlite3"
    schema.upgrade(f"sqlite:///{path}")  # its engine is disposed: the WAL is checkpointed into the file
    return path


def copy_database(template: Path, path: Path) -> str:
    """Copy an SQLite database nothing has open to ``path`` (parents made); return its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def upgraded_sqlite(sqlite_template):
    """Return ``make(path) -> url``: a fresh SQLite database at the schema's head at ``path``.

    A copy of :func:`sqlite_template`: upgrading each test's database would run every migration again.
    """
    return lambda path: copy_database(sqlite_template, path)


@pytest.fixture
def settings(tmp_path, upgraded_sqlite) -> Settings:
    """Settings for one test: a fresh SQLite file, at the schema's head, in the test's own folder."""
    return Settings(database_url=upgraded_sqlite(tmp_path / "gateway.sqlite3"))


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def samples() -> Path:
    return SAMPLES


# Trust (signing, transport, store) -------------------------------------------------
import dataclasses as _dataclasses  # noqa: E402
import datetime as _dt  # noqa: E402
import uuid as _uuid  # noqa: E402


@_dataclasses.dataclass(frozen=True)
class Deployment:
    """A certificates directory made by the ``gateway certs`` code, with agency certificates."""

    dir: Path
    school: Path      # PREFIX of school 999101's certificate and key
    police: Path      # PREFIX of (fictional) force TST's

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def crl(self) -> Path:
        return self.dir / "crl.pem"

    def issue(self, prefix: Path, *, kind: str, code: str, name: str, now: _dt.datetime | None = None,
              days: int = 30) -> Path:
        """Issue another agency certificate (``now`` in the past makes an expired one); return PREFIX."""
        from gateway.signing import pki

        ca = pki.CertificateAuthority.open(self.dir)
        cert, key = ca.issue(kind=kind, code=code, name=name, days=days,
                             now=now or _dt.datetime.now(_dt.timezone.utc), hosts=("localhost", "127.0.0.1"))
        pki.write_issued(prefix, cert, key)
        return prefix


@pytest.fixture(scope="session")
def deployment(tmp_path_factory) -> Deployment:
    """One deployment PKI for the whole run (certificates are slow to make by the dozen)."""
    from gateway.signing import pki

    root = tmp_path_factory.mktemp("pki")
    now = _dt.datetime.now(_dt.timezone.utc)
    pki.create_deployment(root / "certs", now=now)
    made = Deployment(root / "certs", root / "school-999101", root / "police-TST")
    made.issue(made.school, kind="school", code="999101", name="Fictional Primary School", now=now, days=365)
    made.issue(made.police, kind="police", code="TST", name="Fictional Constabulary", now=now, days=365)
    return made


@pytest.fixture
def make_message():
    """Return a builder of small fictional FHIR message Bundles sent by an agency."""
    from gateway.model.systems import AGENCY_IDENTIFIER_SYSTEM, NHS_NUMBER, parse_agency_uri

    def build(agency: str = "urn:x-safeguarding:agency:school:999101", *, timestamp: str | None = None,
              message_id: str | None = None, sender_code: str | None = None,
              incident_date: str = "2018-06-14") -> dict:
        kind, code = parse_agency_uri(agency)
        message_id = message_id or f"urn:uuid:{_uuid.uuid4()}"
        timestamp = timestamp or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return {
            "resourceType": "Bundle",
            "id": message_id.removeprefix("urn:uuid:"),
            "identifier": {"system": "urn:ietf:rfc:3986", "value": message_id},
            "type": "message",
            # Deliberately "+00:00", not "Z": signing must keep the JSON as received.
            "timestamp": timestamp,
            "entry": [
                {"fullUrl": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000001",
                 "resource": {"resourceType": "MessageHeader", "id": "hdr-1",
                              "eventCoding": {"system": "https://fhir.safeguarding-gateway.example/CodeSystem/"
                                              "message-event", "code": "safeguarding-referral"},
                              "source": {"name": "Fictional sender", "endpoint": agency},
                              "sender": {"reference": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000002"},
                              "focus": [{"reference": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000005"}]}},
                {"fullUrl": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000002",
                 "resource": {"resourceType": "Organization", "id": "sender",
                              "identifier": [{"system": AGENCY_IDENTIFIER_SYSTEM[kind],
                                              "value": sender_code or code}],
                              "name": "Fictional sender"}},
                {"fullUrl": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000003",
                 "resource": {"resourceType": "Patient", "id": "child",
                              "identifier": [{"system": NHS_NUMBER, "value": "9990000018"}],
                              "name": [{"family": "Testchild", "given": ["Alex"]}],
                              "birthDate": "2012-03-04",
                              "address": [{"use": "home", "postalCode": "SP10 1AA"}]}},
                {"fullUrl": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000004",
                 "resource": {"resourceType": "Observation", "id": "concern", "status": "final",
                              "code": {"text": "Safeguarding concern"},
                              "subject": {"reference": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000003"},
                              "effectiveDateTime": f"{incident_date}T09:30:00+01:00",
                              "valueString": "Fictional concern text \u2014 caf\u00e9, 100% made up."}},
                # The referral itself, with what the national standard MUSTs ask for.
                {"fullUrl": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000005",
                 "resource": {"resourceType": "ServiceRequest", "id": "referral", "status": "active",
                              "intent": "order",
                              "category": [{"coding": [{"system": "https://fhir.safeguarding-gateway.example/"
                                                        "CodeSystem/concern-category", "code": "neglect"}]}],
                              "subject": {"reference": "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000003"},
                              "authoredOn": f"{incident_date}T10:00:00+01:00",
                              "note": [{"text": "Fictional narrative: came to school hungry again."}]}},
            ],
        }

    return build


# PostgreSQL ----------------------------------------------------------------------------------------

#: The real PostgreSQL server (this machine's, by default). Tests that use it fail, never skip,
#: when it cannot be reached: a missing database must not pass silently.
POSTGRES_URL = _os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@_dataclasses.dataclass(frozen=True)
class PostgresSchema:
    """A fresh schema on the real server: its name, engine options and a URL for other processes."""

    schema: str
    connect_args: dict
    url: str

    def __iter__(self):  # ``schema, connect_args = postgres_schema``
        return iter((self.schema, self.connect_args))


@pytest.fixture
def postgres_schema():
    """A fresh PostgreSQL schema for one test, dropped afterwards (parallel runs never collide)."""
    from sqlalchemy import text

    from gateway.store.engine import make_engine

    admin = make_engine(POSTGRES_URL)
    schema = f"test_{_uuid.uuid4().hex}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield PostgresSchema(schema, {"options": f"-csearch_path={schema}", "application_name": schema},
                             f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def upgraded_postgres_schema(postgres_schema) -> PostgresSchema:
    """A fresh PostgreSQL schema upgraded to the schema's head (its ``alembic_version`` is in it too)."""
    from gateway.store import schema
    from gateway.store.engine import make_engine

    engine = make_engine(POSTGRES_URL, connect_args=postgres_schema.connect_args)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()
    return postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded_database_url(request, tmp_path) -> str:
    """The URL of a database at the schema's head holding the demo directory, on SQLite or the real PostgreSQL
    server: where a test of the accept path starts (routing needs the directory)."""
    from gateway.routing import Directory
    from gateway.store import open_store

    if request.param == "sqlite":
        url = request.getfixturevalue("upgraded_sqlite")(tmp_path / "gateway.sqlite3")
    else:
        url = request.getfixturevalue("upgraded_postgres_schema").url
    store = open_store(url)
    try:
        Directory(store.engine).load_seed()
    finally:
        store.close()
    return url


# A real headless browser (Debian's chromium and chromedriver; `make test` installs them) ----------------------
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser():
    """Chromium, headless, driven over WebDriver. Fails (does not skip) when it is not installed."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not _os.access(path, _os.X_OK)]
    if missing:
        pytest.fail(f"page tests need a real browser: {', '.join(missing)} not found. `make test` installs Debian's "
                    "chromium and chromium-driver (apt-get, as root); install them by hand otherwise")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
