"""Real mutual-TLS handshakes against ``gateway serve`` on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl

import pytest

from gateway.cli import main
from gateway.signing import TrustAnchor, pki, verify_message
from gateway.transport.client import AgencyClient

SCHOOL = "urn:x-safeguarding:agency:school:999101"
POLICE = "urn:x-safeguarding:agency:police:TST"
GATEWAY = "urn:x-safeguarding:agency:gateway:national"


def _client(deployment, prefix) -> AgencyClient:
    return AgencyClient(ca_file=deployment.ca, cert_file=f"{prefix}.crt", key_file=f"{prefix}.key",
                        crl_file=deployment.crl)


def _raw_request(server, ca_file, prefix=None) -> bytes:
    """Open a new TLS connection (no reuse), send one GET, return the first bytes or raise the TLS error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_file)
    if prefix is not None:
        context.load_cert_chain(f"{prefix}.crt", f"{prefix}.key")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        # With TLS 1.3 the server judges the client certificate after the
        # client's side of the handshake, so the refusal arrives on read.
        tls.sendall(b"GET /connection-check HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return tls.recv(4096)


def _refused_with(server, deployment, prefix, alert: str) -> None:
    with pytest.raises(ssl.SSLError, match=alert):
        _raw_request(server, deployment.ca, prefix)


def test_valid_certificate_reaches_the_app_with_its_identity(gateway_server, deployment):
    with _client(deployment, deployment.school) as client:
        reply = client.request("GET", f"{gateway_server.base_url}/connection-check", expected_agency=GATEWAY)
    assert reply.status == 200
    assert json.loads(reply.body) == {"agency": SCHOOL}
    with _client(deployment, deployment.police) as client:
        reply = client.request("GET", f"{gateway_server.base_url}/connection-check")
    assert json.loads(reply.body) == {"agency": POLICE}


def test_no_certificate_is_refused_in_the_handshake(gateway_server, deployment):
    _refused_with(gateway_server, deployment, None, "CERTIFICATE_REQUIRED")


def test_certificate_from_another_ca_is_refused(gateway_server, deployment, tmp_path):
    other = pki.create_deployment(tmp_path / "other", now=dt.datetime.now(dt.timezone.utc))
    cert, key = other.issue(kind="school", code="999101", name="Fictional Primary School",
                            now=dt.datetime.now(dt.timezone.utc))
    pki.write_issued(tmp_path / "school", cert, key)
    _refused_with(gateway_server, deployment, tmp_path / "school", "UNKNOWN_CA")


def test_expired_certificate_is_refused(gateway_server, deployment, tmp_path):
    prefix = deployment.issue(tmp_path / "expired", kind="school", code="999101", name="Fictional Primary School",
                              now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=60), days=30)
    _refused_with(gateway_server, deployment, prefix, "CERTIFICATE_EXPIRED")


def test_revoked_certificate_is_refused_without_restart(gateway_server, deployment, tmp_path, runner):
    prefix = deployment.issue(tmp_path / "leaver", kind="school", code="999101", name="Fictional Primary School")
    assert _raw_request(gateway_server, deployment.ca, prefix).startswith(b"HTTP/1.1 200")

    serial = pki.serial_hex(pki.load_certificate(f"{prefix}.crt").serial_number)
    result = runner.invoke(main, ["certs", "revoke", str(deployment.dir), "--serial", serial])
    assert result.exit_code == 0, result.output

    _refused_with(gateway_server, deployment, prefix, "CERTIFICATE_REVOKED")
    # Everyone else still gets in.
    assert _raw_request(gateway_server, deployment.ca, deployment.school).startswith(b"HTTP/1.1 200")


