"""Outbox workers: claim due push deliveries, deliver them over mutual TLS, record the outcome.

One round (:meth:`OutboxWorker.run_once`):

1. dead-letter deliveries past their maximum age (and tell their senders),
   at most every ``expire_every`` (the maximum age is days; looking every
   round would only add a transaction to each);
2. ask whether anything is due (a read, which on SQLite takes no write lock
   and so never queues the gateway's accepts behind an idle worker; skipped
   after a round that claimed all it could); if so, claim up to
   ``concurrency`` due push deliveries, each leased until ``now + lease``
   (one short transaction);
3. POST each signed Bundle to its agency's endpoint (no transaction open);
4. record the outcomes, each if its claim still holds (one transaction for the round).

A worker killed between 2 and 4 leaves its claims in flight; they become
claimable again when their lease runs out, so nothing is lost. Because the
receiver may have applied a message whose acknowledgement the worker never
recorded, delivery is at-least-once; receivers apply a message id once
(:mod:`gateway.delivery.receiver`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from gateway.delivery.interfaces import AgencyLookup
from gateway.delivery.models import PENDING
from gateway.delivery.outbox import DEFAULT_MAX_AGE, dead_letter
from gateway.delivery.responses import read_acknowledgement
from gateway.delivery.services import Claim, SqlOutbox, any_due
from gateway.signing.signatures import Signer
from gateway.store.engine import read_only
from gateway.store.services import SqlMessageStore
from gateway.transport.client import AgencyClient, DeliveryError
from gateway.transport.intake import FHIR_JSON

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter.

    After attempt ``n`` the next waits ``min(cap, base * 2**(n-1))`` scaled by
    a random factor in ``[1 - jitter, 1]``: never more than the exponential
    ceiling, never less than ``(1 - jitter)`` of it, and workers that failed
    together spread out.
    """

    base: dt.timedelta = dt.timedelta(seconds=10)
    cap: dt.timedelta = dt.timedelta(hours=1)
    jitter: float = 0.5

    def __post_init__(self):
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter {self.jitter} must be between 0 and 1")
        if self.base <= dt.timedelta(0) or self.cap < self.base:
            raise ValueError("backoff base must be positive and the cap at least the base")

    def ceiling(self, attempts: int) -> dt.timedelta:
        """Return the longest wait after ``attempts`` (>= 1) failed attempts."""
        exponent = min(max(attempts, 1) - 1, 32)  # 2**32 * base is past any cap
        return min(self.cap, self.base * (2 ** exponent))

    def delay(self, attempts: int, rng: random.Random) -> dt.timedelta:
        """Return the wait before the next attempt after ``attempts`` failed ones."""
        return self.ceiling(attempts) * (1 - self.jitter * rng.random())


@dataclasses.dataclass
class RoundReport:
    """What one :meth:`OutboxWorker.run_once` did."""

    claimed: int = 0
    acknowledged: int = 0
    retried: int = 0
    dead_lettered: int = 0
    expired: int = 0
    lost_claims: int = 0

    @property
    def busy(self) -> bool:
        """Whether the round found anything to do (a ``--once`` worker stops when it did not)."""
        return bool(self.claimed or self.expired)


@dataclasses.dataclass(frozen=True)
class _Outcome:
    kind: str            # "ack", "retry", "dead"
    detail: str | None = None


