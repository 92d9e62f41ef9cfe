"""The request path's limits: one agency's requests in flight, and reading a body within its size and time.

The limits themselves are settings (docs/limits.md); the reader-level ones
(columns, field length, nesting) are in :mod:`gateway.adapters.limits`.

Why per process: gunicorn's ``gthread`` workers are separate processes,
each with its own threads, and they share no memory. :class:`AgencyGate`
counts one process's requests, so with ``W`` workers an agency may have up
to ``W x GATEWAY_MAX_REQUESTS_PER_AGENCY`` requests in flight across the
gateway, and within each process the other agencies always keep every
thread but those. That bounds what one sender can take, which is the point,
without a shared store on the request path.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO

from flask import Flask, Response
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.adapters.limits import LimitExceeded, Limits
from gateway.config import Settings

FHIR_JSON = "application/fhir+json"
GATE_EXTENSION = "gateway.agency_gate"
_READ_SIZE = 1 << 20
_SPOOL_IN_MEMORY = 4 << 20
_GATE_LOCK = threading.Lock()


class AgencyGate:
    """Admits at most ``per_agency`` requests of each agency at a time (in this process)."""

    def __init__(self, per_agency: int):
        self.per_agency = per_agency
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    @contextlib.contextmanager
    def admitted(self, agency: str) -> Iterator[bool]:
        """Yield True when ``agency``'s request may run (it then counts until the block ends), else False."""
        with self._lock:
            busy = self._in_flight.get(agency, 0)
            admitted = busy < self.per_agency
            if admitted:
                self._in_flight[agency] = busy + 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    left = self._in_flight[agency] - 1
                    if left:
                        self._in_flight[agency] = left
                    else:
                        del self._in_flight[agency]

    def in_flight(self, agency: str) -> int:
        """Return how many of ``agency``'s requests are running now."""
        with self._lock:
            return self._in_flight.get(agency, 0)


def agency_gate(app: Flask) -> AgencyGate:
    """Return the app's :class:`AgencyGate`, made on first use from its settings."""
    gate = app.extensions.get(GATE_EXTENSION)
    if gate is None:
        with _GATE_LOCK:
            gate = app.extensions.setdefault(
                GATE_EXTENSION, AgencyGate(app.config["GATEWAY_SETTINGS"].max_requests_per_agency))
    return gate


def busy_response(settings: Settings, agency: str) -> Response:
    """Return the 429 answer for an agency that already has its requests in flight."""
    text = (f"{agency} already has {settings.max_requests_per_agency} requests in progress at this gateway "
            f"(limit GATEWAY_MAX_REQUESTS_PER_AGENCY={settings.max_requests_per_agency}); send this one again "
            f"in {settings.busy_retry_after_seconds} s, or wait for the others to be answered.")
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "throttled",
                       "diagnostics": f"GATEWAY_MAX_REQUESTS_PER_AGENCY={settings.max_requests_per_agency}",
                       "details": {"text": text}}]}
    response = Response(json.dumps(body), status=429, mimetype=FHIR_JSON)
    response.headers["Retry-After"] = str(settings.busy_retry_after_seconds)
    return response


def limit_response(exceeded: LimitExceeded, body: dict | None = None) -> Response:
    """Return the answer to a request that reached a limit: ``body`` (default: an OperationOutcome naming it)."""
    return Response(json.dumps(body or exceeded.operation_outcome()), status=exceeded.status, mimetype=FHIR_JSON)


def _too_large(name: str, max_bytes: int) -> LimitExceeded:
    return LimitExceeded(name, "GATEWAY_MAX_REQUEST_BYTES", max_bytes,
                         f"the request body is larger than {max_bytes} bytes",
                         "Send the export in smaller parts.")


def _chunks(stream: BinaryIO, max_bytes: int, limits: Limits, name: str) -> Iterator[bytes]:
    """Yield the body in large reads, refusing it as soon as it passes ``max_bytes`` or the time limit.

    A chunked upload has no Content-Length, so its size is only known as it arrives:
    counting here refuses it at the limit, not after translating everything before it.
    """
    total = 0
    while True:
        limits.check_time(name, f"byte {total}")
        try:
            chunk = stream.read(_READ_SIZE)
        except RequestEntityTooLarge:  # werkzeug's own count of a Content-Length or chunked body
            raise _too_large(name, max_bytes) from None
        if not chunk:
            return
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(name, max_bytes)
        yield chunk


def read_body(stream: BinaryIO, max_bytes: int, limits: Limits, name: str = "the request") -> bytes:
    """Return the whole body; raises :class:`LimitExceeded` past ``max_bytes`` or the time limit."""
    return b"".join(_chunks(stream, max_bytes, limits, name))


def spool_body(stream: BinaryIO, max_bytes: int, limits: Limits, name: str):
    """Return the body in a temporary file (in memory up to a few MB), rewound; the caller closes it.

    Reading it all first, in large reads, keeps translation off the network stream (whose
    ``readline`` reads one byte at a time: a 50 MB line took minutes) and refuses an
    oversized upload before any of it is translated. Raises :class:`LimitExceeded`.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    try:
        for chunk in _chunks(stream, max_bytes, limits, name):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool
