"""Benchmark of the trust layer: signing, verifying and mTLS serving.

Run: ``.venv/bin/python bench/trust.py [--quick]``

Prints, for a typical ~10 KB referral Bundle (fictional data), signs/s and
verifies/s through ``joserfc`` (today's code) beside, in the same run, the
raw ES256 primitive on the same bytes and the hand-written JWS it replaced
(issue 13), loaded from git history (:data:`BASELINE_COMMIT`) into a
temporary module: that code is no longer part of the package. Then the
signature work the gateway does per message, to set beside the gateway's CPU
per message from ``bench/pipeline.py`` (goal: under 5%), and mTLS
requests/s to a trivial endpoint of a real ``gateway serve`` on 127.0.0.1,
with and without connection reuse. Last, the per-request revocation check
of the mTLS middleware (the peer's serial against the current CRL): the
middleware with and without it, interleaved, and its share of a kept-alive
request measured above. Every loop is bounded; nothing leaves the loopback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path

import orjson
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws

from gateway.model.systems import (
    AGENCY_IDENTIFIER_SYSTEM,
    DFE_LA,
    NHS_NUMBER,
    SCHOOL_URN,
    agency_uri,
)
from gateway.model.responses import response_message
from gateway.signing import (
    Signer,
    TrustAnchor,
    canonical_json,
    countersign_message,
    sign_message,
    signed_payload,
    verify_message,
    verify_signature,
)
from gateway.signing import pki, signatures
from gateway.store import schema
from gateway.transport.client import AgencyClient
from gateway.transport.middleware import ClientCertificateMiddleware, CurrentRevocations

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc
SCHOOL = agency_uri("school", "999101")
# The last commit whose gateway/signing/signatures.py built and checked the
# JWS by hand over ``cryptography`` (the baseline of issue 13).
BASELINE_COMMIT = "c8396034a2456f86a98989fda58666c42b96469a"


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
    print(f"  {label:<56} {per_second:>9,.0f}/s  {1e6 / per_second:>8,.0f} us{ratio}")


def cpu_per_call(function, iterations: int) -> float:
    """Return the process CPU seconds per call of ``function`` over ``iterations`` calls."""
    start = time.process_time()
    for _ in range(iterations):
        function()
    return (time.process_time() - start) / iterations


def baseline_module() -> types.ModuleType | None:
    """Return the hand-written JWS implementation of :data:`BASELINE_COMMIT` as a temporary module.

    ``None`` (after saying why) when git or the commit is not available, or
    the old module cannot be imported (it needs ``pybase64``).
    """
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_COMMIT}:gateway/signing/signatures.py"],
                                check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  (no baseline: cannot read {BASELINE_COMMIT[:10]} from git: {exc})")
        return None
    spec = importlib.util.spec_from_loader("baseline_signatures", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        exec(compile(source, f"{BASELINE_COMMIT[:10]}:gateway/signing/signatures.py", "exec"), module.__dict__)
    except ImportError as exc:
        print(f"  (no baseline: the hand-written JWS of {BASELINE_COMMIT[:10]} needs {exc.name}, not installed)")
        return None
    return module


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
    header = signer.protected_header(when)
    compact = signatures.detached_jws(header, payload, signer)
    leaf_jwk = signatures._parse_x5c(tuple(signer.x5c)).es256_jwk

    print("canonical JSON of the Bundle")
    row("json.dumps, not canonical", rate(lambda: json.dumps(bundle), iterations))
    row("orjson.dumps sorted keys (the floor for the fast path)",
        rate(lambda: orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS), iterations))
    row("rfc8785.dumps", rate(lambda: rfc8785.dumps(bundle), max(iterations // 5, 20)))
    row("canonical_json (same bytes as rfc8785)", rate(lambda: canonical_json(bundle), iterations))

    old = baseline_module()
    if old is not None:
        old_signer = old.Signer.from_files(f"{school}.crt", f"{school}.key")
        old_trust = old.TrustAnchor.from_files(certs / pki.CA_CERT, certs / pki.CRL)
        old_signed = old.sign_message(bundle, old_signer, now=now)
        # Each verifies the other's signatures: the wire format is the same.
        assert verify_message(old_signed, trust, now=now) and old.verify_message(signed, old_trust, now=now)
        old_protected = old_signer._protected_header(when)
        old_header_segment, old_signature_segment, *_ = old._decode_jws(old_signed["signature"], "signature")

    def verify_jws() -> bool:  # joserfc's part of verifying: parse, then check the signature
        return jws.validate_compact(jws.extract_compact(compact.encode("ascii"), payload,
                                                        registry=signatures._JWS_REGISTRY),
                                    leaf_jwk, registry=signatures._JWS_REGISTRY)

    labels = ["raw ES256 sign (cryptography, same bytes)", "JWS only, joserfc (today)",
              "sign_message, joserfc (today)"]
    functions = [lambda: key.sign(payload, algorithm),
                 lambda: signatures.detached_jws(header, payload, signer),
                 lambda: sign_message(bundle, signer, now=now)]
    if old is not None:
        labels += [f"JWS only, hand-written ({BASELINE_COMMIT[:7]})",
                   f"sign_message, hand-written ({BASELINE_COMMIT[:7]})"]
        functions += [lambda: old._detached_jws(old_protected, payload, key),
                      lambda: old.sign_message(bundle, old_signer, now=now)]
    print("signing (each timed in rounds with the primitive; ratio = its time / the primitive's)")
    measured = rates(functions, iterations)
    for label, per_second in zip(labels, measured):
        row(label, per_second, None if per_second is measured[0] else measured[0])

    labels = ["raw ES256 verify (cryptography, same bytes)", "JWS only, joserfc (today: parse + verify)",
              "verify_signature, joserfc (canonicalise + JWS, chain, CRL)", "verify_message, joserfc (today)"]
    functions = [lambda: public.verify(raw_signature, payload, algorithm), verify_jws,
                 lambda: verify_signature(signed["signature"], signed_payload(signed), trust, now=now),
                 lambda: verify_message(signed, trust, now=now)]
    if old is not None:
        labels += [f"JWS only, hand-written ({BASELINE_COMMIT[:7]})",
                   f"verify_message, hand-written ({BASELINE_COMMIT[:7]})"]
        functions += [lambda: old._signature_matches(old_header_segment, old_signature_segment, payload, public),
                      lambda: old.verify_message(old_signed, old_trust, now=now)]
    print("verifying (likewise)")
    measured = rates(functions, iterations)
    for label, per_second in zip(labels, measured):
        row(label, per_second, None if per_second is measured[0] else measured[0])

    def cold() -> None:
        signatures._parse_x5c.cache_clear()
        signatures._VERIFIED_CHAINS.clear()
        verify_message(signed, trust, now=now)

    raw_verify, cold_message = rates([lambda: public.verify(raw_signature, payload, algorithm), cold],
                                     max(iterations // 5, 20))
    row("verify_message, first message from a signer (no cache)", cold_message, raw_verify)
    bench_per_message(bundle, signer, trust, now, iterations, old, old_signer if old else None,
                      old_trust if old else None)


def bench_per_message(bundle: dict, signer: Signer, trust: TrustAnchor, now: dt.datetime, iterations: int,
                      old: types.ModuleType | None, old_signer, old_trust) -> None:
    """Print the CPU of the signature work the gateway does for one message, today and with the baseline.

    As ``gateway/transport/intake.py`` does for a referral: verify the
    sender's signature when there is one, counter-sign the message (its
    canonical payload is already made: the intake needs it for the digest)
    and sign the response message.
    """
    sender_signed = sign_message(bundle, signer, now=now)
    payload = signed_payload(bundle)
    header = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "MessageHeader")
    response = response_message(answers=header["id"], code="ok", source=signer.agency, destination=SCHOOL, now=now)

    def today_unsigned() -> None:
        countersign_message(bundle, signer, now=now, payload=payload)
        sign_message(response, signer, now=now)

    def today_signed() -> None:
        verify_signature(sender_signed["signature"], payload, trust, now=now, role="sender signature")
        countersign_message(sender_signed, signer, now=now, payload=payload)
        sign_message(response, signer, now=now)

    cases = [("today (joserfc)", today_unsigned, today_signed)]
    if old is not None:
        old_sender_signed = old.sign_message(bundle, old_signer, now=now)

        def old_unsigned() -> None:
            old.countersign_message(bundle, old_signer, now=now, payload=payload)
            old.sign_message(response, old_signer, now=now)

        def old_signed() -> None:
            old.verify_signature(old_sender_signed["signature"], payload, old_trust, now=now, role="sender signature")
            old.countersign_message(old_sender_signed, old_signer, now=now, payload=payload)
            old.sign_message(response, old_signer, now=now)

        cases.append((f"hand-written ({BASELINE_COMMIT[:7]})", old_unsigned, old_signed))
    print("signature work of the gateway per message, CPU per message (best of 5 interleaved rounds)")
    print("  (counter-sign + sign the response; a signed message adds verifying the sender's signature)")
    best: dict[str, float] = {}
    for _ in range(5):
        for name, unsigned, signed in cases:
            for kind, function in (("unsigned", unsigned), ("signed", signed)):
                key = f"{name}, {kind} message"
                best[key] = min(best.get(key, float("inf")), cpu_per_call(function, iterations))
    for key, seconds in best.items():
        print(f"  {key:<56} {seconds * 1e3:8.3f} ms CPU")
    print("  share of the gateway's CPU per message = these / the gateway's CPU ms per message in bench/pipeline.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_mtls(certs: Path, school: Path, workdir: Path, iterations: int) -> float:
    """Print mTLS request rates; return the kept-alive requests per second."""
    port = _free_port()
    log = workdir / "server.log"
    database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    schema.upgrade(database_url)  # as `gateway db upgrade`: the server starts only on the current schema
    env = dict(os.environ, GATEWAY_DATABASE_URL=database_url)
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
            kept_alive = rate(lambda: client.request("GET", url), iterations)
            row("with connection reuse (keep-alive)", kept_alive)
        with AgencyClient(**options, reuse_connections=False) as client:
            row("without reuse (full handshake each request)",
                rate(lambda: client.request("GET", url), max(iterations // 4, 20)))
        return kept_alive
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class _PeerSocket:
    """What the middleware reads of gunicorn's TLS socket: the verified peer certificate (DER)."""

    def __init__(self, der: bytes):
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return bytes(self.der)  # a new bytes object each request, as the ssl module gives


def bench_revocation_check(certs: Path, school: Path, iterations: int, kept_alive: float) -> None:
    """The middleware on a do-nothing app, with and without the per-request CRL check, interleaved."""
    from cryptography.hazmat.primitives.serialization import Encoding

    ca = pki.CertificateAuthority.open(certs)
    revoked = [ca.issue(kind="school", code="999101", name="Fictional Leaver", now=dt.datetime.now(UTC))[0]
               for _ in range(50)]
    ca.write_crl(now=dt.datetime.now(UTC), revoke=[c.serial_number for c in revoked])  # a CRL with 50 entries
    der = pki.load_certificate(f"{school}.crt").public_bytes(Encoding.DER)

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    without = ClientCertificateMiddleware(app)
    checked = ClientCertificateMiddleware(app, CurrentRevocations(certs / pki.CA_CERT, certs / pki.CRL))

    def start_response(status, headers):
        return None

    def call(middleware) -> None:
        middleware({"gunicorn.socket": _PeerSocket(der)}, start_response)

    per_second = rates([lambda: call(without), lambda: call(checked)], iterations * 20)
    print("per-request revocation check (mTLS middleware on a do-nothing app, CRL of 50 entries, best of 7 "
          "interleaved rounds)")
    row("middleware without the check", per_second[0])
    row("middleware with the check (2 stats, serial in a set)", per_second[1])
    extra = 1 / per_second[1] - 1 / per_second[0]
    print(f"  the check adds {extra * 1e6:.1f} us per request: {extra * kept_alive * 100:.2f}% of a kept-alive mTLS "
          f"request above ({1e6 / kept_alive:,.0f} us)")


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
        kept_alive = bench_mtls(workdir / "certs", workdir / "school", workdir, iterations)
        bench_revocation_check(workdir / "certs", workdir / "school", iterations, kept_alive)


if __name__ == "__main__":
    main()