class OutboxWorker:
    """Delivers the outbox's push deliveries; see the module docstring.

    ``clock`` and ``rng`` are injectable so tests control time and jitter.
    ``signer`` signs the fatal-error notices sent to senders; ``directory``
    tells whether a sender has a push endpoint (else its notice goes to its
    mailbox). ``lease`` must be longer than the client's timeout, so that a
    live worker always finishes an attempt before its claim can lapse.
    """

    def __init__(self, store: SqlMessageStore, client: AgencyClient, *, signer: Callable[[], Signer] | None = None,
                 directory: AgencyLookup | None = None, clock: Callable[[], dt.datetime] = system_clock,
                 rng: random.Random | None = None, backoff: Backoff = Backoff(),
                 lease: dt.timedelta = dt.timedelta(minutes=5), max_age: dt.timedelta = DEFAULT_MAX_AGE,
                 concurrency: int = 4, worker_id: str | None = None,
                 expire_every: dt.timedelta = dt.timedelta(seconds=30),
                 housekeeping: Callable[[dt.datetime], object] | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease.total_seconds() <= client.timeout:
            raise ValueError(f"the lease ({lease.total_seconds():.0f} s) must be longer than the client's "
                             f"timeout ({client.timeout:.0f} s)")
        self.store = store
        self.client = client
        self.signer = signer
        self.directory = directory
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.backoff = backoff
        self.lease = lease
        self.max_age = max_age
        self.concurrency = concurrency
        self.expire_every = expire_every
        # Run with expiry (e.g. overdue deadlines: gateway.linkage); a failure is logged, never stops delivery.
        self.housekeeping = housekeeping
        self._next_expiry: dt.datetime | None = None  # on the worker's clock; None: at the next round
        self._busy = False  # the last round claimed all it could
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._gateway_agency = signer().agency if signer is not None else None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="outbox") if concurrency > 1 else None

    def close(self) -> None:
        """Stop the delivery threads and close the client's connections (not the store)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> "OutboxWorker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # One round ---------------------------------------------------------------------------------

    def run_once(self) -> RoundReport:
        """Expire, claim, deliver and record once; return what happened."""
        report = RoundReport()
        now = self.clock()
        if self._next_expiry is None or now >= self._next_expiry:
            report.expired = self.expire()
            self._next_expiry = now + self.expire_every
            if self.housekeeping is not None:
                try:
                    self.housekeeping(now)
                except Exception:  # delivery must go on; the operators see the ERROR record
                    log.exception("worker housekeeping failed")
        # After a busy round more is likely due: claim straight away. After an idle one, ask first.
        claims = self.claim(now) if self._busy or self._anything_due(now) else []
        self._busy = len(claims) == self.concurrency
        report.claimed = len(claims)
        endpoints = self._endpoints(claims)
        attempt = lambda claim: self._attempt(claim, endpoints[claim.destination])  # noqa: E731
        if self._pool is not None and len(claims) > 1:
            outcomes = list(self._pool.map(attempt, claims))
        else:
            outcomes = [attempt(claim) for claim in claims]
        # One transaction (one commit) records the whole round's outcomes.
        recorded_kinds = self._record_all(list(zip(claims, outcomes))) if claims else []
        for recorded in recorded_kinds:
            if recorded is None:
                report.lost_claims += 1
            elif recorded == "ack":
                report.acknowledged += 1
            elif recorded == "retry":
                report.retried += 1
            else:
                report.dead_lettered += 1
        return report

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0, once: bool = False) -> None:
        """Run rounds until ``stop`` is set (or, with ``once``, until a round finds nothing due).

        Sleeps ``poll_interval`` seconds (waking early on ``stop``) after a
        round with nothing to do. A round that fails on the database is
        logged and retried after the interval.
        """
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception:
                log.exception("outbox worker %s: round failed; retrying in %.1f s", self.worker_id, poll_interval)
                if once:
                    raise
                stop.wait(poll_interval)
                continue
            if report.busy:
                log.info("outbox worker %s: %s", self.worker_id, report)
                continue
            if once:
                return
            stop.wait(poll_interval)

    # Steps ---------------------------------------------------------------------------------------
    def _anything_due(self, now: dt.datetime) -> bool:
        with read_only(self.store.engine) as connection:
            return any_due(connection, now)

    def claim(self, now: dt.datetime) -> list[Claim]:
        """Claim up to ``concurrency`` due push deliveries (one short transaction) and return them."""
        with self.store.transaction() as unit:
            return SqlOutbox(unit.session).claim(now=now, limit=self.concurrency, worker=self.worker_id,
                                                 lease=self.lease)

    def expire(self) -> int:
        """Dead-letter every open delivery past its maximum age that no live claim holds; return how many."""
        total = 0
        while True:
            now = self.clock()
            with self.store.transaction() as unit:
                outbox = SqlOutbox(unit.session)
                rows = outbox.expired(now=now)
                for row in rows:
                    age = now - row.created_at
                    reason = (f"not acknowledged within the maximum age ({_days(row.expires_at - row.created_at)}; "
                              f"{row.attempts} attempt(s) in {_days(age)})"
                              + (f"; last error: {row.last_error}" if row.last_error else ""))
                    dead_letter(outbox, row, reason, now=now, signer=self.signer, directory=self.directory,
                                max_age=self.max_age, gateway_agency=self._gateway_agency)
            total += len(rows)
            if len(rows) < 100:
                return total

    def _endpoints(self, claims: list[Claim]) -> dict[str, str]:
        """Each claimed destination's endpoint now (an agency that moved is found at its new address), else
        as enqueued; looked up once per destination per round."""
        endpoints = {}
        for claim in claims:
            if claim.destination in endpoints:
                continue
            endpoints[claim.destination] = claim.endpoint
            if self.directory is None:
                continue
            try:
                agency = self.directory.agency(claim.destination)
            except Exception:  # the claims are held: attempt them at the address they were enqueued with
                log.exception("delivery %s: looking up %s in the directory failed", claim.id, claim.destination)
                continue
            if agency is not None and agency.delivery == "push" and agency.endpoint:
                endpoints[claim.destination] = agency.endpoint
        return endpoints

    def _attempt(self, claim: Claim, endpoint: str) -> _Outcome:
        try:
            reply = self.client.request("POST", endpoint, body=claim.payload.encode("utf-8"),
                                        headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON},
                                        expected_agency=claim.destination)
        except DeliveryError as exc:
            return _Outcome("retry", str(exc))
        except Exception as exc:  # a bug in one attempt must not take the others' outcomes with it
            log.exception("delivery %s: unexpected error", claim.id)
            return _Outcome("retry", f"unexpected error: {type(exc).__name__}: {exc}")
        ack = read_acknowledgement(reply.body, claim.payload_header_id)
        if ack is not None and ack.code == "ok" and 200 <= reply.status < 300:
            return _Outcome("ack")
        if ack is not None and ack.code == "fatal-error":
            return _Outcome("dead", f"{claim.destination} refused the message (fatal-error, HTTP {reply.status})"
                            + (f": {ack.text}" if ack.text else ""))
        if ack is not None:
            return _Outcome("retry", f"{claim.destination} answered {ack.code} (HTTP {reply.status})"
                            + (f": {ack.text}" if ack.text else ""))
        return _Outcome("retry", f"{endpoint} answered HTTP {reply.status} without an acknowledgement "
                        f"of MessageHeader {claim.payload_header_id}: {_snippet(reply.body)}")

    def _record_all(self, attempts: list[tuple[Claim, _Outcome]]) -> list[str | None]:
        """Record each attempt's outcome in one transaction; return the kinds (``None``: the claim lapsed)."""
        now = self.clock()
        with self.store.transaction() as unit:
            outbox = SqlOutbox(unit.session)
            return [self._record_in(outbox, claim, outcome, now) for claim, outcome in attempts]

    def _record(self, claim: Claim, outcome: _Outcome) -> str | None:
        """Record ``outcome`` if ``claim`` still holds; return the outcome kind, or ``None`` if the claim lapsed."""
        return self._record_all([(claim, outcome)])[0]

    def _record_in(self, outbox: SqlOutbox, claim: Claim, outcome: _Outcome, now: dt.datetime) -> str | None:
        """Record one outcome inside the caller's transaction (fenced by the claim token)."""
        if outcome.kind == "ack":
            if not outbox.acknowledge_claim(claim, now):
                return self._lapsed(claim, outcome)
            if claim.due_at is not None and now > claim.due_at:
                log.warning("delivery %s to %s acknowledged after its due time %s", claim.id, claim.destination,
                            claim.due_at.isoformat())
            return outcome.kind
        row = outbox.held(claim)
        if row is None:
            return self._lapsed(claim, outcome)
        if outcome.kind == "dead":
            dead_letter(outbox, row, outcome.detail or "refused", now=now, signer=self.signer,
                        directory=self.directory, max_age=self.max_age, gateway_agency=self._gateway_agency)
        else:
            with self._rng_lock:
                delay = self.backoff.delay(row.attempts, self.rng)
            row.state, row.last_error, row.updated_at = PENDING, outcome.detail, now
            row.next_attempt_at = min(now + delay, row.expires_at)
            row.claim_token = row.lease_until = None
            log.info("delivery %s to %s: attempt %d failed (%s); next at %s", row.id, row.destination,
                     row.attempts, outcome.detail, row.next_attempt_at.isoformat())
        return outcome.kind

    def _lapsed(self, claim: Claim, outcome: _Outcome) -> None:
        log.warning("delivery %s: the claim of %s lapsed before its outcome (%s) was recorded; another "
                    "attempt will be made and the receiver will recognise the message id",
                    claim.id, self.worker_id, outcome.kind)
        return None


def _days(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(empty body)"
