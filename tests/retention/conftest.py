"""Retention fixtures: a gateway on each engine that accepts referrals through the real accept path at chosen times.

Referrals go in through ``POST /fhir/$process-message`` of the real app (the
agency of a verified certificate set in the WSGI environ, as the mTLS
middleware does; TLS itself is tested in tests/transport), on a database at
the schema's head with the scenario's directory, so every table a message
reaches (deliveries, people, link keys and decisions, events, relations,
deadlines ...) holds what the gateway really writes.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, select, update

from gateway.app import create_app
from gateway.config import Settings
from gateway.delivery.models import ACKNOWLEDGED, OPEN_STATES, DeliveryRow
from gateway.delivery.views import close_store
from gateway.model.systems import NHS_NUMBER
from gateway.retention.purge import Purge
from gateway.store import open_store
from gateway.store.engine import read_only
from gateway.store.models import MessagePersonRow
from gateway.transport.middleware import AGENCY_KEY
from gateway.transport.views import CLOCK_KEY, close_intake

SCHOOL = "urn:x-safeguarding:agency:school:999101"
#: "Now" for the tests: a purge run at this instant with a retention of RETENTION_DAYS.
NOW = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
RETENTION_DAYS = 365
OLD = NOW - dt.timedelta(days=3 * 365)          # past retention
RECENT = NOW - dt.timedelta(days=30)            # within it
CHILD_REF = "urn:uuid:7f0c0b9e-2d7e-4c59-9b1e-000000000003"


def nhs_number(serial: int) -> str:
    """A valid NHS number in the 999 test range (modulus 11 check digit); serials whose check is 10 are skipped."""
    while True:
        digits = f"999{serial:06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return digits + str(check)
        serial += 1


@dataclasses.dataclass(frozen=True)
class Person:
    """A fictional person as a referral names them."""

    given: str
    family: str
    birth_date: str
    serial: int

    @property
    def nhs(self) -> str:
        return nhs_number(self.serial)

    def name(self) -> list[dict]:
        return [{"family": self.family, "given": [self.given]}]


class Gateway:
    """The real app on one database, its clock set by each send."""

    def __init__(self, app, store, clock, make_message):
        self.app, self.store, self.clock, self._make = app, store, clock, make_message
        self.client = app.test_client()

    def send(self, child: Person, at: dt.datetime, *, related: tuple[tuple[Person, str], ...] = ()) -> str:
        """Accept a referral about ``child`` at ``at`` naming ``related`` (person, RoleCode); return its id."""
        self.clock["now"] = at
        bundle = copy.deepcopy(self._make(SCHOOL, timestamp=at.isoformat(timespec="seconds")))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                resource.update(identifier=[{"system": NHS_NUMBER, "value": child.nhs}], name=child.name(),
                                birthDate=child.birth_date)
            if resource["resourceType"] == "ServiceRequest":
                resource["id"] = f"referral-{uuid.uuid4().hex[:12]}"
        for n, (person, role) in enumerate(related):
            bundle["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
                "resourceType": "RelatedPerson", "id": f"related-{n}", "patient": {"reference": CHILD_REF},
                "identifier": [{"system": NHS_NUMBER, "value": person.nhs}], "name": person.name(),
                "birthDate": person.birth_date,
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                              "code": role}]}]}})
        answer = self.client.post("/fhir/$process-message", data=json.dumps(bundle),
                                  content_type="application/fhir+json", environ_base={AGENCY_KEY: SCHOOL})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return bundle["identifier"]["value"]

    def acknowledge_all(self) -> None:
        """Close every open delivery as the receivers' acknowledgements do (tests/delivery covers how they come)."""
        with self.store.transaction() as unit:
            unit.session.execute(update(DeliveryRow).where(DeliveryRow.state.in_(OPEN_STATES)).values(
                state=ACKNOWLEDGED, acknowledged_at=self.clock["now"]))

    def person_of(self, person: Person) -> str:
        """The person id the index gave ``person`` (found by id through their records, never by a personal-data
        column: those are encrypted)."""
        ids = self.person_ids()
        for pid, nhs in ids.items():
            if nhs == person.nhs:
                return pid
        raise AssertionError(f"{person} is not in the index")

    def person_ids(self) -> dict[str, str]:
        """Every person id with the NHS number of its records (read through the ORM, which decrypts)."""
        from sqlalchemy.orm import Session

        with Session(self.store.engine) as session:
            return {row.person_id: row.nhs_number for row in session.scalars(select(MessagePersonRow))
                    if row.person_id}

    def count(self, table, *where) -> int:
        with read_only(self.store.engine) as connection:
            return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()

    def purge(self, **options):
        options.setdefault("retention_days", RETENTION_DAYS)
        options.setdefault("now", NOW)
        return Purge(self.store, **options).run()


@pytest.fixture
def gateway(seeded_database_url, deployment, make_message):
    """The real app and its store on a database with the demo directory (SQLite, then PostgreSQL)."""
    store = open_store(seeded_database_url)
    app = create_app(Settings(database_url=seeded_database_url, certs_dir=deployment.dir))
    clock = {"now": OLD}
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: clock["now"]})
    yield Gateway(app, store, clock, make_message)
    close_intake(app)
    close_store(app)
    store.close()
