"""Danish CPR numbers: shape validation, and how they are stored (encrypted, with a keyed hash
for uniqueness and look-up). Never logged, never in a URL.

The modulus-11 check is not used: since 2007 CPR numbers are issued that fail it
(CPR-kontoret). We check ten digits, a real date, and the century given by the 7th digit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from datetime import date

import msgspec
from psycopg.rows import dict_row, tuple_row

from telemed.db import AsyncConn, SyncConn, one_row

_CPR = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d{4})$")


class CprError(ValueError):
    pass


def _century(yy: int, digit7: int) -> int:
    if digit7 <= 3:
        return 1900
    if digit7 in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def normalise_cpr(value: str) -> str:
    """Return the ten digits of a CPR number written as DDMMYYSSSS or DDMMYY-SSSS."""
    m = _CPR.match(value.strip())
    if not m:
        raise CprError("must be ten digits, DDMMYYSSSS or DDMMYY-SSSS")
    return "".join(m.groups())


def birth_date(cpr: str) -> date:
    digits = normalise_cpr(cpr)
    dd, mm, yy, d7 = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    try:
        return date(_century(yy, d7) + yy, mm, dd)
    except ValueError:
        raise CprError("the first six digits are not a valid date") from None


# ------------------------------------------------------------------------------- storage
#
# A CPR number is stored as three columns of `patients`: `cpr_enc`, the number encrypted with
# AES-256-GCM (a fresh 96-bit nonce, then ciphertext and tag; the key id and the column's name
# are authenticated data); `cpr_key`, the id of the key it was encrypted with; and `cpr_hmac`,
# HMAC-SHA256 of the ten digits under a separate look-up key, which carries the UNIQUE
# constraint and finds a patient by number. CPR numbers are few enough to try them all, so
# whoever holds the look-up key can find a number from its hash: that key is as secret as the
# other. Key rotation: docs/deployment.md, "CPR numbers".

_AAD = b"telemed patients.cpr v1 "
_FINGERPRINT = b"telemed cpr look-up key fingerprint v1"


class CprKeyError(RuntimeError):
    """The keys configured cannot serve this database's CPR numbers."""


class CprKeys(msgspec.Struct, frozen=True, kw_only=True):
    current: str  # id of the encryption key new numbers get
    encryption: dict[str, bytes]  # key id -> 32-byte AES-256 key; old ones still decrypt
    lookup: bytes  # 32-byte HMAC-SHA256 key

    def __repr__(self) -> str:
        return f"CprKeys(current={self.current!r}, ids={sorted(self.encryption)})"

    @property
    def fingerprint(self) -> bytes:
        return hmac.new(self.lookup, _FINGERPRINT, hashlib.sha256).digest()


_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def _key_bytes(text: str, what: str) -> bytes:
    text = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes (base64 of 32 random bytes), not {len(raw)}")
    return raw


def parse_keys(encryption: str, lookup: str) -> CprKeys:
    """Keys from TELEMED_CPR_KEYS ("id:base64,id:base64", the first encrypts new numbers)
    and TELEMED_CPR_LOOKUP_KEY (base64)."""
    keys: dict[str, bytes] = {}
    for item in encryption.split(","):
        key_id, sep, value = item.strip().partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError("TELEMED_CPR_KEYS: each key is id:base64, the id [A-Za-z0-9_.-]")
        if key_id in keys:
            raise ValueError(f"TELEMED_CPR_KEYS: key id {key_id!r} given twice")
        keys[key_id] = _key_bytes(value, f"TELEMED_CPR_KEYS key {key_id!r}")
    lookup_key = _key_bytes(lookup, "TELEMED_CPR_LOOKUP_KEY")
    if lookup_key in keys.values():
        raise ValueError("TELEMED_CPR_LOOKUP_KEY must differ from every encryption key")
    return CprKeys(current=next(iter(keys)), encryption=keys, lookup=lookup_key)


def local_keys(secret: str) -> CprKeys:
    """Keys derived from the local instance's secret (development and tests only)."""

    def derive(label: bytes) -> bytes:
        return hmac.new(secret.encode(), label, hashlib.sha256).digest()

    return CprKeys(
        current="local",
        encryption={"local": derive(b"telemed cpr encryption v1")},
        lookup=derive(b"telemed cpr look-up v1"),
    )


def lookup_hash(keys: CprKeys, cpr: str) -> bytes:
    return hmac.new(keys.lookup, normalise_cpr(cpr).encode(), hashlib.sha256).digest()


