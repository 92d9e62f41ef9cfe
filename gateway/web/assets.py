"""The console's static assets: GOV.UK Frontend's compiled CSS, JavaScript, fonts and images.

They come from the npm package ``govuk-frontend`` (``package.json``,
installed by ``npm ci``) and are copied into ``gateway/web/static/``, which
the console serves under ``/assets/`` (the path GOV.UK Frontend's CSS uses for
its fonts and images). Nothing is fetched at run time. ``make demo`` and
``make test`` run this step; by hand::

    npm ci && .venv/bin/python -m gateway.web.assets
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from gateway.config import REPO_DIR

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
#: Our own files (small, committed), copied beside GOV.UK Frontend's.
OWN_DIR = WEB_DIR / "static_src"
NODE_MODULES = REPO_DIR / "node_modules"
#: What is copied from ``node_modules/govuk-frontend/dist/govuk``: (source, destination under static/).
FRONTEND_FILES = (("govuk-frontend.min.css", "govuk-frontend.min.css"),
                  ("govuk-frontend.min.js", "govuk-frontend.min.js"),
                  ("assets/fonts", "fonts"), ("assets/images", "images"), ("assets/manifest.json", "manifest.json"))
VERSION_FILE = "govuk-frontend.version"


class AssetsError(RuntimeError):
    """The assets cannot be built (``govuk-frontend`` is not installed)."""


def frontend_dir(node_modules: Path = NODE_MODULES) -> Path:
    """Return GOV.UK Frontend's ``dist/govuk`` folder. Raises :class:`AssetsError` when it is not installed."""
    dist = node_modules / "govuk-frontend" / "dist" / "govuk"
    if not (dist / "govuk-frontend.min.css").is_file():
        raise AssetsError(f"{dist} has no govuk-frontend.min.css: run `npm ci` in {REPO_DIR} "
                          "(package.json pins govuk-frontend) and build the assets again")
    return dist


def build_assets(node_modules: Path = NODE_MODULES, static_dir: Path = STATIC_DIR) -> str:
    """Copy GOV.UK Frontend's compiled files and the console's own into ``static_dir``; return the
    govuk-frontend version copied. Raises :class:`AssetsError` when govuk-frontend is not installed."""
    dist = frontend_dir(node_modules)
    version = json.loads((dist.parents[1] / "package.json").read_text())["version"]
    static_dir.mkdir(parents=True, exist_ok=True)
    for source, destination in FRONTEND_FILES:
        src, dst = dist / source, static_dir / destination
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
    for own in OWN_DIR.iterdir():
        shutil.copyfile(own, static_dir / own.name)
    (static_dir / VERSION_FILE).write_text(version + "\n")
    return version


def built(static_dir: Path = STATIC_DIR) -> bool:
    """Return whether the assets have been built into ``static_dir``."""
    return (static_dir / VERSION_FILE).is_file() and (static_dir / "govuk-frontend.min.css").is_file()


def main() -> int:
    try:
        version = build_assets()
    except AssetsError as exc:
        print(f"console assets: {exc}", file=sys.stderr)
        return 1
    print(f"console assets: govuk-frontend {version} copied into {STATIC_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
