"""Encryption at rest: message bodies and personal data are stored encrypted, people found by keyed hashes.

A copied database file must show no names, narratives or identifiers. So:

* :class:`EncryptedText` columns hold an *envelope*,
  ``v1:<key id>:<base64 of nonce || ciphertext || tag>``: AES-256-GCM
  (``cryptography``) with a fresh 96-bit nonce per value, and associated data
  naming the table and column, so a ciphertext copied into another column
  does not decrypt. A read decrypts with whichever key its envelope names.
* :class:`KeyedHash` columns (the person index's blocking keys, which
  include the NHS number and UPN) hold ``h1:`` and an HMAC-SHA-256 of the
  value under a separate hash key: an equal value gives an equal hash, so
  look-ups stay equality look-ups, and the value cannot be read back. The
  column hashes whatever is bound to it, in inserts and in ``WHERE``
  clauses alike, so the queries give clear values and never see a hash.

The keys are a :class:`KeyRing`, read from the file named by
``Settings.data_keys`` (``GATEWAY_DATA_KEYS``) or, unset, the development key
file ``certs/dev/data-keys.json`` (committed: known to everyone, dev only,
and the gateway says so in its log). One ring serves the process
(:func:`use`, :func:`active`): column types have no other way to reach it.
``gateway keys rotate`` (:mod:`gateway.store.keys`) re-encrypts under the
current key. docs/encryption.md is the operator's page.

A stored value that is not an envelope is a *clear* value, written before
encryption at rest (or with ``encrypt_at_rest`` off, the benchmarks'
baseline): it is read as it is until ``gateway keys rotate`` encrypts it. An
envelope that does not decrypt (tampered, moved to another column, or under
a key the ring lacks) raises :class:`DecryptionError`; it is never handed on.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, Text
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

from gateway.config import REPO_DIR, Settings, SettingsError

log = logging.getLogger(__name__)

#: The development key file used when ``GATEWAY_DATA_KEYS`` is unset (committed; never for real data).
DEV_DATA_KEYS = REPO_DIR / "certs" / "dev" / "data-keys.json"
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
ENVELOPE_PREFIX = "v1:"
HASH_PREFIX = "h1:"
_ENVELOPE = re.compile(r"^v\d+:")
_NONCE_BYTES = 12
_AAD = b"gateway at rest v1\0"
_HASH_PURPOSE = b"gateway lookup v1\0"
_SETTING = "GATEWAY_DATA_KEYS"


class DecryptionError(Exception):
    """A stored envelope cannot be trusted: tampered, moved from another column, or under a key the ring lacks."""


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """The data keys (key id -> 32 bytes), which one encrypts, and the hash key of the look-ups.

    ``enabled`` False (``encrypt_at_rest`` off, for the benchmarks' baseline
    only) writes clear values and clear look-up keys; reads still decrypt.
    """

    keys: Mapping[str, bytes]
    current: str
    hash_key: bytes
    enabled: bool = True
    source: str = "a key ring built in code"

    def __post_init__(self):
        if self.current not in self.keys:
            raise SettingsError(f"{_SETTING} ({self.source}): the current key {self.current!r} is not among the keys")
        for key_id, key in self.keys.items():
            if not KEY_ID.match(key_id):
                raise SettingsError(f"{_SETTING} ({self.source}): key id {key_id!r}: use 1-32 letters, digits, - or _")
            if len(key) != 32:
                raise SettingsError(f"{_SETTING} ({self.source}): key {key_id!r} has {len(key)} bytes; "
                                    "AES-256 needs 32")
        if len(self.hash_key) < 32:
            raise SettingsError(f"{_SETTING} ({self.source}): the hash key has {len(self.hash_key)} bytes; give 32")
        object.__setattr__(self, "_ciphers", {key_id: AESGCM(key) for key_id, key in self.keys.items()})

    # -- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        """Return the ring of ``settings``: its ``data_keys`` file, else :data:`DEV_DATA_KEYS` (with a warning).

        Raises :class:`~gateway.config.SettingsError` naming
        ``GATEWAY_DATA_KEYS`` (or ``GATEWAY_ENCRYPT_AT_REST``) when the file
        is missing, unreadable or holds no usable keys.
        """
        mode = str(settings.encrypt_at_rest).strip().lower()
        if mode not in ("on", "off"):
            raise SettingsError(f"GATEWAY_ENCRYPT_AT_REST={settings.encrypt_at_rest!r}: give on or off")
        path = Path(settings.data_keys) if settings.data_keys else DEV_DATA_KEYS
        ring = cls.load(path, enabled=mode == "on")
        if not settings.data_keys:
            log.warning("DEVELOPMENT DATA KEYS: %s encrypts the data at rest (GATEWAY_DATA_KEYS is unset); its keys "
                        "are public, never use it for real data (docs/encryption.md)", path)
        if mode == "off":
            log.warning("ENCRYPTION AT REST IS OFF (GATEWAY_ENCRYPT_AT_REST=off): new values are stored in clear; "
                        "for the benchmarks' baseline only")
        return ring

    @classmethod
    def load(cls, path: Path, *, enabled: bool = True) -> "KeyRing":
        """Return the ring in the JSON key file ``path`` (see :func:`key_file_text`).

        Raises :class:`~gateway.config.SettingsError` naming
        ``GATEWAY_DATA_KEYS`` and the file when it cannot be used.
        """
        where = f"{_SETTING}={path}"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"{where}: cannot read the key file ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{where}: the key file is not JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not data["keys"]:
            raise SettingsError(f"{where}: the key file needs \"keys\" (key id -> base64 of 32 bytes), "
                                "\"current\" and \"hash_key\" (docs/encryption.md)")
        keys = {str(key_id): _key(where, f"key {key_id!r}", value) for key_id, value in data["keys"].items()}
        current = data.get("current")
        if not isinstance(current, str):
            raise SettingsError(f"{where}: \"current\" must name the key that encrypts")
        return cls(keys=keys, current=current, hash_key=_key(where, "hash_key", data.get("hash_key")),
                   enabled=enabled, source=str(path))

    # -- values ----------------------------------------------------------------------------------------------

    def encrypt(self, text: str, binding: str) -> str:
        """Return the envelope of ``text`` for column ``binding`` ("table.column") under the current key.

        With the ring disabled, ``text`` itself.
        """
        if not self.enabled:
            return text
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, text.encode("utf-8"), _aad(binding, self.current))
        return f"{ENVELOPE_PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, stored: str, binding: str) -> str:
        """Return the clear text of a stored value of column ``binding``.

        A value that is no envelope is a clear value written before
        encryption (returned as it is). Raises :class:`DecryptionError` for an
        envelope that does not decrypt: unknown version or key id, damaged,
        tampered or moved from another column.
        """
        if not _ENVELOPE.match(stored):
            return stored
        version, _, rest = stored.partition(":")
        key_id, _, body = rest.partition(":")
        if version != "v1":
            raise DecryptionError(f"{binding}: a stored value is envelope {version}, which this gateway cannot read")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"{binding}: a stored value is encrypted under key {key_id!r}, which the key ring "
                                  f"({self.source}) does not hold: add it back to {_SETTING}'s file, or finish "
                                  "`gateway keys rotate` before removing a key")
        try:
            # base64.b64decode(body, validate=True) without its wrapper: an ASCII str is taken as it is.
            raw = binascii.a2b_base64(body, strict_mode=True)
            if len(raw) < _NONCE_BYTES + 16:
                raise ValueError("too short")
            clear = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(binding, key_id))
        except (InvalidTag, ValueError, binascii.Error):
            raise DecryptionError(f"{binding}: a stored value under key {key_id!r} does not decrypt: it was altered "
                                  f"or moved from another column, or the key file's {key_id!r} is not the key it "
                                  "was encrypted with") from None
        return clear.decode("utf-8")

    def lookup_hash(self, value: str) -> str:
        """Return the keyed hash of a normalised look-up value (``h1:`` and 43 characters); clear when disabled."""
        if not self.enabled:
            return value
        digest = hmac.new(self.hash_key, _HASH_PURPOSE + value.encode("utf-8"), hashlib.sha256).digest()
        return HASH_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def is_current(self, stored: str | None) -> bool:
        """Whether a stored value needs nothing from rotation: empty, or an envelope under the current key."""
        return stored is None or stored.startswith(f"{ENVELOPE_PREFIX}{self.current}:")


@functools.lru_cache(maxsize=1024)  # a few dozen columns and keys; a page decrypts hundreds of values
def _aad(binding: str, key_id: str) -> bytes:
    return _AAD + binding.encode("utf-8") + b"\0" + key_id.encode("utf-8")


def _key(where: str, what: str, value) -> bytes:
    try:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raise SettingsError(f"{where}: {what} is not base64") from None


def new_key() -> str:
    """Return a fresh 256-bit key, base64 (for a key file)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def key_file_text(keys: Mapping[str, str], current: str, hash_key: str, *, note: str = "") -> str:
    """Return a key file's JSON: ``{"current": id, "keys": {id: base64 key}, "hash_key": base64}``."""
    body = {"note": note} if note else {}
    body.update({"current": current, "keys": dict(keys), "hash_key": hash_key})
    return json.dumps(body, indent=2) + "\n"


