"""The ``gateway quality --html`` page, rendered in a real headless browser (Chromium)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from gateway.cli import main

from .referral_builders import NOW, quality_input


@pytest.fixture
def page(browser, runner, tmp_path):
    out = tmp_path / "quality.html"
    result = runner.invoke(main, ["quality", str(quality_input(tmp_path)), "--html", str(out),
                                  "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    browser.get(out.as_uri())
    return browser


def _section(page, sender: str):
    return next(s for s in page.find_elements(By.TAG_NAME, "section")
                if s.find_element(By.TAG_NAME, "h2").text == sender)


def test_the_page_shows_each_sender_most_messages_first(page):
    assert page.title == "Referral quality"
    assert page.find_element(By.TAG_NAME, "h1").text == "Referral quality"
    assert [h.text for h in page.find_elements(By.CSS_SELECTOR, "section h2")] == [
        "Quillmere Primary School", "Dorset Police"]
    assert "4 message(s) from 2 sender(s)" in page.find_element(By.TAG_NAME, "body").text


def test_completeness_bars_are_drawn_in_proportion(page):
    school = _section(page, "Quillmere Primary School")
    bars = school.find_elements(By.CSS_SELECTOR, "svg[aria-label='completeness distribution'] rect.bar")
    heights = {bar.find_element(By.TAG_NAME, "title").get_attribute("textContent"): bar.rect["height"]
               for bar in bars}
    assert heights["80-100%: 2"] == pytest.approx(110, abs=1)  # the tallest band fills the chart
    assert heights["60-79%: 1"] == pytest.approx(55, abs=1)
    assert all(h == 0 for band, h in heights.items() if not band.startswith(("80-100", "60-79")))


def test_gap_bars_are_drawn_in_proportion_and_their_labels_fit(page):
    school = _section(page, "Quillmere Primary School")
    chart = school.find_element(By.CSS_SELECTOR, "svg[aria-label='most common gaps']")
    widths = [bar.rect["width"] for bar in chart.find_elements(By.CSS_SELECTOR, "rect.gap")]
    assert widths[:2] == [pytest.approx(200, abs=1)] * 2  # 2 of the school's 3 messages lack each
    assert all(w == pytest.approx(100, abs=1) for w in widths[2:])
    # Every label is drawn inside its chart: none cut off at the left edge or past the right one.
    boxes = page.execute_script(
        "return Array.from(arguments[0].querySelectorAll('text')).map(t => {const b = t.getBBox();"
        " return [t.textContent, b.x, b.x + b.width]})", chart)
    width = float(chart.get_attribute("width"))
    clipped = [text for text, left, right in boxes if left < 0 or right > width]
    assert not clipped, clipped


def test_the_gaps_table_lists_the_items_with_their_shares(page):
    school = _section(page, "Quillmere Primary School")
    rows = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in school.find_elements(By.CSS_SELECTOR, "table tr")[1:]]
    assert rows[0][1:] == ["2", "67%"] and "childs-voice" in rows[0][0]
    assert len(rows) == 6


def test_the_page_loads_nothing_else_and_fits_the_window(page):
    assert page.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_a_long_gap_label_is_cut_at_a_word_and_whole_in_its_tooltip(page):
    chart = _section(page, "Quillmere Primary School").find_element(
        By.CSS_SELECTOR, "svg[aria-label='most common gaps']")
    labels = page.execute_script(
        "return Array.from(arguments[0].querySelectorAll('text')).filter(t => t.querySelector('title'))"
        ".map(t => [t.lastChild.textContent, t.querySelector('title').textContent])", chart)
    cut = [(shown, whole) for shown, whole in labels if shown != whole]
    assert cut, labels  # the consent item's title is longer than the label column
    for shown, whole in cut:
        assert shown.endswith("\u2026") and whole.startswith(shown[:-1]) and len(shown) <= 44
        assert whole[len(shown) - 1] in " ,;:"  # cut between words
