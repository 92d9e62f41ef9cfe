"""How many people the person index holds: the live thresholds follow it (``MatchModel.at_size``).

Counting a million people takes tens of milliseconds, too long for every
look-up, and the thresholds move with log2 of the count (a tenth more
people moves them by 0.14), so the count is kept per database engine and
read again after :data:`REFRESH_SECONDS`. Every person counts, children and
adults (a larger index never lowers the thresholds), but not one found to
be one with another (``merged_into``: an empty row that leads to the person
kept); at worst one process's count is a few minutes old.
"""

from __future__ import annotations

import threading
import time
import weakref

from sqlalchemy import Connection, Engine, func, select

from gateway.linkage.models import PersonRow

#: How long a count of the index's people is used before it is read again (seconds).
REFRESH_SECONDS = 300.0

_COUNT = select(func.count()).select_from(PersonRow.__table__).where(PersonRow.merged_into.is_(None))
_counts: weakref.WeakKeyDictionary[Engine, tuple[float, int]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def people_in_index(connection: Connection) -> int:
    """Return the people of the index ``connection`` reads, counted at most :data:`REFRESH_SECONDS` ago."""
    now = time.monotonic()
    with _lock:
        cached = _counts.get(connection.engine)
    if cached is not None and now - cached[0] < REFRESH_SECONDS:
        return cached[1]
    count = connection.execute(_COUNT).scalar_one()
    with _lock:
        _counts[connection.engine] = (now, count)
    return count


def forget(engine: Engine) -> None:
    """Drop the count kept for ``engine``, so the next look-up counts again (after a bulk load)."""
    with _lock:
        _counts.pop(engine, None)
