"""Settings: the one place where environment variables become configuration.

Every other module receives a :class:`Settings` (or reads ``app.config``);
nothing else looks at ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def _default_mappings_dir() -> Path:
    # An installed wheel carries the mappings inside the package; a source
    # checkout (editable install) keeps them at the top level.
    bundled = PACKAGE_DIR / "_mappings"
    return bundled if bundled.is_dir() else REPO_DIR / "mappings"


class SettingsError(ValueError):
    """An environment variable has a value the gateway cannot use."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Configuration of one gateway process.

    Build it with :meth:`from_env`; tests build it directly with keyword
    arguments.
    """

    database_url: str = "sqlite:///var/gateway.sqlite3"
    mappings_dir: Path = dataclasses.field(default_factory=_default_mappings_dir)
    certs_dir: Path = REPO_DIR / "certs" / "dev"
    # How far a message's sending time (Bundle.timestamp) may be from now.
    # About transmission only, never about when the events happened.
    replay_window_seconds: int = 900
    max_request_bytes: int = 50 * 1024 * 1024
    # Bounded cost for every input (docs/limits.md): each limit is answered with an OperationOutcome naming it.
    max_columns: int = 500                  # columns in a CSV header
    max_field_chars: int = 100_000          # characters in one CSV cell, JSON string or XML text/attribute
    max_nesting_depth: int = 64             # JSON objects/arrays or XML elements inside each other
    max_records_per_request: int = 10_000   # records one ingest request may hold
    max_request_seconds: int = 120          # reading and translating one request (wall clock)
    max_requests_per_agency: int = 2        # requests in flight per agency, per gateway process
    busy_retry_after_seconds: int = 5       # Retry-After of a 429 answered to a busy agency
    delivery_max_age_seconds: int = 5 * 24 * 3600
    # Outbox workers (docs/delivery.md): each keeps up to delivery_concurrency deliveries in flight, at most
    # delivery_per_destination of them to one agency, so a hung endpoint holds only a few of its slots.
    delivery_concurrency: int = 16
    delivery_per_destination: int = 4
    delivery_connect_timeout_seconds: int = 5   # TCP connect and TLS handshake with an agency's endpoint
    delivery_read_timeout_seconds: int = 30     # each wait for the endpoint once connected (its answer)
    # How long a worker's claim lasts; a live worker renews it every third of this while delivering, so a
    # killed worker's deliveries are claimable again within one lease. Longer than the read timeout.
    delivery_lease_seconds: int = 60
    timezone: str = "Europe/London"
    # Near-identical messages from one sender about one child within this many hours are flagged as possible
    # duplicates of each other (both delivered; a person decides).
    duplicate_window_hours: int = 72
    # Replaying history (the demo): the gateway's clock starts at this ISO 8601 instant and runs on
    # from there. Never set in a deployment: every time the gateway records would be made up.
    clock_start: str | None = None
    # The console's CSRF tokens are an HMAC of the agency with this secret. Unset: derived from the
    # gateway's private key (certs_dir), which every process of one deployment shares.
    console_secret: str | None = None
    # Encryption at rest (docs/encryption.md): "off" stores new values in clear, for the benchmarks' baseline only.
    encrypt_at_rest: str = "on"
    # The data keys' JSON file (key ids and 256-bit keys, the current one, the look-up hash key). Unset: the
    # development key file certs/dev/data-keys.json, whose keys are public (dev only; the log says so).
    data_keys: Path | None = None
    # The hash-chained audit log (docs/audit.md): "off" only for the benchmark's baseline (bench/audit.py).
    audit_log: str = "on"
    # How often the worker's housekeeping signs a checkpoint of the audit chain.
    audit_checkpoint_minutes: int = 15
    # Retention (docs/retention.md): a message and the personal data it brought are purged once nothing about
    # anyone it names has arrived for this many days (the last activity about them starts the clock), unless a
    # legal hold keeps them. 25 years of 366 days: past every UK schedule that counts from a child's birth
    # (the school child-protection file to the 25th birthday) whatever the child's age at the last message.
    retention_days: int = 25 * 366
    # "on": the outbox worker runs `gateway retention purge` once a day in a thread of its own. Off by default:
    # a purge cannot be undone, so an operator runs it first by hand (with --dry-run) and then chooses.
    retention_purge_daily: str = "off"

    ENV_PREFIX = "GATEWAY_"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Return settings from ``GATEWAY_*`` variables, then ``overrides``.

        Raises :class:`SettingsError` naming the variable when a value has the
        wrong type.
        """
        environ = os.environ if environ is None else environ
        values: dict = {}
        for field in dataclasses.fields(cls):
            key = cls.ENV_PREFIX + field.name.upper()
            if key not in environ:
                continue
            raw = environ[key]
            try:
                if field.type in ("int", int):
                    values[field.name] = int(raw)
                elif field.type in ("Path", Path, "Path | None"):
                    values[field.name] = Path(raw)
                else:
                    values[field.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{key}={raw!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)

    def clock(self):
        """Return the gateway's clock: a callable giving an aware UTC datetime.

        With ``clock_start`` it is a replay clock that starts there and runs
        at real speed (demo only, and it says so loudly in the log). Raises
        :class:`SettingsError` when ``clock_start`` is not an ISO 8601
        instant with an offset.
        """
        import datetime as dt
        import logging
        import time

        if not self.clock_start:
            return lambda: dt.datetime.now(dt.timezone.utc)
        try:
            start = dt.datetime.fromisoformat(self.clock_start)
        except ValueError:
            start = None
        if start is None or start.tzinfo is None:
            raise SettingsError(f"GATEWAY_CLOCK_START={self.clock_start!r}: give an ISO 8601 instant with an offset")
        logging.getLogger("gateway").warning(
            "REPLAY CLOCK: the gateway's clock starts at %s (GATEWAY_CLOCK_START); for demos only", start.isoformat())
        origin = time.monotonic()
        return lambda: (start + dt.timedelta(seconds=time.monotonic() - origin)).astimezone(dt.timezone.utc)