# -- the process's ring --------------------------------------------------------------------------------------

_ring: KeyRing | None = None
_ring_lock = threading.Lock()


def use(ring: KeyRing) -> KeyRing:
    """Make ``ring`` the process's key ring (the app factory and commands call it at start); return it."""
    global _ring
    with _ring_lock:
        _ring = ring
    return ring


def active() -> KeyRing:
    """Return the process's key ring; the first call with none set loads it from ``Settings.from_env()``.

    Raises :class:`~gateway.config.SettingsError` naming the setting when
    the keys cannot be loaded.
    """
    global _ring
    ring = _ring
    if ring is not None:
        return ring
    with _ring_lock:
        if _ring is None:
            _ring = KeyRing.from_settings(Settings.from_env())
        return _ring


def check_database(connection) -> None:
    """Decrypt one stored envelope with the process's ring; raise if it cannot, naming the setting.

    A start-up check (:meth:`gateway.store.SqlMessageStore.from_url`): a
    key file that holds other keys than the database's (the wrong file, or a
    key removed before its rotation ended) stops the gateway at once instead
    of failing on the first read. Raises :class:`~gateway.config.SettingsError`
    naming ``GATEWAY_DATA_KEYS``; an empty or never-encrypted database passes.
    """
    from sqlalchemy import select, type_coerce

    from gateway.store.models import AcceptedMessageRow

    column = AcceptedMessageRow.__table__.c.response_body
    raw = type_coerce(column, Text)
    stored = connection.execute(select(raw).where(raw.startswith(ENVELOPE_PREFIX)).limit(1)).scalar()
    if stored is None:
        return
    try:
        active().decrypt(stored, column.type.binding)
    except DecryptionError as exc:
        raise SettingsError(f"{_SETTING}: the data keys ({active().source}) do not decrypt this database's values: "
                            f"{exc}") from None


