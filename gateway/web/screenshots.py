"""Screenshots of the console's main pages for the documentation (``docs/console/*.png``).

Plays the demo's story (Family A, through the real gateway), starts the gateway again with its console,
and opens the pages in Debian's chromium through Playwright, presenting each agency's certificate::

    .venv/bin/python -m gateway.web.screenshots [--out docs/console]

Needs the test extra (Playwright), Debian's chromium and the built assets (``make test`` has all three).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from gateway.config import REPO_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: (agency URI, path or link to follow from the agency's first page, file name)
SHOTS = (
    ("la", "/la/inbox", "inbox.png"),
    ("la", "referral", "referral.png"),
    ("la", "chronology", "chronology.png"),
    ("la", "/la/alerts", "alerts.png"),
    ("school", "/school", "school.png"),
    ("police", "/police", "police.png"),
    ("gateway", "/operator", "operator.png"),
)


def take(out_dir: Path, workdir: Path) -> list[Path]:
    """Run the story in ``workdir``, then photograph the pages into ``out_dir``; return the files written."""
    from playwright.sync_api import sync_playwright

    from gateway.demo import DORSET, GATEWAY, HAMPSHIRE, SCHOOL, Demo
    from gateway.signing import pki
    from gateway.web import assets

    assets.build_assets()
    demo = Demo(workdir, echo=lambda *a, **k: None)
    demo.run()
    prefixes = dict(demo.identities)
    prefixes[GATEWAY] = demo.certs / Path(pki.GATEWAY_CERT).stem
    agencies = {"la": HAMPSHIRE, "school": SCHOOL, "police": DORSET, "gateway": GATEWAY}
    written = []
    try:
        demo.start_receivers()
        demo.start_gateway(demo.replay_now().isoformat())
        base = f"https://127.0.0.1:{demo.gateway_port}"
        out_dir.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for kind, where, name in SHOTS:
                prefix = prefixes[agencies[kind]]
                context = browser.new_context(
                    client_certificates=[{"origin": base, "certPath": str(prefix.with_suffix(".crt")),
                                          "keyPath": str(prefix.with_suffix(".key"))}],
                    ignore_https_errors=True, viewport={"width": 1280, "height": 900})
                page = context.new_page()
                if where == "referral":
                    page.goto(base + "/la/inbox?sort=received&order=desc")
                    page.get_by_role("row").filter(has_text="Riverside Infant School").get_by_role(
                        "link", name=re.compile("^Safeguarding referral")).first.click()
                elif where == "chronology":
                    page.goto(base + "/la/alerts")
                    page.get_by_role("link", name=re.compile(": chronology$")).first.click()
                else:
                    page.goto(base + where)
                path = out_dir / name
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
                context.close()
            browser.close()
    finally:
        demo.processes.stop_all()
        demo.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "console")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as workdir:
        for path in take(args.out, Path(workdir)):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
