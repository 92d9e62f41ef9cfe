"""CSRF protection of the console's forms, without server state.

The agency is the browser's client certificate, so a request's agency cannot
be forged; a cross-site page can still make the browser POST with that
certificate. Every form therefore carries a token that only a page of the
console can know: an HMAC-SHA256 of the agency under a server secret
(:attr:`gateway.config.Settings.console_secret`, else one derived from the
gateway's private key, which every process of a deployment shares). A
cross-site page cannot read the console's pages (same-origin policy), so it
cannot learn the token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from gateway.config import Settings
from gateway.signing import pki

FIELD = "csrf_token"
#: A form's token is accepted this many hours after the page was served (a long working day).
MAX_AGE_HOURS = 12
_PURPOSE = b"gateway console csrf v1\0"


class CsrfError(Exception):
    """No secret to make tokens with (no console secret and no gateway key)."""


def secret_for(settings: Settings) -> bytes:
    """Return the key of the tokens: the console secret, else a key derived from the gateway's private key.

    Raises :class:`CsrfError` when neither is available.
    """
    if settings.console_secret:
        return hashlib.sha256(_PURPOSE + settings.console_secret.encode("utf-8")).digest()
    key_file = settings.certs_dir / pki.GATEWAY_KEY
    try:
        key = key_file.read_bytes()
    except OSError as exc:
        raise CsrfError(f"the console cannot protect its forms: set GATEWAY_CONSOLE_SECRET or provide the "
                        f"gateway's key ({key_file}: {exc.strerror})") from None
    return hashlib.sha256(_PURPOSE + key).digest()


def token(secret: bytes, agency: str, now: dt.datetime) -> str:
    """Return the CSRF token of ``agency``'s forms issued at ``now``: ``<hour>.<HMAC of the agency and hour>``."""
    hour = int(now.timestamp()) // 3600
    return f"{hour}.{_mac(secret, agency, hour)}"


def valid(secret: bytes, agency: str, presented: object, now: dt.datetime) -> bool:
    """Return whether ``presented`` is a token of ``agency`` issued within :data:`MAX_AGE_HOURS` of ``now``
    (constant-time comparison)."""
    if not isinstance(presented, str) or "." not in presented:
        return False
    raw_hour, mac = presented.split(".", 1)
    if not raw_hour.isdigit():
        return False
    age = int(now.timestamp()) // 3600 - int(raw_hour)
    return 0 <= age <= MAX_AGE_HOURS and hmac.compare_digest(_mac(secret, agency, int(raw_hour)), mac)


def _mac(secret: bytes, agency: str, hour: int) -> str:
    return hmac.new(secret, f"{agency}\0{hour}".encode("utf-8"), hashlib.sha256).hexdigest()
