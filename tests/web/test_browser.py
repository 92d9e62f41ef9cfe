"""Journeys through the console in a real browser: Playwright driving Debian's chromium, headless, against a
real ``gateway serve`` over mutual TLS, presenting each agency's client certificate. axe-core runs on every
page the journeys open: no violations.

The browser must be installed (``make test`` installs Debian's chromium); these tests fail, never skip,
without it. Playwright's own browsers are never downloaded (no ``playwright install``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import REPO_DIR
from gateway.demo.processes import free_port, wait_listening
from gateway.delivery.views import close_store
from gateway.transport.views import close_intake
from gateway.web import assets
from tests.shared_console import (
    DATA,
    DISCLOSURE_DAY,
    DORSET,
    GATEWAY,
    HAMPSHIRE,
    POLICE_DAY,
    REFERRAL_DAY,
    SCHOOL,
    Console,
    school_rows,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = REPO_DIR / "node_modules" / "axe-core" / "axe.min.js"
#: WCAG 2.2 AA (and what axe counts as best practice): the standard the console is held to.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
#: What chromium logs for a page answered 400 (a form with errors) or 403 (another agency's page): expected.
EXPECTED_STATUS = "Failed to load resource: the server responded with a status of 4"


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    port: int
    pki: object
    database_url: str
    log: Path


def _family_a_with_a_possible_match(database_url: str, pki) -> None:
    """Family A's police notices and the school's disclosure, then a referral for Leo under another given
    name and without his UPN (a possible match for Hampshire to decide) and the same referral twice (a possible
    duplicate), accepted by the real app in-process."""
    from gateway.app import create_app
    from gateway.config import Settings
    from gateway.routing import Directory
    from gateway.store import open_store
    from gateway.transport.views import CLOCK_KEY

    store = open_store(database_url)
    Directory(store.engine).load_seed()
    app = create_app(Settings(database_url=database_url, certs_dir=pki.certs))
    clock = {"now": POLICE_DAY}
    app.config.update(**{CLOCK_KEY: lambda: clock["now"]})
    console = Console(app, store, clock)
    try:
        console.ingest(DORSET, "ppn-xml", (DATA / "dorset-police-ppn.xml").read_bytes(), POLICE_DAY)
        console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4101"), DISCLOSURE_DAY, concerns=True)
        # Mia's disclosure again an hour later under another incident id: a possible duplicate.
        console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4101").replace(b"\n4101,", b"\n4102,"),
                       DISCLOSURE_DAY.replace(hour=13), concerns=True)
        lee = school_rows("4263").replace(b'"PARKER, Leo",K850210119003,02/11/2015', b'"PARKER, Lee",,02/11/2015')
        console.ingest(SCHOOL, "schoolsafe-csv", lee, REFERRAL_DAY)
    finally:
        close_intake(app)
        close_store(app)
        store.close()


@pytest.fixture(scope="module")
def server(demo_pki, tmp_path_factory, sqlite_template):
    """``gateway serve`` (gunicorn, mTLS) on a copy of the schema with Family A, its clock on the referral day."""
    from tests.conftest import copy_database

    workdir = tmp_path_factory.mktemp("console-server")
    database_url = copy_database(sqlite_template, workdir / "gateway.sqlite3")
    _family_a_with_a_possible_match(database_url, demo_pki)
    assets.build_assets()
    port = free_port()
    log = workdir / "server.log"
    env = dict(os.environ, GATEWAY_DATABASE_URL=database_url, GATEWAY_CLOCK_START=(
        REFERRAL_DAY + dt.timedelta(minutes=5)).isoformat(), PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--certs", str(demo_pki.certs),
                                    "--host", "127.0.0.1", "--port", str(port), "--threads", "16"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_listening(port, process=process, name="gateway serve", timeout=30)
        yield Server(f"https://127.0.0.1:{port}", port, demo_pki, database_url, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def chromium():
    """Debian's chromium through Playwright. Fails (does not skip) when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: `make test` installs it (apt-get, as "
                    "root); install it by hand otherwise (never `playwright install`)")
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` (package.json pins axe-core)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def as_agency(chromium, server):
    """Return ``open(agency) -> page``: a browser context presenting that agency's client certificate."""
    contexts = []

    def open_as(agency: str):
        # One agency's browser at a time: Playwright's client-certificate proxy stalls a second context's
        # first request to the same origin while another context keeps connections open.
        while contexts:
            contexts.pop().close()
        prefix = server.pki.prefix(agency)
        context = chromium.new_context(
            client_certificates=[{"origin": server.url, "certPath": str(prefix.with_suffix(".crt")),
                                  "keyPath": str(prefix.with_suffix(".key"))}],
            # The deployment's CA is not in the browser's store; the client certificate is what is tested.
            ignore_https_errors=True,
            # axe-core is injected as a script; the console's Content-Security-Policy allows only its own.
            bypass_csp=True, viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        # Script errors, and GOV.UK Frontend's (its initAll logs a component that failed to start).
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        page.on("console", lambda message: message.type in ("error", "log") and not message.text.startswith(
            EXPECTED_STATUS) and problems.append(f"{page.url}: console {message.type}: {message.text}"))
        return page

    problems: list[str] = []
    yield open_as
    while contexts:
        contexts.pop().close()
    assert not problems, problems


# Every word of the page's text (letters only, as a person reads it: not an identifier, which may wrap where it
# must) whose letters the layout put on two lines, e.g. a summary list's key too narrow for "Translated".
_BROKEN_WORDS = """() => {
  const broken = [], range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest("svg, script, style, .govuk-visually-hidden")) continue;
    for (const token of node.data.matchAll(/\\S+/g)) {
      const word = /^[("']*([A-Za-z][A-Za-z']+)[)"'.,;:!?]*$/.exec(token[0]);
      if (!word) continue;
      const start = token.index + token[0].indexOf(word[1]);
      range.setStart(node, start);
      range.setEnd(node, start + word[1].length);
      const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (lines.size > 1) broken.push(`"${word[1]}" in <${parent.tagName.toLowerCase()} class="${parent.className}">`);
    }
  }
  return broken;
}"""


# What sticks out of the page's width sideways (WCAG 1.4.10 Reflow: at 320 CSS pixels nothing but a table's own
# pane may scroll sideways): the document's width beyond the window, and the innermost elements that do it.
_WIDER_THAN_THE_WINDOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll("*")].filter(e => !(e.parentElement
      && e.parentElement.closest(".app-table-pane")) && (e.getBoundingClientRect().right > width + 1
      || (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === "visible")));  // or its text does
  const innermost = wide.filter(e => !wide.some(d => d !== e && e.contains(d)));
  return [document.documentElement.scrollWidth - width,
          innermost.slice(0, 5).map(e => `<${e.tagName.toLowerCase()} class="${e.className}">`)];
}"""
NARROW = {"width": 320, "height": 900}  # WCAG 1.4.10: 1280 CSS pixels at 400% zoom


def accessible(page) -> None:
    """Run axe-core on the page once it has loaded: fail with every violation named. And fail, as no axe rule
    does, when the layout breaks a word across two lines, or when at 320 pixels wide the page does not reflow
    (anything but a table's pane scrolls sideways)."""
    page.wait_for_load_state("load")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    problems = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
                for v in result["violations"]]
    assert not problems, f"{page.url}: " + "; ".join(problems)
    wide = page.viewport_size
    try:
        for size in (wide, NARROW):
            page.set_viewport_size(size)
            broken = page.evaluate(_BROKEN_WORDS)
            assert not broken, f"{page.url} at {size['width']} px: words broken across lines: " + "; ".join(broken)
        beyond, culprits = page.evaluate(_WIDER_THAN_THE_WINDOW)
        assert beyond <= 0, f"{page.url} at {NARROW['width']} px: {beyond} px wider than the window: {culprits}"
    finally:
        page.set_viewport_size(wide)


def visit(page, url: str, status: int = 200, server: Server | None = None):
    try:
        answer = page.goto(url)
    except Exception:
        if server is not None:
            print(server.log.read_text()[-4000:])
        raise
    assert answer is not None and answer.status == status, (url, answer and answer.status, page.content()[:500])
    accessible(page)
    return answer


def test_la_reads_a_referral_decides_and_the_school_sees_the_outcome(server, as_agency):
    la = as_agency(HAMPSHIRE)
    visit(la, server.url + "/")
    assert la.url.endswith("/la/inbox")
    assert la.get_by_role("heading", name="Inbox", level=1).is_visible()
    # Keyboard: the first Tab reaches the skip link, which takes focus to the main content.
    la.keyboard.press("Tab")
    assert la.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    la.keyboard.press("Enter")
    assert la.evaluate("document.activeElement.id") == "main-content"
    # Sorting and filtering work without JavaScript (links and a GET form).
    la.get_by_role("link", name=re.compile("^Received")).click()
    accessible(la)
    la.get_by_label("Status").select_option("open")
    la.get_by_role("button", name="Apply filter").click()
    accessible(la)
    assert "status=open" in la.url
    la.get_by_role("row").filter(has_text="Riverside Infant School").get_by_role(
        "link", name="Safeguarding referral").first.click()
    accessible(la)
    assert la.get_by_text("Signature verified").is_visible()
    assert la.get_by_role("heading", name="The child's voice").is_visible()
    la.get_by_role("link", name="Record the decision").click()
    accessible(la)
    # Sent empty: the error summary, focused, links to the fields.
    la.get_by_role("button", name="Send the decision").click()
    accessible(la)
    assert la.get_by_role("alert").get_by_text("Select the decision").is_visible()
    la.get_by_label("Accepted for assessment").check()
    la.get_by_label("Reason").fill('A social worker will visit on Monday; "urgent" <b>not bold</b>.')
    la.get_by_role("button", name="Send the decision").click()
    accessible(la)
    assert la.get_by_text("The decision was sent to Riverside Infant School.").is_visible()
    assert la.get_by_text('A social worker will visit on Monday; "urgent" <b>not bold</b>.').is_visible()

    # The school's page writes (the read is recorded): the decided page before it must have left no
    # transaction open (it once did, holding SQLite's write lock for good, and this page waited forever).
    school = as_agency(SCHOOL)
    visit(school, server.url + "/school", server=server)
    card = school.locator(".govuk-summary-card").filter(has_text="Safeguarding referral")
    assert card.get_by_text("Accepted for assessment").is_visible()
    assert card.get_by_text("A social worker will visit on Monday").is_visible()
    # The school acknowledges an Operation Encompass notification with one button.
    buttons = school.get_by_role("button", name=re.compile("^Acknowledge"))
    before = buttons.count()
    assert before >= 1
    buttons.first.click()
    accessible(school)
    assert school.get_by_text("The notification is acknowledged.").is_visible()
    assert school.get_by_role("button", name=re.compile("^Acknowledge")).count() == before - 1


def test_la_confirms_a_possible_match_and_the_chronology_changes(server, as_agency):
    la = as_agency(HAMPSHIRE)
    visit(la, server.url + "/la/matches")
    la.get_by_role("link", name=re.compile("Lee", re.I)).first.click()
    accessible(la)
    assert la.get_by_role("heading", name="Is this the same person?").is_visible()
    assert la.locator("table.app-compare").get_by_text("Given names").is_visible()
    match_url = la.url
    events = la.locator("table").filter(has_text="When it happened").locator("tbody tr")
    la.get_by_role("link", name="See the chronology of the person already known").click()
    accessible(la)
    about_the_child = events.filter(has=la.get_by_role("cell", name="The child", exact=True))
    chronology_url, before = la.url, about_the_child.count()
    assert events.count() == la.locator("svg.app-timeline circle").count()
    la.go_back()
    la.get_by_label("Yes, the same person: join the records").check()
    la.get_by_label("Reason").fill("Same child: the school misspelt his name")
    la.get_by_role("button", name="Save the decision").click()
    accessible(la)
    # The decision leads to the chronology of the person kept: the confirmed record's referral (about his
    # household before, through his sister and parents) is now about the child himself.
    assert la.url == chronology_url
    assert about_the_child.count() > before
    assert la.locator("svg.app-timeline circle").count() == events.count()
    visit(la, match_url)
    assert la.get_by_text("Confirmed").is_visible()


def test_a_school_certificate_cannot_open_la_pages(server, as_agency):
    school = as_agency(SCHOOL)
    for path in ("/la/inbox", "/la/matches", "/la/alerts"):
        visit(school, server.url + path, status=403)
        assert school.get_by_role("heading", name="You cannot open this page").is_visible()


def test_police_and_operator_pages_are_accessible(server, as_agency):
    police = as_agency(DORSET)
    visit(police, server.url + "/")
    assert police.url.endswith("/police")
    assert police.locator("svg.app-chart rect").count() >= 2
    operator = as_agency(GATEWAY)
    visit(operator, server.url + "/")
    assert operator.url.endswith("/operator")
    # The accessibility statement, from every page's footer.
    operator.get_by_role("link", name="Accessibility statement").click()
    accessible(operator)
    assert operator.get_by_role("heading", name="Accessibility statement", level=1).is_visible()
    la = as_agency(HAMPSHIRE)
    visit(la, server.url + "/la/matches")
    la.get_by_role("link", name=re.compile("^School concern")).first.click()
    accessible(la)
    assert la.get_by_role("heading", name="Is this the same event sent twice?").is_visible()
    la.get_by_role("button", name="Save the decision").click()
    accessible(la)
    assert la.get_by_role("alert").get_by_text("Select whether these messages are about the same event").is_visible()
    visit(la, server.url + "/la/alerts")
    # Each alert's link names its child; it opens that child's chronology.
    alert = la.get_by_role("link", name=re.compile(": chronology$")).first
    child = alert.inner_text().replace(": chronology", "").strip()
    alert.click()
    accessible(la)
    assert child in la.get_by_role("heading", level=1).inner_text().split(" / ")  # one of the child's names
    assert la.locator("svg.app-timeline .app-timeline__escalation").count() >= 1





