"""What every console page shares: links built in bulk, times as people read them."""

from __future__ import annotations

import datetime as dt

from flask import url_for

from gateway.web.console.common import format_when, links
from tests.shared_console import HAMPSHIRE, text_of


def test_links_in_bulk_are_url_for_links(console):
    with console.app.test_request_context("/la/inbox"):
        link = links("console.referral", "message_id")
        for value in ("urn:uuid:21c42362-9bc4-572b-bded-635d4f0c294f", "a b/c?d#e%f", "é£€ 🙂", "x:y@z;=+,$&'()*!~-._"):
            assert link(value) == url_for("console.referral", message_id=value), value


def test_times_read_in_the_gateways_timezone_whatever_the_locale(console):
    with console.app.test_request_context("/la/inbox"):
        assert format_when(dt.datetime(2019, 6, 7, 9, 35, tzinfo=dt.timezone.utc)) == "Fri 7 Jun 2019, 10:35"
        assert format_when("2019-12-29T23:05:00Z", False) == "Sun 29 Dec 2019"
        assert format_when(dt.date(2019, 9, 1)) == "1 September 2019"
        assert format_when("not a time") == "not a time" and format_when(None) == ""


def test_a_page_whose_read_cannot_be_recorded_is_not_sent(console):
    """The read is recorded while the page renders; the page waits for the commit, and when it fails (here the
    database itself refuses the row) an error page without the personal data goes instead, and nothing is
    recorded. Once the database takes reads again, the page is sent and its read recorded."""
    console.family_a()
    assert "Leo" in text_of(console.get("/la/inbox", HAMPSHIRE))
    before = len(console.reads())
    with console.store.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("CREATE TRIGGER refuse_reads BEFORE INSERT ON personal_data_read "
                                       "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
        else:
            connection.exec_driver_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                                       "RAISE EXCEPTION 'the disk is full'; END $$ LANGUAGE plpgsql")
            connection.exec_driver_sql("CREATE TRIGGER refuse_reads BEFORE INSERT ON personal_data_read "
                                       "FOR EACH ROW EXECUTE FUNCTION refuse()")
    refused = console.get("/la/inbox", HAMPSHIRE)
    assert refused.status_code == 503
    assert "Leo" not in refused.get_data(as_text=True) and "could not record" in text_of(refused)
    assert refused.headers["Cache-Control"] == "no-store"
    assert len(console.reads()) == before
    with console.store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER refuse_reads" + (" ON personal_data_read"
                                                                   if connection.dialect.name != "sqlite" else ""))
    assert "Leo" in text_of(console.get("/la/inbox", HAMPSHIRE))
    assert [r.what for r in console.reads()[before:]] == ["console-inbox"]
