"""What every console page shares: links built in bulk, times as people read them."""

from __future__ import annotations

import datetime as dt

from flask import url_for

from gateway.web.console.common import format_when, links


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
