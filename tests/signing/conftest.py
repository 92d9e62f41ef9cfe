"""Fixtures shared by the signing tests: the time, the deployment's trust anchor, a school's signer."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.signing import Signer, TrustAnchor


@pytest.fixture
def now():
    return dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def trust(deployment):
    return TrustAnchor.from_files(deployment.ca, deployment.crl)


@pytest.fixture
def school(deployment):
    return Signer.from_files(f"{deployment.school}.crt", f"{deployment.school}.key")
