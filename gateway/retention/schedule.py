"""The daily purge an outbox worker runs when ``Settings.retention_purge_daily`` is ``on``.

It runs in a thread of its own, beside the worker's delivery loop: a first
purge of years of messages may take a while, and deliveries must not wait
for it. It purges when the worker starts and then once a day; several
workers purging at once is safe (each batch decides again in its own
transaction; what one purged, the other no longer finds). Off by default:
see ``docs/retention.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from gateway.retention.purge import Purge, PurgeReport

log = logging.getLogger(__name__)

AGENT = "gateway (daily retention purge)"


class DailyPurge:
    """Purge ``store`` now and every ``interval`` until :meth:`stop`; failures are logged, never raised."""

    def __init__(self, store, retention_days: int, *, clock: Callable[[], dt.datetime],
                 interval: dt.timedelta = dt.timedelta(days=1)):
        self.store = store
        self.retention_days = retention_days
        self.clock = clock
        self.interval = interval
        self.reports: list[PurgeReport] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention-purge", daemon=True)

    def start(self) -> "DailyPurge":
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 60) -> None:
        """Stop after the batch in hand (each batch is its own transaction: nothing is left half-done)."""
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> PurgeReport | None:
        """Purge once; return the report, or None when the purge failed (the log says why)."""
        try:
            report = Purge(self.store, self.retention_days, self.clock(), agent=AGENT,
                           should_stop=self._stop.is_set).run()
        except Exception:  # the worker goes on delivering; the operators see the ERROR record
            log.exception("daily retention purge failed; it is tried again in %s", self.interval)
            return None
        log.info("daily retention purge: %s; %d people removed", report.summary(), report.people_removed)
        for mid, ident, state in report.pending_deliveries:
            log.warning("retention: message %s is past retention but delivery %s is still %s", mid, ident, state)
        self.reports.append(report)
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval.total_seconds())
