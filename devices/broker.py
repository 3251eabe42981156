"""The broker's view of the device registry, kept by Mosquitto's telemed_auth plugin
(devices/broker_plugin/; its account files are read by accounts.c).

The plugin checks every login (password, and the client id: a device's is its own id), every
publish and every subscribe (a device may publish to its own two topics and subscribe to
nothing; only the ingest account may subscribe to the device topics, shared or not). It holds
the accounts in memory and reads them at start from two files in the broker folder:

- `accounts`, a snapshot of every account (`add <kind> <username> <$7$ hash>` lines), written
  whole by `sync_broker` from the database;
- `accounts.journal`, the changes since that snapshot, one appended line per provisioned or
  revoked device, tagged with the snapshot's generation.

A change appends to the journal and sends the same lines to the running broker as a control
message (devices/broker_control.py), which updates its table and disconnects a removed
device at once; devices/broker_change.py makes that and the registry's change one, all or
nothing. Nothing is rewritten or reloaded per device, so a change costs the broker the same at
100 devices as at 100,000; a full `sync_broker` (a reload) is an operator's repair.

Only hashes are stored, in Mosquitto's own format, so both files can be rebuilt from the
database at any time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from devices.broker_control import (
    ADMIN_USERNAME,
    AdminRefused,
    BrokerDown,
    BrokerError,
    send_commands,
    signal_reload,
)
from telemed.db import AsyncConn, SyncConn
from telemed.errors import Unavailable
from telemed.settings import Settings

log = logging.getLogger("devices.broker")

# mosquitto_passwd 2.0 writes PBKDF2-SHA512 with 101 iterations and a 12-byte salt. The device
# passwords are 192 random bits, for which iterations add nothing, while the broker pays them
# on a device's first login; so we write what mosquitto_passwd writes.
HASH_ITERATIONS = 101
SALT_BYTES = 12
_HASH = re.compile(r"\$7\$(?P<it>[0-9]+)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<digest>[A-Za-z0-9+/=]+)")
# A username ends up in topics, log lines and the plugin's files: no spaces, no wildcards.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Any lock key unique to this use; it serialises the account files (see sync_broker).
SYNC_LOCK = 0x7E1E_B40C
SNAPSHOT = "accounts"
JOURNAL = "accounts.journal"
# Past this, the next change also writes a fresh snapshot (files only; the broker already has
# every change), so that a broker start does not replay a long journal.
COMPACT_BYTES = 8 << 20

ACTIVE_DEVICES = "SELECT id, mqtt_username, password_hash FROM devices WHERE active ORDER BY id"

Kind = Literal["device", "ingest", "admin"]


class BrokerAccount(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    password_hash: str
    kind: Kind = "device"

    def line(self) -> str:
        return f"add {self.kind} {_checked(self.username)} {self.password_hash}"


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    devices: int
    reloaded: bool


class BrokerUnavailable(Unavailable):
    """The broker did not take a change: it does not run, refused it or did not answer.
    Answered 503 with the code `broker_unavailable`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after_s=5, code="broker_unavailable")


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


def _checked(username: str) -> str:
    if _USERNAME.fullmatch(username) is None:
        raise ValueError(f"not a username the broker can hold: {username!r}")
    return username


# --- accounts (pure) -----------------------------------------------------------------------


def device_account(device_id: str, password_hash: str) -> BrokerAccount:
    """A device may publish its readings and status and subscribe to nothing."""
    return BrokerAccount(username=device_id, password_hash=password_hash, kind="device")


def service_account(
    kind: Kind, username: str, password: str, current_hash: str | None = None
) -> BrokerAccount:
    """The ingest or admin account; `current_hash` (from the snapshot in place) is kept while
    it fits the password, so that a sync changes nothing for the connected workers."""
    keep = current_hash is not None and verify_password(password, current_hash)
    return BrokerAccount(
        username=username,
        password_hash=current_hash if keep and current_hash else hash_password(password),
        kind=kind,
    )


def accounts_from_rows(
    rows: Iterable[dict], settings: Settings, current: dict[str, str] | None = None
) -> list[BrokerAccount]:
    current = current or {}
    accounts = [
        service_account("admin", ADMIN_USERNAME, settings.broker_admin_password,
                        current.get(ADMIN_USERNAME)),
        service_account("ingest", settings.ingest_username, settings.ingest_password,
                        current.get(settings.ingest_username)),
    ]  # fmt: skip
    accounts += [device_account(r["mqtt_username"], r["password_hash"]) for r in rows]
    names = [a.username for a in accounts]
    if len(set(names)) != len(names):
        raise ValueError("a device has the username of a service account")
    return accounts


def render_snapshot(accounts: Sequence[BrokerAccount], generation: str) -> str:
    lines = [f"telemed-accounts 1 {generation}"]
    lines += ["# Written by telemed from the device registry (telemed devices sync); do not edit."]
    lines += [a.line() for a in accounts]
    return "\n".join(lines) + "\n"