def seal(keys: CprKeys, cpr: str) -> dict[str, object]:
    """The columns that store one CPR number."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    digits = normalise_cpr(cpr)
    nonce = os.urandom(12)
    sealed = AESGCM(keys.encryption[keys.current]).encrypt(
        nonce, digits.encode(), _AAD + keys.current.encode()
    )
    return {
        "cpr_hmac": lookup_hash(keys, digits),
        "cpr_enc": nonce + sealed,
        "cpr_key": keys.current,
    }


def reveal(keys: CprKeys, cpr_enc: bytes, cpr_key: str) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = keys.encryption.get(cpr_key)
    if key is None:
        raise CprKeyError(f"no CPR encryption key with id {cpr_key!r} is configured")
    try:
        return AESGCM(key).decrypt(cpr_enc[:12], cpr_enc[12:], _AAD + cpr_key.encode()).decode()
    except InvalidTag:
        raise CprKeyError(f"a CPR number does not decrypt with key {cpr_key!r}") from None


_KEY_MISMATCH = (
    "the CPR look-up key configured is not the one this database's CPR numbers were hashed "
    "with, so a number could be registered twice; nothing was stored "
    "(docs/deployment.md, CPR numbers)"
)
_CLAIM_KEY = "INSERT INTO cpr_lookup_key (fingerprint) VALUES (%s) ON CONFLICT DO NOTHING"
_KEY_IN_USE = "SELECT fingerprint FROM cpr_lookup_key"
_KEY_CLAIMED = "the CPR look-up key just claimed"


async def protect(conn: AsyncConn, keys: CprKeys, cpr: str | None) -> dict[str, object]:
    """The columns for `cpr` (`seal`; all None without a number), once the look-up key is known
    to be this database's (the first number stored makes it so). Call inside the transaction
    that stores the number."""
    if cpr is None:
        return {"cpr_hmac": None, "cpr_enc": None, "cpr_key": None}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_CLAIM_KEY, (keys.fingerprint,))
        await cur.execute(_KEY_IN_USE)
        in_use = one_row(await cur.fetchone(), _KEY_CLAIMED)["fingerprint"]
    if bytes(in_use) != keys.fingerprint:
        raise CprKeyError(_KEY_MISMATCH)
    return seal(keys, cpr)


def claim_lookup_key(conn: SyncConn, keys: CprKeys) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_CLAIM_KEY, (keys.fingerprint,))
        in_use = one_row(cur.execute(_KEY_IN_USE).fetchone(), _KEY_CLAIMED)["fingerprint"]
    if bytes(in_use) != keys.fingerprint:
        raise CprKeyError(_KEY_MISMATCH)


def encrypt_plaintext(conn: SyncConn, keys: CprKeys | None) -> int:
    """Move the CPR numbers of the plain-text column into the protected ones (the data step
    of migration 0062, in its transaction); returns how many."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT id, cpr FROM patients WHERE cpr IS NOT NULL ORDER BY id FOR UPDATE"
        ).fetchall()
        if not rows:
            return 0
        if keys is None:
            raise CprKeyError("plain-text CPR numbers to encrypt, and no CPR keys given")
        claim_lookup_key(conn, keys)
        cur.executemany(
            "UPDATE patients SET cpr = NULL, cpr_hmac = %(cpr_hmac)s, cpr_enc = %(cpr_enc)s, "
            "cpr_key = %(cpr_key)s WHERE id = %(id)s",
            [{"id": pid, **seal(keys, cpr)} for pid, cpr in rows],
        )
    return len(rows)


def rotate(conn: SyncConn, keys: CprKeys) -> dict[str, int]:
    """Re-encrypt every stored number with the current encryption key and rehash it with the
    current look-up key, in one transaction; the look-up key recorded becomes this one.
    Decrypting needs every key id still in use among `keys.encryption`."""
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT id, cpr_enc, cpr_key FROM patients WHERE cpr_enc IS NOT NULL "
            "ORDER BY id FOR UPDATE"
        ).fetchall()
        sealed = [{"id": pid, **seal(keys, reveal(keys, enc, kid))} for pid, enc, kid in rows]
        cur.execute("DELETE FROM cpr_lookup_key")
        cur.execute(_CLAIM_KEY, (keys.fingerprint,))
        # Out of the way first, so that no new hash meets an old one in the unique index.
        cur.execute(
            "UPDATE patients SET cpr_hmac = NULL, cpr_enc = NULL, cpr_key = NULL "
            "WHERE cpr_enc IS NOT NULL"
        )
        cur.executemany(
            "UPDATE patients SET cpr_hmac = %(cpr_hmac)s, cpr_enc = %(cpr_enc)s, "
            "cpr_key = %(cpr_key)s WHERE id = %(id)s",
            sealed,
        )
    return {"patients": len(rows)}
