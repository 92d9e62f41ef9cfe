"""Signing and verifying messages, and the deployment PKI.

The public API needs neither Flask nor a database, so a receiving agency can
embed it::

    from gateway.signing import TrustAnchor, UntrustedMessage, verify_message

    trust = TrustAnchor.from_files("ca.crt", "crl.pem")
    try:
        verified = verify_message(bundle, trust, now=datetime.now(timezone.utc))
    except UntrustedMessage as exc:
        print(exc.reason, exc)
"""

from gateway.signing.canonical import canonical_json
from gateway.signing.signatures import (
    Signer,
    TrustAnchor,
    UntrustedMessage,
    VerifiedMessage,
    VerifiedSignature,
    countersign_message,
    sign_message,
    signed_payload,
    verify_message,
    verify_signature,
)

__all__ = [
    "Signer",
    "TrustAnchor",
    "UntrustedMessage",
    "VerifiedMessage",
    "VerifiedSignature",
    "canonical_json",
    "countersign_message",
    "sign_message",
    "signed_payload",
    "verify_message",
    "verify_signature",
]
