"""The console's blueprint, with every area's pages (registered by :mod:`gateway.web`)."""

from __future__ import annotations

from flask import redirect, url_for

from gateway.web.console import la, operator, partners  # noqa: F401  (their pages join the blueprint)
from gateway.web.console.common import NAVIGATION, blueprint, caller

__all__ = ["blueprint"]


@blueprint.get("/")
def home():
    """Each agency's first page: its inbox or its notifications."""
    _, kind = caller()
    return redirect(url_for(NAVIGATION[kind][0][0]), code=303)
