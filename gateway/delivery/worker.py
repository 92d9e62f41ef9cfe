"""Outbox workers: claim due push deliveries, deliver them over mutual TLS, record each outcome.

A worker keeps up to ``concurrency`` deliveries in flight, each on a thread
of its own, and turns (:meth:`OutboxWorker.step`) as they end:

1. dead-letter deliveries past their maximum age (and tell their senders),
   and run the housekeeping, at most every ``expire_every`` (the maximum
   age is days; looking every turn would only add a transaction to each);
2. in one short transaction: record the outcome of every delivery that
   ended since the last turn (each if its claim still holds), renew the
   lease of those still in flight when a heartbeat is due, and claim due
   push deliveries for the free slots (no destination gets more than
   ``per_destination`` of this worker's slots). An idle
   worker first asks whether anything is due (a read, which on SQLite takes
   no write lock and so never queues the gateway's accepts behind it);
3. POST each new claim's signed Bundle to its agency's endpoint on a free
   thread (no transaction open), and wait for the first delivery to end.

So a slow or hung endpoint delays only its own deliveries: it holds at most
``per_destination`` slots, its attempts end at the client's connect or read
timeout and are retried with backoff, and every other delivery is recorded
and replaced as soon as it ends.

A claim lasts ``lease`` and a live worker renews it every ``heartbeat``
(a third of the lease) while the delivery is in flight, so no delivery is
claimed again while its worker lives, however long the endpoint takes. A
worker killed mid-delivery stops renewing: its claims become claimable
again within one lease, so nothing is lost. Because the receiver may have
applied a message whose acknowledgement the worker never recorded, delivery
is at-least-once; receivers apply a message id once
(:mod:`gateway.delivery.receiver`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from gateway.audit import record_audit
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
    """What one :meth:`OutboxWorker.step` (or :meth:`OutboxWorker.run_once`) did."""

    claimed: int = 0
    acknowledged: int = 0
    retried: int = 0
    dead_lettered: int = 0
    expired: int = 0
    lost_claims: int = 0
    finished: int = 0     # deliveries that ended and were recorded (or found lapsed)

    def add(self, other: "RoundReport") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

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
    mailbox). ``lease`` must be longer than the client's (read) timeout, and
    the ``heartbeat`` (default a third of the lease) shorter than the lease.
    ``per_destination`` caps one destination's deliveries in flight (``None``:
    only ``concurrency`` caps them).
    """

    def __init__(self, store: SqlMessageStore, client: AgencyClient, *, signer: Callable[[], Signer] | None = None,
                 directory: AgencyLookup | None = None, clock: Callable[[], dt.datetime] = system_clock,
                 rng: random.Random | None = None, backoff: Backoff = Backoff(),
                 lease: dt.timedelta = dt.timedelta(seconds=60), max_age: dt.timedelta = DEFAULT_MAX_AGE,
                 concurrency: int = 4, per_destination: int | None = None, worker_id: str | None = None,
                 heartbeat: dt.timedelta | None = None, expire_every: dt.timedelta = dt.timedelta(seconds=30),
                 housekeeping: Callable[[dt.datetime], object] | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if per_destination is not None and per_destination < 1:
            raise ValueError("per_destination must be at least 1")
        if lease.total_seconds() <= client.timeout:
            raise ValueError(f"the lease ({lease.total_seconds():.0f} s) must be longer than the client's "
                             f"timeout ({client.timeout:.0f} s)")
        heartbeat = heartbeat if heartbeat is not None else lease / 3
        if not dt.timedelta(0) < heartbeat < lease:
            raise ValueError("the heartbeat must be shorter than the lease")
        self.store = store
        self.client = client
        self.signer = signer
        self.directory = directory
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.backoff = backoff
        self.lease = lease
        self.heartbeat = heartbeat
        self.max_age = max_age
        self.concurrency = concurrency
        self.per_destination = per_destination
        self.expire_every = expire_every
        # Run with expiry (e.g. overdue deadlines: gateway.linkage); a failure is logged, never stops delivery.
        self.housekeeping = housekeeping
        self._next_expiry: dt.datetime | None = None  # on the worker's clock; None: at the next turn
        self._next_heartbeat: dt.datetime | None = None
        self._busy = False  # the last claim got all it asked for: more is likely due
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._gateway_agency = signer().agency if signer is not None else None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="outbox")
        self._in_flight: dict[Future, Claim] = {}
        self._ended: list[tuple[Claim, _Outcome]] = []  # ended, not yet recorded

    def close(self) -> None:
        """Stop the delivery threads and close the client's connections (not the store)."""
        self._pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> "OutboxWorker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def in_flight(self) -> list[Claim]:
        """The claims being delivered now."""
        return list(self._in_flight.values())

    # Turning ---------------------------------------------------------------------------------------

    def step(self, *, claiming: bool = True) -> RoundReport:
        """One turn: expire when due, record what ended, renew leases when due, claim for free slots.

        Does not wait: the new claims are being delivered when it returns
        (:meth:`wait` waits for one to end). With ``claiming=False`` nothing
        new is claimed (a stopping worker finishes what it holds).
        """
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
        self._collect()
        ended = list(self._ended)
        renewing = bool(self._in_flight) and (self._next_heartbeat is None or now >= self._next_heartbeat)
        free = self.concurrency - len(self._in_flight) if claiming else 0
        # After a full claim, or with outcomes to write anyway, claim straight away; an idle worker asks first.
        claiming = free > 0 and (self._busy or bool(ended) or self._anything_due(now))
        if not (ended or renewing or claiming):
            return report
        with self.store.transaction() as unit:  # one commit for the turn
            outbox = SqlOutbox(unit.session)
            kinds = [self._record_in(outbox, claim, outcome, now) for claim, outcome in ended]
            lost = outbox.renew(self.in_flight, now=now, lease=self.lease) if renewing else []
            claims = (outbox.claim(now=now, limit=free, worker=self.worker_id, lease=self.lease,
                                   per_destination=self.per_destination, in_flight=self._per_destination())
                      if claiming else [])
        del self._ended[:len(ended)]  # recorded: a failed transaction leaves them for the next turn
        if renewing:
            self._next_heartbeat = now + self.heartbeat
        for claim in lost:
            log.warning("delivery %s: the claim of %s lapsed while the delivery was in flight; another worker "
                        "has it, and this attempt's outcome will not be recorded", claim.id, self.worker_id)
        if claiming:
            self._busy = len(claims) == free
        report.claimed, report.finished = len(claims), len(ended)
        for recorded in kinds:
            if recorded is None:
                report.lost_claims += 1
            elif recorded == "ack":
                report.acknowledged += 1
            elif recorded == "retry":
                report.retried += 1
            else:
                report.dead_lettered += 1
        if claims:
            if not self._in_flight or self._next_heartbeat is None:
                self._next_heartbeat = now + self.heartbeat
            endpoints = self._endpoints(claims)
            for claim in claims:
                self._in_flight[self._pool.submit(self._attempt, claim, endpoints[claim.destination])] = claim
        return report

    def _per_destination(self) -> dict[str, int]:
        """This worker's deliveries in flight, per destination."""
        return collections.Counter(claim.destination for claim in self._in_flight.values())

    def _full(self) -> list[str]:
        """The destinations at this worker's cap (``per_destination``)."""
        if self.per_destination is None:
            return []
        return [d for d, n in self._per_destination().items() if n >= self.per_destination]

    def wait(self, timeout: float | None) -> bool:
        """Wait until a delivery in flight ends, at most ``timeout`` seconds; return whether one did."""
        if not self._in_flight:
            return False
        done, _ = wait(list(self._in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
        return bool(done)

    def _collect(self) -> None:
        """Move the deliveries that ended from in flight to ended (to be recorded this turn)."""
        for future in [f for f in self._in_flight if f.done()]:
            claim = self._in_flight.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # pragma: no cover - _attempt catches everything
                outcome = _Outcome("retry", f"unexpected error: {type(exc).__name__}: {exc}")
            self._ended.append((claim, outcome))

    def run_once(self) -> RoundReport:
        """Claim what is due (up to ``concurrency``), deliver it, wait for every delivery to end, record them;
        return what happened. (``run`` does not wait for the slowest: it records each as it ends.)"""
        report = self.step()
        while self._in_flight:
            self.wait(None)
            self._collect()
        report.add(self.step(claiming=False))
        return report

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0, once: bool = False) -> None:
        """Turn until ``stop`` is set (or, with ``once``, until nothing is due or in flight), then finish and
        record the deliveries in flight.

        Between turns it waits for a delivery to end, at most ``poll_interval``
        seconds (less when a heartbeat or the expiry is due sooner); with
        nothing in flight it sleeps ``poll_interval`` (waking early on
        ``stop``). A turn that fails on the database is logged and tried
        again after the interval; outcomes not yet recorded are kept for it.
        """
        while not stop.is_set():
            try:
                report = self.step()
            except Exception:
                log.exception("outbox worker %s: turn failed; retrying in %.1f s", self.worker_id, poll_interval)
                if once:
                    self._finish()
                    raise
                stop.wait(poll_interval)
                continue
            if report.retried or report.dead_lettered or report.lost_claims or report.expired:
                log.info("outbox worker %s: %s", self.worker_id, report)
            if not self._in_flight:
                if once and not report.busy and not report.finished:
                    return
                if not report.busy:
                    stop.wait(poll_interval)
                continue
            self.wait(self._wait_seconds(poll_interval))
        self._finish()

    def _wait_seconds(self, poll_interval: float) -> float:
        """How long to wait for a delivery to end before the next turn must run anyway."""
        now = self.clock()
        due = [when for when in (self._next_heartbeat, self._next_expiry) if when is not None]
        return max(0.0, min([poll_interval, *((when - now).total_seconds() for when in due)]))

    def _finish(self) -> None:
        """Wait for the deliveries in flight (their leases renewed meanwhile) and record them."""
        deadline = time.monotonic() + self.lease.total_seconds()
        while self._in_flight or self._ended:
            try:
                self.step(claiming=False)
            except Exception:
                log.exception("outbox worker %s: recording the last outcomes failed; their deliveries "
                              "are claimable again when their leases run out", self.worker_id)
                return
            if time.monotonic() > deadline:
                return
            self.wait(self._wait_seconds(1.0))

    # Steps ---------------------------------------------------------------------------------------
    def _anything_due(self, now: dt.datetime) -> bool:
        with read_only(self.store.engine) as connection:
            return any_due(connection, now, self._full())

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
        as enqueued; looked up once per destination per turn."""
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

    def _record(self, claim: Claim, outcome: _Outcome) -> str | None:
        """Record ``outcome`` if ``claim`` still holds (its own transaction); return the outcome kind, or
        ``None`` if the claim lapsed."""
        with self.store.transaction() as unit:
            return self._record_in(SqlOutbox(unit.session), claim, outcome, self.clock())

    def _record_in(self, outbox: SqlOutbox, claim: Claim, outcome: _Outcome, now: dt.datetime) -> str | None:
        """Record one outcome inside the caller's transaction (fenced by the claim token)."""
        record_audit(outbox.session, action="E", subtype="delivery-attempt", agent="gateway",
                     outcome="success" if outcome.kind == "ack" else "failure",
                     entities=[("delivery", claim.id), ("message", claim.payload_message_id),
                               ("agency", claim.destination)],
                     detail={"attempt": claim.attempts, "result": outcome.kind}, at=now)
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
            outbox.state_changed(row)
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
