"""The per-request revocation check's CRL cache, on real CRL files written by the ``gateway certs`` code.

``test_mtls.py`` proves the check on a real kept-alive mTLS connection.
"""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.signing import pki
from gateway.transport.middleware import CurrentRevocations

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def ca(tmp_path):
    pki.create_deployment(tmp_path / "certs", now=NOW)
    return pki.CertificateAuthority.open(tmp_path / "certs")


def _serial(ca) -> int:
    cert, _ = ca.issue(kind="school", code="999101", name="Fictional Primary School", now=NOW)
    return cert.serial_number


def test_a_revocation_written_after_the_first_check_is_seen_on_the_next(ca):
    serial, other = _serial(ca), _serial(ca)
    revocations = CurrentRevocations(ca.directory / pki.CA_CERT, ca.crl_path)
    assert revocations.is_revoked(serial, now=NOW) is False
    ca.write_crl(now=NOW + dt.timedelta(minutes=1), revoke=[serial])
    assert revocations.is_revoked(serial, now=NOW) is True
    assert revocations.is_revoked(other, now=NOW) is False


def test_a_missing_crl_fails_closed_until_it_is_back(ca):
    serial = _serial(ca)
    revocations = CurrentRevocations(ca.directory / pki.CA_CERT, ca.crl_path)
    saved = ca.crl_path.read_bytes()
    ca.crl_path.unlink()
    with pytest.raises(OSError):
        revocations.is_revoked(serial, now=NOW)
    ca.crl_path.write_bytes(saved)
    assert revocations.is_revoked(serial, now=NOW) is False


def test_a_crl_from_another_ca_fails_closed(ca, tmp_path):
    serial = _serial(ca)
    other = pki.create_deployment(tmp_path / "other", now=NOW)
    revocations = CurrentRevocations(ca.directory / pki.CA_CERT, other.crl_path)
    with pytest.raises(pki.PKIError, match="not issued by the CA"):
        revocations.is_revoked(serial, now=NOW)


def test_a_crl_past_its_next_update_fails_closed(ca):
    serial = _serial(ca)
    ca.write_crl(now=NOW, days=1)
    revocations = CurrentRevocations(ca.directory / pki.CA_CERT, ca.crl_path)
    assert revocations.is_revoked(serial, now=NOW + dt.timedelta(hours=23)) is False
    with pytest.raises(pki.PKIError, match="re-issued"):
        revocations.is_revoked(serial, now=NOW + dt.timedelta(days=2))
