"""The audit tests' fixtures: a store on each backend (the store tests' own), records, and tampering by raw SQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from tests.store.conftest import store  # noqa: F401  (SQLite and PostgreSQL, at the schema's head)

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)

# The append-only guards of revision 0003_audit_log: dropping them is what an attacker with the database's
# owner rights would do first, and verify must still find what they did after.
_GUARDS = {"sqlite": ("DROP TRIGGER audit_event_no_update", "DROP TRIGGER audit_event_no_delete"),
           "postgresql": ("DROP TRIGGER audit_event_no_change ON audit_event",
                          "DROP TRIGGER audit_event_no_truncate ON audit_event")}


def drop_guards(engine) -> None:
    with engine.begin() as connection:
        for statement in _GUARDS[engine.dialect.name]:
            connection.execute(text(statement))


def tamper(engine, *statements, **params) -> None:
    """Run raw SQL on the audit tables, with their guards dropped."""
    drop_guards(engine)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), params)


def append(store, count: int, *, start: dt.datetime = T0, agent: str = "urn:x-safeguarding:agency:school:999101"):
    """Append ``count`` records in one transaction of the store."""
    from gateway.audit import record_audit

    with store.transaction() as unit:
        for n in range(count):
            record_audit(unit.session, action="C", subtype="submission", agent=agent,
                         entities=[("message", f"urn:uuid:00000000-0000-4000-8000-{n:012d}")],
                         detail={"format": "schoolsafe-csv"}, at=start + dt.timedelta(seconds=n))


@pytest.fixture
def verify_now():
    """Return ``verify(engine, trust=None)``: the report of the chain as it is now."""
    from gateway.audit.verify import verify
    from gateway.store.engine import read_only

    def run(engine, trust=None):
        with read_only(engine) as connection:
            return verify(connection, trust, now=dt.datetime.now(dt.timezone.utc), batch=7)

    return run
