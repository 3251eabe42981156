"""The broker's view of the device registry: Mosquitto's password file and ACL, rendered from the
database, swapped in atomically, then a SIGHUP so that the broker rereads them.

Only hashes are stored, in Mosquitto's own format, so both files can be rebuilt from the
database at any time. Measured on Mosquitto 2.0.11: on SIGHUP a connected client whose user
left the password file is disconnected, and one whose ACL entries are gone may no longer
publish. So each device gets its own ACL entries (not a `%u` pattern), and leaving a revoked
device out of both files locks it out, connected or not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import signal
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
from psycopg import AsyncConnection, Connection

from devices.contract import READINGS_FILTER, STATUS_FILTER, readings_topic, status_topic
from telemed.settings import Settings

log = logging.getLogger("devices.broker")

# mosquitto_passwd 2.0 writes PBKDF2-SHA512 with 101 iterations and a 12-byte salt. The device
# passwords are 192 random bits, for which iterations add nothing, while the broker pays them
# on every connect; so we write what mosquitto_passwd writes.
HASH_ITERATIONS = 101
SALT_BYTES = 12
_HASH = re.compile(r"\$7\$(?P<it>[0-9]+)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<digest>[A-Za-z0-9+/=]+)")
# A username ends up on a line of both files: no ':' (the passwd separator), no spaces.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Any lock key unique to this use; it serialises rewrites (see sync_broker).
_SYNC_LOCK = 0x7E1E_B40C

_ACTIVE_DEVICES = "SELECT id, mqtt_username, password_hash FROM devices WHERE active ORDER BY id"


class BrokerAccount(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    password_hash: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    devices: int
    reloaded: bool


# --- hashes -------------------------------------------------------------------------------


def hash_password(
    password: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None
) -> str:
    """`$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>`, as mosquitto_passwd writes it."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    match = _HASH.fullmatch(encoded)
    if match is None:
        return False
    salt, digest = base64.b64decode(match["salt"]), base64.b64decode(match["digest"])
    mine = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(match["it"]))
    return hmac.compare_digest(mine, digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- accounts and files (pure) ------------------------------------------------------------


def device_account(device_id: str, password_hash: str) -> BrokerAccount:
    """A device may publish its readings and status and read nothing."""
    return BrokerAccount(
        username=device_id,
        password_hash=password_hash,
        write=(readings_topic(device_id), status_topic(device_id)),
    )


def ingest_account(username: str, password: str, current_hash: str | None = None) -> BrokerAccount:
    """The workers' account; `current_hash` (from the file in place) is kept if it still fits,
    so that a sync changes nothing for the workers."""
    keep = current_hash is not None and verify_password(password, current_hash)
    # Mosquitto checks a shared subscription ($share/<group>/<filter>) against the ACL of the
    # plain filter, so these two lines cover every group name.
    return BrokerAccount(
        username=username,
        password_hash=current_hash if keep and current_hash else hash_password(password),
        read=(READINGS_FILTER, STATUS_FILTER),
    )


def hash_in_file(passwd: Path, username: str) -> str | None:
    try:
        lines = passwd.read_text().splitlines()
    except FileNotFoundError:
        return None
    prefix = f"{username}:"
    return next((line[len(prefix) :] for line in lines if line.startswith(prefix)), None)


def render_passwd(accounts: Sequence[BrokerAccount]) -> str:
    return "".join(f"{_checked(a.username)}:{a.password_hash}\n" for a in accounts)


def render_acl(accounts: Sequence[BrokerAccount]) -> str:
    lines = ["# Written by telemed from the device registry (telemed devices sync); do not edit."]
    for a in accounts:
        lines += ["", f"user {_checked(a.username)}"]
        lines += [f"topic read {t}" for t in a.read]
        lines += [f"topic write {t}" for t in a.write]
    return "\n".join(lines) + "\n"


def _checked(username: str) -> str:
    if _USERNAME.fullmatch(username) is None:
        raise ValueError(f"not a username the broker files can hold: {username!r}")
    return username


def accounts_from_rows(
    rows: Iterable[dict], settings: Settings, ingest_hash: str | None = None
) -> list[BrokerAccount]:
    accounts = [ingest_account(settings.ingest_username, settings.ingest_password, ingest_hash)]
    accounts += [device_account(r["mqtt_username"], r["password_hash"]) for r in rows]
    names = [a.username for a in accounts]
    if len(set(names)) != len(names):
        raise ValueError("a device has the ingest service account's username")
    return accounts


# --- files and the broker process ----------------------------------------------------------


def write_atomically(path: Path, text: str, *, mode: int = 0o640, for_broker: bool = True) -> None:
    """Replace `path` in one rename. For the broker (the default): mode 0640 and, when root,
    the folder's owner and group (the broker's user; the folder is setgid for other writers)."""
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if for_broker and os.geteuid() == 0:
                st = folder.stat()
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reload_broker(pidfile: Path) -> bool:
    """SIGHUP the broker of `pidfile`; False (with a warning) when it does not run."""
    try:
        pid = int(pidfile.read_text().strip())
        # A stale pid file must not make us signal some other process.
        if Path("/proc").is_dir() and "mosquitto" not in Path(f"/proc/{pid}/comm").read_text():
            raise ProcessLookupError(pid)
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        log.warning("broker not running (pid file %s); it reads the files when it starts", pidfile)
        return False
    return True


def apply_accounts(settings: Settings, accounts: Sequence[BrokerAccount]) -> bool:
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    # The ACL first: a new device is usable once both files have it, a removed one is shut out
    # by either, so no order opens a gap between the two writes.
    write_atomically(settings.broker_dir / "acl", render_acl(accounts))
    write_atomically(settings.broker_dir / "passwd", render_passwd(accounts))
    return reload_broker(settings.broker_pidfile)


# --- from the database -----------------------------------------------------------------------


def _ingest_hash_in_place(settings: Settings) -> str | None:
    found = hash_in_file(settings.broker_dir / "passwd", settings.ingest_username)
    if found is not None and not verify_password(settings.ingest_password, found):
        # Measured on Mosquitto 2.0.11: on the reload, a worker session whose password no
        # longer fits is cut off, offline or not, and messages published until it logs in again
        # with the new password are not queued for it.
        log.warning(
            "the ingest account's password in %s changes: every ingest worker must use the new "
            "one (TELEMED_INGEST_PASSWORD), and readings sent before they reconnect are lost",
            settings.broker_dir / "passwd",
        )
    return found


def sync_broker(conn: Connection, settings: Settings) -> SyncResult:
    """Rewrite the broker's passwd and acl from the active devices and SIGHUP the broker.

    Serialised by a transaction-level advisory lock, so that a sync that read the registry
    before another's change cannot write its older picture after it. Inside the caller's
    transaction the lock is held until that commits, and uncommitted devices of that
    transaction are included.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SYNC_LOCK,))
        rows = conn.execute(_ACTIVE_DEVICES).fetchall()
        accounts = accounts_from_rows(rows, settings, _ingest_hash_in_place(settings))
        reloaded = apply_accounts(settings, accounts)
    log.info("broker files written for %d devices", len(rows), extra={"count": len(rows)})
    return SyncResult(devices=len(rows), reloaded=reloaded)


async def sync_broker_async(conn: AsyncConnection, settings: Settings) -> SyncResult:
    """`sync_broker` for the API's async connections."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SYNC_LOCK,))
        cur = await conn.execute(_ACTIVE_DEVICES)
        rows = await cur.fetchall()
        accounts = accounts_from_rows(rows, settings, _ingest_hash_in_place(settings))
        reloaded = await asyncio.to_thread(apply_accounts, settings, accounts)
    log.info("broker files written for %d devices", len(rows), extra={"count": len(rows)})
    return SyncResult(devices=len(rows), reloaded=reloaded)