# -- column types --------------------------------------------------------------------------------------------

class EncryptedText(TypeDecorator):
    """Text stored encrypted (an envelope, see the module docstring), bound to its table and column.

    ``binding`` is ``"table.column"``: the associated data of every value
    (tests/store/test_crypto.py checks it names the column it is on). Only
    ``IS NULL`` / ``IS NOT NULL`` compare in SQL: an envelope has a fresh
    nonce each time, so equality, order or LIKE on it would be silently
    wrong, and they raise instead.
    """

    impl = Text
    cache_ok = True

    def __init__(self, binding: str):
        super().__init__()
        self.binding = binding

    class comparator_factory(Text.Comparator):
        _ALLOWED = {operators.is_, operators.is_not}

        def operate(self, op, *other, **kwargs):
            if op not in self._ALLOWED:
                raise TypeError(f"{self.type.binding} is encrypted: compare it in Python after reading, "
                                f"or look up by a keyed hash (not {getattr(op, '__name__', op)})")
            return super().operate(op, *other, **kwargs)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self.binding}: only text is encrypted, not {type(value).__name__}")
        return active().encrypt(value, self.binding)

    def process_result_value(self, value, dialect):
        return None if value is None else active().decrypt(value, self.binding)


class KeyedHash(TypeDecorator):
    """A look-up value stored as its keyed hash: whatever is bound (insert or ``WHERE``) is hashed first."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return active().lookup_hash(value)