def hashes_in_snapshot(path: Path) -> dict[str, str]:
    """username -> hash of the service accounts in the snapshot in place."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    found = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 4 and parts[0] == "add" and parts[1] != "device":
            found[parts[2]] = parts[3]
    return found


# --- files -----------------------------------------------------------------------------------


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


def write_files(settings: Settings, accounts: Sequence[BrokerAccount]) -> str:
    """A new snapshot and an empty journal of a new generation; the generation. In this order:
    a broker starting in between reads the new snapshot and ignores the old journal, whose
    changes the new snapshot already holds."""
    folder = settings.broker_dir
    folder.mkdir(parents=True, exist_ok=True)
    generation = uuid.uuid4().hex
    write_atomically(folder / SNAPSHOT, render_snapshot(accounts, generation))
    write_atomically(folder / JOURNAL, f"telemed-journal 1 {generation}\n")
    return generation


def append_journal(settings: Settings, lines: Sequence[str]) -> int:
    """Append `lines` to the journal in one write, on disk before the broker hears of them; its
    new size. A last line left without its newline (a write cut short) is ended first, so that
    the new lines are never glued to it."""
    with open(settings.broker_dir / JOURNAL, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        text = "".join(f"{line}\n" for line in lines).encode()
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                log.error("the broker's journal ended in an unfinished line; it is ended now")
                text = b"\n" + text
        os.write(f.fileno(), text)
        os.fsync(f.fileno())
        return end + len(text)


# --- telling the broker ------------------------------------------------------------------------


def notify_broker(settings: Settings, lines: Sequence[str]) -> bool:
    """Send `lines` to the running broker; False when none runs (it reads the files when it
    starts). A broker that does not know the admin account yet is told to reread the files
    with SIGHUP. A broker that refuses or does not answer raises BrokerUnavailable."""
    try:
        send_commands(settings.mqtt_host, settings.mqtt_port, settings.broker_admin_password, lines)
    except BrokerDown as exc:
        log.warning("%s; it reads the account files when it starts", exc)
        return False
    except AdminRefused:
        log.warning("the broker does not know the admin account yet: sending it SIGHUP")
        return signal_reload(settings.broker_pidfile)
    except BrokerError as exc:
        raise BrokerUnavailable(
            f"the broker's account files are written from the registry, but {exc}; "
            "run `telemed devices sync` again once the broker answers"
        ) from None
    return True


def _full_sync(settings: Settings, rows: list[dict]) -> bool:
    write_from_rows(settings, rows)
    return notify_broker(settings, ["reload"])


def write_from_rows(settings: Settings, rows: list[dict]) -> None:
    """New account files of the service accounts and `rows` (the active devices)."""
    current = hashes_in_snapshot(settings.broker_dir / SNAPSHOT)
    ingest = current.get(settings.ingest_username)
    if ingest is not None and not verify_password(settings.ingest_password, ingest):
        # The plugin disconnects every connection of an account whose password changes.
        log.warning(
            "the ingest account's password changes: every ingest worker must use the new one "
            "(TELEMED_INGEST_PASSWORD) and is disconnected until it does",
        )
    write_files(settings, accounts_from_rows(rows, settings, current))


def has_snapshot(settings: Settings) -> bool:
    return (settings.broker_dir / SNAPSHOT).exists() and (settings.broker_dir / JOURNAL).exists()


def sync_broker(conn: SyncConn, settings: Settings) -> SyncResult:
    """Rewrite the account files from the active devices and make the broker reread them
    (removed or changed accounts are disconnected).

    Serialised by a transaction-level advisory lock, so that a sync that read the registry
    before another's change cannot write its older picture after it. Inside the caller's
    transaction the lock is held until that commits, and uncommitted devices of that
    transaction are included.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
        rows = conn.execute(ACTIVE_DEVICES).fetchall()
        reloaded = _full_sync(settings, rows)
    log.info("broker accounts written for %d devices", len(rows), extra={"count": len(rows)})
    return SyncResult(devices=len(rows), reloaded=reloaded)


async def sync_broker_async(conn: AsyncConn, settings: Settings) -> SyncResult:
    """`sync_broker` for the API's async connections."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
        cur = await conn.execute(ACTIVE_DEVICES)
        rows = await cur.fetchall()
        reloaded = await asyncio.to_thread(_full_sync, settings, rows)
    log.info("broker accounts written for %d devices", len(rows), extra={"count": len(rows)})
    return SyncResult(devices=len(rows), reloaded=reloaded)


def journal_size(settings: Settings) -> int:
    try:
        return (settings.broker_dir / JOURNAL).stat().st_size
    except FileNotFoundError:
        return 0
