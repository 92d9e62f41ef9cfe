"""Console fixtures: Family A's messages accepted by the real app, on a database at the schema's head.

Shared by tests/web and tests/audit, and registered once for the whole run by ``pytest_plugins`` in
tests/conftest.py (a test module that imported the fixtures would make second copies of the session-scoped
demo PKI); import the constants and plain helpers from here: ``from tests.shared_console import HAMPSHIRE``.

Page tests use Flask's test client with the agency of a verified certificate in the WSGI environ (as the
mTLS middleware sets it; TLS itself and the browser are in test_browser.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_module
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import create_app
from gateway.config import Settings
from gateway.delivery.views import close_store
from gateway.linkage.models import PersonalDataReadRow
from gateway.model import systems as S
from gateway.routing import Directory
from gateway.store import open_store
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake
from gateway.web.console import csrf

DATA = Path(__file__).parents[1] / "gateway" / "demo" / "family_a"
HAMPSHIRE, BCP = S.agency_uri("la", "850"), S.agency_uri("la", "839")
SCHOOL, DORSET = S.agency_uri("school", "999101"), S.agency_uri("police", "DOR")
GATEWAY = S.agency_uri("gateway", "national")
POLICE_DAY = dt.datetime.fromisoformat("2018-09-30T17:05:00+01:00")
DISCLOSURE_DAY = dt.datetime.fromisoformat("2019-03-14T12:00:00+00:00")
REFERRAL_DAY = dt.datetime.fromisoformat("2019-06-07T10:35:00+01:00")


def school_rows(*incidents: str) -> bytes:
    """The school's CSV export with only these incidents (a quoted field may hold a line break)."""
    lines = (DATA / "riverside-infant-school.csv").read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    records, current = [], ""
    for line in rows:
        if line.split(",", 1)[0].isdigit() and current:
            records.append(current)
            current = ""
        current += line
    records.append(current)
    return (header + "".join(r for r in records if r.split(",", 1)[0] in incidents)).encode()


class Console:
    """The app, its store and clock, and helpers to send messages and open pages as an agency."""

    def __init__(self, app, store, clock):
        self.app, self.store, self.clock = app, store, clock
        self.client = app.test_client()

    def ingest(self, agency: str, fmt: str, content: bytes, when: dt.datetime, *, concerns: bool = False) -> dict:
        self.clock["now"] = when
        answer = self.client.post(f"/ingest/{fmt}" + ("?concerns=include" if concerns else ""), data=content,
                                  environ_base={AGENCY_KEY: agency})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    def family_a(self) -> None:
        """The police notices, the school's first disclosure (a concern) and its referral for Leo."""
        self.ingest(DORSET, "ppn-xml", (DATA / "dorset-police-ppn.xml").read_bytes(), POLICE_DAY)
        self.ingest(SCHOOL, "schoolsafe-csv", school_rows("4101"), DISCLOSURE_DAY, concerns=True)
        self.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263"), REFERRAL_DAY)

    def get(self, path: str, agency: str | None, **kw):
        return self.client.get(path, environ_base={AGENCY_KEY: agency} if agency else {}, **kw)

    def post(self, path: str, agency: str | None, data: dict, *, token: bool = True, **kw):
        data = dict(data)
        if token and agency:
            with self.app.app_context():
                data.setdefault(csrf.FIELD, csrf.token(csrf.secret_for(self.app.config["GATEWAY_SETTINGS"]), agency,
                                                       self.clock["now"]))
        return self.client.post(path, data=data, environ_base={AGENCY_KEY: agency} if agency else {}, **kw)

    def reads(self, agency: str | None = None) -> list:
        table = PersonalDataReadRow.__table__
        query = select(table).order_by(table.c.id)
        if agency:
            query = query.where(table.c.agency == agency)
        with self.store.engine.connect() as connection:
            return connection.execute(query).all()

    def rows(self, table, *where) -> list:
        with self.store.engine.connect() as connection:
            return connection.execute(select(table).where(*where)).all()


@dataclasses.dataclass(frozen=True)
class DemoPki:
    """The demo's PKI (valid from 2018, so what the gateway signed on the replayed days verifies):
    ``certs`` (the gateway's directory) and each agency's certificate PREFIX (``.crt``/``.key``)."""

    certs: Path
    identities: dict

    def prefix(self, agency: str) -> Path:
        """An agency's certificate PREFIX; the gateway's own (operators) is ``certs/gateway``."""
        return self.certs / "gateway" if agency == GATEWAY else self.identities[agency]


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory) -> DemoPki:
    """One PKI for the run, made by the demo's own set-up (the demo, tests and bench share it)."""
    from gateway.demo import Demo

    demo = Demo(tmp_path_factory.mktemp("console-pki"), echo=lambda *a, **k: None)
    demo.make_pki()
    return DemoPki(demo.certs, dict(demo.identities))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console(request, tmp_path, demo_pki, upgraded_sqlite):
    """The console's app on a database at the schema's head: SQLite, and the real PostgreSQL server."""
    if request.param == "sqlite":
        url = upgraded_sqlite(tmp_path / "gateway.sqlite3")
    else:
        url = request.getfixturevalue("upgraded_postgres_schema").url
    store = open_store(url)
    Directory(store.engine).load_seed()
    app = create_app(Settings(database_url=url, certs_dir=demo_pki.certs))
    clock = {"now": POLICE_DAY}
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: clock["now"]})
    yield Console(app, store, clock)
    close_intake(app)
    close_store(app)
    store.close()


def text_of(response) -> str:
    """The page's visible text, whitespace folded (for reading a page as a person would)."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())
