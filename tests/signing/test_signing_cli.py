"""``gateway certs``, ``gateway sign`` and ``gateway verify`` as a user runs them."""

from __future__ import annotations

import json
import stat

import pytest
from cryptography import x509

from gateway.cli import main
from gateway.signing import pki

SCHOOL = "urn:x-safeguarding:agency:school:999101"


def _run(runner, *args, ok=True):
    result = runner.invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def certs(runner, tmp_path):
    _run(runner, "certs", "init", tmp_path / "certs")
    return tmp_path / "certs"


def test_init_makes_the_layout_with_private_keys_0600(certs):
    for name in ("ca.crt", "ca.key", "crl.pem", "gateway.crt", "gateway.key"):
        assert (certs / name).is_file(), name
    for name in ("ca.key", "gateway.key"):
        assert stat.S_IMODE((certs / name).stat().st_mode) == 0o600
    crl = pki.load_crl(certs / "crl.pem")
    assert len(list(crl)) == 0
    gateway = pki.load_certificate(certs / "gateway.crt")
    assert pki.certificate_agency(gateway) == "urn:x-safeguarding:agency:gateway:national"
    gateway.verify_directly_issued_by(pki.load_certificate(certs / "ca.crt"))


def test_init_refuses_to_overwrite(runner, certs):
    result = _run(runner, "certs", "init", certs, ok=False)
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output


def test_issue_puts_the_agency_in_a_san_uri(runner, certs, tmp_path):
    result = _run(runner, "certs", "issue", certs, "--kind", "school", "--code", "999101",
                  "--name", "Fictional Primary School", "--days", "10", "--out", tmp_path / "school")
    assert SCHOOL in result.output
    cert = pki.load_certificate(tmp_path / "school.crt")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SCHOOL]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 10
    assert stat.S_IMODE((tmp_path / "school.key").stat().st_mode) == 0o600


def test_issue_errors_are_messages_not_tracebacks(runner, certs, tmp_path):
    result = _run(runner, "certs", "issue", tmp_path, "--kind", "school", "--code", "1", "--name", "x",
                  "--out", tmp_path / "x", ok=False)
    assert result.exit_code == 1 and "holds no deployment CA" in result.output
    result = _run(runner, "certs", "issue", certs, "--kind", "hospital", "--code", "1", "--name", "x",
                  "--out", tmp_path / "x", ok=False)
    assert result.exit_code == 2 and "hospital" in result.output


def test_revoke_by_serial_and_by_agency_then_list(runner, certs, tmp_path):
    _run(runner, "certs", "issue", certs, "--kind", "school", "--code", "999101", "--name", "Fictional Primary",
         "--out", tmp_path / "school")
    _run(runner, "certs", "issue", certs, "--kind", "police", "--code", "TST", "--name", "Fictional Police",
         "--out", tmp_path / "police")
    school_serial = pki.serial_hex(pki.load_certificate(tmp_path / "school.crt").serial_number)

    result = _run(runner, "certs", "revoke", certs, "--serial", school_serial)
    assert f"revoked {school_serial}" in result.output
    _run(runner, "certs", "revoke", certs, "--agency", "police:TST", "--reason", "superseded")

    revoked = {entry.serial_number for entry in pki.load_crl(certs / "crl.pem")}
    assert revoked == {pki.load_certificate(tmp_path / n).serial_number for n in ("school.crt", "police.crt")}
    listing = _run(runner, "certs", "list", certs).output.splitlines()
    assert len(listing) == 3
    assert any(SCHOOL in line and "revoked" in line and "key_compromise" in line for line in listing)
    assert any("gateway:national" in line and line.endswith("valid") for line in listing)


def test_revoke_needs_something_known(runner, certs):
    assert _run(runner, "certs", "revoke", certs, ok=False).exit_code == 2
    result = _run(runner, "certs", "revoke", certs, "--serial", "xyz", ok=False)
    assert result.exit_code == 1 and "not a hexadecimal number" in result.output
    result = _run(runner, "certs", "revoke", certs, "--agency", "school:999999", ok=False)
    assert result.exit_code == 1 and "no certificate" in result.output


def test_crl_reissue(runner, certs):
    assert "next update" in _run(runner, "certs", "crl", certs).output


def test_sign_then_verify(runner, deployment, make_message, tmp_path):
    message = tmp_path / "message.json"
    message.write_text(json.dumps(make_message(SCHOOL)))
    _run(runner, "sign", message, "--cert", f"{deployment.school}.crt", "--key", f"{deployment.school}.key",
         "-o", tmp_path / "signed.json")
    result = _run(runner, "verify", tmp_path / "signed.json", "--ca", deployment.ca, "--crl", deployment.crl)
    assert result.output.startswith(f"valid: signed by {SCHOOL} at ")

    # One byte changed: exit 1, with the reason.
    text = (tmp_path / "signed.json").read_text()
    (tmp_path / "tampered.json").write_text(text.replace("Testchild", "Testchilc"))
    result = _run(runner, "verify", tmp_path / "tampered.json", "--ca", deployment.ca, ok=False)
    assert result.exit_code == 1
    assert "invalid (payload-changed)" in result.output


def test_verify_with_another_ca(runner, deployment, make_message, tmp_path):
    _run(runner, "certs", "init", tmp_path / "other")
    message = tmp_path / "message.json"
    message.write_text(json.dumps(make_message(SCHOOL)))
    signed = _run(runner, "sign", message, "--cert", f"{deployment.school}.crt",
                  "--key", f"{deployment.school}.key").output
    (tmp_path / "signed.json").write_text(signed)
    result = _run(runner, "verify", tmp_path / "signed.json", "--ca", tmp_path / "other" / "ca.crt", ok=False)
    assert result.exit_code == 1 and "untrusted-chain" in result.output


def test_sign_and_verify_bad_input_are_messages(runner, deployment, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    result = _run(runner, "sign", tmp_path / "bad.json", "--cert", f"{deployment.school}.crt",
                  "--key", f"{deployment.school}.key", ok=False)
    assert result.exit_code == 1 and "not JSON" in result.output
    result = _run(runner, "verify", tmp_path / "missing.json", "--ca", deployment.ca, ok=False)
    assert result.exit_code == 1 and "no such file" in result.output
    (tmp_path / "patient.json").write_text('{"resourceType": "Patient"}')
    result = _run(runner, "sign", tmp_path / "patient.json", "--cert", f"{deployment.school}.crt",
                  "--key", f"{deployment.police}.key", ok=False)
    assert result.exit_code == 1 and "not a FHIR Bundle" in result.output
