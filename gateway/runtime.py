"""Settling a long-running process after start-up, so that garbage collection does not pause it.

A gateway process holds about 130,000 objects that live as long as it does:
the modules, fhir.resources' models, SQLAlchemy's tables and compiled
statements, the structural pre-check. CPython's full (generation 2)
collection walks every one of them, with every thread of the process
stopped: measured at 70-150 ms per collection in the gateway under load,
a few times a minute, and it showed as the slowest 1% of deliveries.
:func:`settle` loads what the first request would load, then moves all of
it into the permanent generation (:func:`gc.freeze`), which collections
skip. Everything made afterwards is collected as before; only the objects
that were alive at start-up are exempt, and they were never going away.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def settle(warm_up: Callable[[], object] | None = None) -> int:
    """Run ``warm_up`` (if given), collect, then freeze the heap; return how many objects were frozen.

    Call it once, in the process that serves (after a fork, in the child).
    A ``warm_up`` that fails is logged and skipped: the first request then
    loads what it needs, as it would without one.
    """
    if warm_up is not None:
        try:
            warm_up()
        except Exception:  # noqa: BLE001 - a warm-up must never stop a server from starting
            log.warning("warm-up failed; the first request will load what it needs", exc_info=True)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