def test_a_certificate_revoked_while_its_connection_is_open_is_refused_on_that_connection(
        gateway_server, deployment, tmp_path, runner):
    prefix = deployment.issue(tmp_path / "leaver", kind="school", code="999101", name="Fictional Primary School")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(deployment.ca)
    context.load_cert_chain(f"{prefix}.crt", f"{prefix}.key")
    connection = http.client.HTTPSConnection("127.0.0.1", gateway_server.port, context=context, timeout=10)
    try:
        connection.request("GET", "/connection-check")
        first = connection.getresponse()
        assert first.status == 200 and json.loads(first.read()) == {"agency": SCHOOL}
        opened = connection.sock

        serial = pki.serial_hex(pki.load_certificate(f"{prefix}.crt").serial_number)
        result = runner.invoke(main, ["certs", "revoke", str(deployment.dir), "--serial", serial])
        assert result.exit_code == 0, result.output

        connection.request("GET", "/connection-check")  # the same kept-alive connection: no new handshake
        second = connection.getresponse()
        body = json.loads(second.read())
        assert connection.sock is opened
    finally:
        connection.close()
    assert second.status == 401
    assert second.getheader("Content-Type") == "application/fhir+json"
    issue = body["issue"][0]
    assert issue["code"] == "login" and serial in issue["diagnostics"] and "revoked" in issue["diagnostics"]
    # Everyone else still gets in.
    assert _raw_request(gateway_server, deployment.ca, deployment.school).startswith(b"HTTP/1.1 200")


def test_an_unreadable_crl_fails_closed_on_an_open_connection(gateway_server, deployment):
    # The client does not read the CRL itself here: only the server's reading of it is tested.
    with AgencyClient(ca_file=deployment.ca, cert_file=f"{deployment.school}.crt",
                      key_file=f"{deployment.school}.key") as client:
        url = f"{gateway_server.base_url}/connection-check"
        assert client.request("GET", url).status == 200
        saved = deployment.crl.read_bytes()
        try:
            deployment.crl.write_bytes(b"-----BEGIN X509 CRL-----\nnot a CRL\n-----END X509 CRL-----\n")
            refused = client.request("GET", url)  # the same kept-alive connection
        finally:
            deployment.crl.write_bytes(saved)
        assert client.request("GET", url).status == 200  # back as soon as the CRL is
    assert refused.status == 503 and refused.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(refused.body)["issue"][0]["code"] == "transient"


def test_process_message_over_mtls(gateway_server, deployment, make_message):
    message = make_message(SCHOOL)
    body = json.dumps(message).encode()
    with _client(deployment, deployment.school) as client:
        url = f"{gateway_server.base_url}/fhir/$process-message"
        reply = client.request("POST", url, body, {"Content-Type": "application/fhir+json"})
        again = client.request("POST", url, body, {"Content-Type": "application/fhir+json"})
    assert reply.status == 200, reply.body
    answer = json.loads(reply.body)
    assert answer["entry"][0]["resource"]["response"]["code"] == "ok"
    trust = TrustAnchor.from_files(deployment.ca, deployment.crl)
    assert verify_message(answer, trust, now=dt.datetime.now(dt.timezone.utc)).signature.agency == GATEWAY
    assert again.body == reply.body


def test_a_message_in_another_agencys_name_is_403_over_mtls(gateway_server, deployment, make_message):
    with _client(deployment, deployment.police) as client:
        reply = client.request("POST", f"{gateway_server.base_url}/fhir/$process-message",
                               json.dumps(make_message(SCHOOL)).encode(), {"Content-Type": "application/fhir+json"})
    assert reply.status == 403
    assert json.loads(reply.body)["resourceType"] == "OperationOutcome"


def test_identity_headers_in_the_request_are_ignored(gateway_server, deployment):
    with _client(deployment, deployment.school) as client:
        reply = client.request("GET", f"{gateway_server.base_url}/connection-check",
                               headers={"Gateway.Agency": POLICE, "X-Agency": POLICE, "SSL-Client-Cert": "x"})
    assert json.loads(reply.body) == {"agency": SCHOOL}


def test_a_silent_client_does_not_stall_others(gateway_server, deployment):
    # A client that opens TCP and never starts the handshake holds one
    # worker thread at most; others are still served.
    with socket.create_connection(("127.0.0.1", gateway_server.port), timeout=10):
        assert _raw_request(gateway_server, deployment.ca, deployment.school).startswith(b"HTTP/1.1 200")
