"""The console's blueprint, with every area's pages (registered by :mod:`gateway.web`)."""

from __future__ import annotations

from flask import redirect, url_for

from gateway.web.console import la, operator, partners  # noqa: F401  (their pages join the blueprint)
from gateway.web.console.common import NAVIGATION, blueprint, caller, render

__all__ = ["blueprint"]


@blueprint.get("/")
def home():
    """Each agency's first page: its inbox or its notifications."""
    _, kind = caller()
    return redirect(url_for(NAVIGATION[kind][0][0]), code=303)


@blueprint.get("/accessibility")
def accessibility():
    """The accessibility statement, for every agency: the layout, navigation and CSRF token of every page and no
    data (``bench/console.py`` times it as the baseline of a page served the way the console serves them)."""
    agency, _ = caller()
    return render("console/accessibility.html", agency, "Accessibility statement")
