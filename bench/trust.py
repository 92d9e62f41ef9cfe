"""Benchmark of the trust layer: signing, verifying and mTLS serving.

Run: ``.venv/bin/python bench/trust.py [--quick]``

Prints, for a typical ~10 KB referral Bundle (fictional data), signs/s and
verifies/s beside the raw ES256 primitive on the same bytes in the same run
(goal: JWS + canonicalisation add at most 3x), then mTLS requests/s to a
trivial endpoint of a real ``gateway serve`` on 127.0.0.1, with and without
connection reuse. Every loop is bounded; nothing leaves the loopback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.registry import HeaderParameter

from gateway.model.systems import (
    AGENCY_IDENTIFIER_SYSTEM,
    DFE_LA,
    NHS_NUMBER,
    SCHOOL_URN,
    agency_uri,
)
from gateway.signing import (
    Signer,
    TrustAnchor,
    canonical_json,
    sign_message,
    signed_payload,
    verify_message,
    verify_signature,
)
from gateway.signing import pki, signatures
from gateway.signing.signatures import _decode_jws, _detached_jws, _signature_matches
from gateway.transport.client import AgencyClient

UTC = dt.timezone.utc
SCHOOL = agency_uri("school", "999101")
# joserfc, for comparison only: the gateway signs and verifies with
# ``cryptography`` directly (same wire format; tests/signing prove both ways).
JOSERFC = jws.JWSRegistry(header_registry={"sigT": HeaderParameter("signing time", "str")}, algorithms=["ES256"])
JOSERFC.max_header_length = 64 * 1024
JOSERFC.max_payload_length = 1 << 30


def referral_bundle(target_bytes: int = 10_000) -> dict:
    """Return a fictional school safeguarding referral Bundle of about ``target_bytes`` of JSON."""
    def ref(n: int) -> str:
        return f"urn:uuid:00000000-0000-4000-8000-{n:012d}"

    entries = [
        {"fullUrl": ref(1), "resource": {
            "resourceType": "MessageHeader", "id": "hdr-1",
            "eventCoding": {"system": "https://fhir.safeguarding-gateway.example/CodeSystem/message-event",
                            "code": "safeguarding-referral"},
            "source": {"name": "Fictional Primary School", "endpoint": SCHOOL},
            "destination": [{"endpoint": agency_uri("la", "999")}],
            "sender": {"reference": ref(2)}, "focus": [{"reference": ref(4)}]}},
        {"fullUrl": ref(2), "resource": {
            "resourceType": "Organization", "id": "school",
            "identifier": [{"system": AGENCY_IDENTIFIER_SYSTEM["school"], "value": "999101"},
                           {"system": SCHOOL_URN, "value": "999101"}],
            "name": "Fictional Primary School",
            "address": [{"line": ["1 Example Lane"], "city": "Testtown", "postalCode": "ZZ99 9ZZ"}]}},
        {"fullUrl": ref(3), "resource": {
            "resourceType": "Organization", "id": "la",
            "identifier": [{"system": DFE_LA, "value": "999"}], "name": "Fictional County Council"}},
        {"fullUrl": ref(4), "resource": {
            "resourceType": "Patient", "id": "child",
            "identifier": [{"system": NHS_NUMBER, "value": "9990000018"}],
            "name": [{"use": "official", "family": "Testchild", "given": ["Alex", "Sam"]}],
            "gender": "unknown", "birthDate": "2014-05-06",
            "address": [{"line": ["2 Sample Road"], "city": "Testtown", "postalCode": "ZZ99 8ZZ"}]}},
        {"fullUrl": ref(5), "resource": {
            "resourceType": "RelatedPerson", "id": "carer-1", "patient": {"reference": ref(4)},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                          "code": "MTH"}]}],
            "name": [{"family": "Testparent", "given": ["Jo"]}], "telecom": [{"system": "phone",
                                                                              "value": "01632 960000"}]}},
        {"fullUrl": ref(6), "resource": {
            "resourceType": "Practitioner", "id": "dsl",
            "name": [{"family": "Examplestaff", "given": ["Chris"], "prefix": ["Ms"]}],
            "telecom": [{"system": "email", "value": "dsl@school.example"}]}},
    ]
    n = 7
    text = ("During morning registration the child said they had not eaten since the previous lunchtime and "
            "appeared tired; the class teacher recorded the child's own words and informed the designated "
            "safeguarding lead, who spoke with the child in a quiet room with a second adult present. ")
    while len(json.dumps({"entry": entries})) < target_bytes - 700:
        entries.append({"fullUrl": ref(n), "resource": {
            "resourceType": "Observation", "id": f"concern-{n}", "status": "final",
            "category": [{"coding": [{"system": "https://fhir.safeguarding-gateway.example/CodeSystem/"
                                      "concern-category", "code": "neglect"}]}],
            "code": {"text": "Safeguarding concern"}, "subject": {"reference": ref(4)},
            "performer": [{"reference": ref(6)}],
            "effectiveDateTime": f"2025-0{1 + n % 9}-1{n % 10}T08:{10 + n:02d}:00+00:00",
            "valueString": text, "note": [{"text": f"Follow-up {n}: parent contacted; score 2.5 of 4."}]}})
        n += 1
    return {
        "resourceType": "Bundle", "id": str(uuid.uuid4()),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "message", "timestamp": dt.datetime.now(UTC).isoformat(timespec="seconds"), "entry": entries,
    }


def rate(function, iterations: int, repeats: int = 5) -> float:
    """Return the best operations per second of ``repeats`` runs of ``iterations`` calls."""
    return rates([function], iterations, repeats)[0]


def rates(functions, iterations: int, repeats: int = 7) -> list[float]:
    """Return the best operations per second of each function, timed in interleaved rounds.

    Each round runs ``iterations`` calls of every function in turn, so a
    primitive and what is compared with it see the same machine load.
    """
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            for _ in range(iterations):
                function()
            best[index] = min(best[index], time.perf_counter() - start)
    return [iterations / seconds for seconds in best]


def row(label: str, per_second: float, baseline: float | None = None) -> None:
    ratio = f"  {baseline / per_second:5.2f}x the primitive's time" if baseline else ""
    print(f"  {label:<52} {per_second:>9,.0f}/s  {1e6 / per_second:>8,.0f} us{ratio}")


def bench_signing(certs: Path, school: Path, iterations: int) -> None:
    bundle = referral_bundle()
    signer = Signer.from_files(f"{school}.crt", f"{school}.key")
    trust = TrustAnchor.from_files(certs / pki.CA_CERT, certs / pki.CRL)
    now = dt.datetime.now(UTC)
    payload = signed_payload(bundle)
    signed = sign_message(bundle, signer, now=now)
    assert payload == rfc8785.dumps({k: v for k, v in bundle.items() if k != "signature"})
    print(f"referral Bundle: {len(json.dumps(bundle)):,} bytes of JSON, {len(bundle['entry'])} entries; "
          f"canonical payload {len(payload):,} bytes (identical to rfc8785.dumps)")

    key, public = signer.key, signer.chain[0].public_key()
    algorithm = ec.ECDSA(hashes.SHA256())
    raw_signature = key.sign(payload, algorithm)

    when = "2025-01-01T00:00:00.000Z"
    header = {"alg": "ES256", "x5c": signer.x5c, "sigT": when}
    protected = signer._protected_header(when)
    compact = jws.serialize_compact(header, payload, signer.jwk, registry=JOSERFC)
    public_jwk = ECKey.import_key(public)
    header_segment, signature_segment, *_ = _decode_jws(signed["signature"], "signature")

    print("canonical JSON of the Bundle")
    row("json.dumps, not canonical", rate(lambda: json.dumps(bundle), iterations))
    row("orjson.dumps sorted keys (the floor for the fast path)",
        rate(lambda: orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS), iterations))
    row("rfc8785.dumps", rate(lambda: rfc8785.dumps(bundle), max(iterations // 5, 20)))
    row("canonical_json (same bytes as rfc8785)", rate(lambda: canonical_json(bundle), iterations))

    print("signing (each timed in rounds with the primitive; ratio = its time / the primitive's)")
    raw_sign, joserfc_sign, gateway_jws, full_sign = rates([
        lambda: key.sign(payload, algorithm),
        lambda: jws.serialize_compact(header, payload, signer.jwk, registry=JOSERFC),
        lambda: _detached_jws(protected, payload, key),
        lambda: sign_message(bundle, signer, now=now),
    ], iterations)
    row("raw ES256 sign (cryptography, same bytes)", raw_sign)
    row("JWS only, joserfc (compact ES256, x5c)", joserfc_sign, raw_sign)
    row("JWS only, the gateway's (same wire format)", gateway_jws, raw_sign)
    row("sign_message (canonicalise + JWS + Signature)", full_sign, raw_sign)

    print("verifying (likewise)")
    raw_verify, joserfc_verify, gateway_verify, full_signature, full_message = rates([
        lambda: public.verify(raw_signature, payload, algorithm),
        lambda: jws.deserialize_compact(compact, public_jwk, payload=payload, registry=JOSERFC),
        lambda: _signature_matches(header_segment, signature_segment, payload, public),
        lambda: verify_signature(signed["signature"], signed_payload(signed), trust, now=now),
        lambda: verify_message(signed, trust, now=now),
    ], iterations)
    row("raw ES256 verify (cryptography, same bytes)", raw_verify)
    row("JWS only, joserfc (detached verify)", joserfc_verify, raw_verify)
    row("JWS only, the gateway's", gateway_verify, raw_verify)
    row("verify_signature (canonicalise + JWS, chain, CRL)", full_signature, raw_verify)
    row("verify_message (as a receiver runs it)", full_message, raw_verify)

    def cold() -> None:
        signatures._parse_x5c.cache_clear()
        signatures._VERIFIED_CHAINS.clear()
        verify_message(signed, trust, now=now)

    raw_verify, cold_message = rates([lambda: public.verify(raw_signature, payload, algorithm), cold],
                                     max(iterations // 5, 20))
    row("verify_message, first message from a signer (no cache)", cold_message, raw_verify)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_mtls(certs: Path, school: Path, workdir: Path, iterations: int) -> None:
    port = _free_port()
    log = workdir / "server.log"
    env = dict(os.environ, GATEWAY_DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}")
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--certs", str(certs),
                                   "--port", str(port), "--threads", "4", "--no-access-log"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"https://127.0.0.1:{port}/connection-check"
    options = dict(ca_file=certs / pki.CA_CERT, cert_file=f"{school}.crt", key_file=f"{school}.key",
                   crl_file=certs / pki.CRL, timeout=10)
    try:
        with AgencyClient(**options) as probe:
            for _ in range(300):  # at most ~30 s for the server to come up
                try:
                    probe.request("GET", url)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if server.poll() is not None:
                        raise SystemExit(f"gateway serve exited:\n{log.read_text()}") from None
                    time.sleep(0.1)
            else:
                raise SystemExit(f"gateway serve did not start:\n{log.read_text()}")
        print("mTLS, GET /connection-check on 127.0.0.1 (gunicorn gthread, 1 worker, 4 threads), one client thread")
        with AgencyClient(**options) as client:
            row("with connection reuse (keep-alive)", rate(lambda: client.request("GET", url), iterations))
        with AgencyClient(**options, reuse_connections=False) as client:
            row("without reuse (full handshake each request)",
                rate(lambda: client.request("GET", url), max(iterations // 4, 20)))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    iterations = 50 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        now = dt.datetime.now(UTC)
        ca = pki.create_deployment(workdir / "certs", now=now)
        cert, key = ca.issue(kind="school", code="999101", name="Fictional Primary School", now=now)
        pki.write_issued(workdir / "school", cert, key)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        bench_signing(workdir / "certs", workdir / "school", iterations)
        bench_mtls(workdir / "certs", workdir / "school", workdir, iterations)


if __name__ == "__main__":
    main()
