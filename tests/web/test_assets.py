"""The console's asset build: GOV.UK Frontend's compiled files copied from node_modules, served locally."""

from __future__ import annotations

import json

import pytest

from gateway.web import assets


def test_build_copies_govuk_frontend_and_the_console_files(tmp_path):
    version = assets.build_assets(static_dir=tmp_path / "static")
    package = json.loads((assets.NODE_MODULES / "govuk-frontend" / "package.json").read_text())
    assert version == package["version"]
    static = tmp_path / "static"
    for name in ("govuk-frontend.min.css", "govuk-frontend.min.js", "console.js", "console.css", "js-enabled.js",
                 "images/favicon.ico"):
        assert (static / name).is_file(), name
    assert list((static / "fonts").glob("*.woff2"))
    assert assets.built(static)
    # The CSS finds its fonts where the console serves them: nothing is fetched from elsewhere.
    css = (static / "govuk-frontend.min.css").read_text()
    assert "url(/assets/fonts/" in css and "url(http" not in css and "url(//" not in css


def test_build_without_node_modules_says_what_to_run(tmp_path):
    with pytest.raises(assets.AssetsError, match="npm ci"):
        assets.build_assets(node_modules=tmp_path, static_dir=tmp_path / "static")
    assert not assets.built(tmp_path / "static")


def test_the_console_serves_the_built_assets(console):
    assets.build_assets()
    font = next((assets.STATIC_DIR / "fonts").glob("*.woff2")).name
    for path, mimetype in (("/assets/govuk-frontend.min.css", "text/css"), (f"/assets/fonts/{font}", "font/woff2"),
                           ("/assets/console.js", "text/javascript")):
        answer = console.get(path, None)
        assert (answer.status_code, answer.mimetype) == (200, mimetype), path
        answer.close()
    assert console.get("/assets/../config.py", None).status_code == 404
