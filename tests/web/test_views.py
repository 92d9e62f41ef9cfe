"""Pages every agency shares: the first page and the accessibility statement."""

from __future__ import annotations

from tests.shared_console import BCP, DORSET, GATEWAY, HAMPSHIRE, SCHOOL, text_of


def test_the_accessibility_statement_is_for_every_agency_and_reads_no_personal_data(console):
    console.family_a()
    before = len(console.reads())
    for agency in (HAMPSHIRE, BCP, SCHOOL, DORSET, GATEWAY):
        page = console.get("/accessibility", agency)
        assert page.status_code == 200, agency
        text = text_of(page)
        assert "Accessibility statement" in text and "WCAG 2.2 AA" in text and agency in text
        assert page.headers["Cache-Control"] == "no-store"
    assert len(console.reads()) == before
    assert console.get("/accessibility", None).status_code == 401
    # Every page's footer links to it.
    assert 'href="/accessibility"' in console.get("/la/inbox", HAMPSHIRE).get_data(as_text=True)
