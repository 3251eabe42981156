"""A change to the device registry that the broker must hear of, made all or nothing.

Devices provisioned, revoked or given a new password change three things: the registry's rows,
the broker's account files (devices/broker.py) and the running broker's table. One transaction
holds them together, under the lock that serialises the account files:

1. the caller changes the registry's rows;
2. the lines are appended to `accounts.journal` (fsync'd), and, once the journal passes
   COMPACT_BYTES, the files are rewritten from the registry as this transaction sees it;
3. the running broker applies the lines (a control message, answered);
4. the transaction commits.

If the broker does not run, refuses the change or does not answer in time, step 2 is undone
(the journal cut back to its length before, or the replaced files put back), the transaction
rolls back, and BrokerUnavailable (503 `broker_unavailable`) says which it was. So the registry
never shows active a device the broker does not know, and the broker never keeps a device the
registry does not have. When the broker may have applied part of a change before failing (it
did not answer), it is sent SIGHUP once the files are put back, so that it rereads them.
If the commit itself fails after step 3, `registry_change` rewrites the files from the registry
and makes the broker reread them (`repair`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from devices import broker
from devices.broker import (
    ACTIVE_DEVICES,
    COMPACT_BYTES,
    JOURNAL,
    SNAPSHOT,
    SYNC_LOCK,
    BrokerUnavailable,
    device_account,
)
from devices.broker_control import (
    ADMIN_USERNAME,
    AdminRefused,
    BrokerDown,
    BrokerError,
    send_commands,
    signal_reload,
)
from telemed.db import AsyncConn, SyncConn
from telemed.errors import FieldProblem, Invalid
from telemed.settings import Settings

log = logging.getLogger("devices.broker")

# How long the broker has to answer the control login and each control message.
ANSWER_TIMEOUT_S = 10.0
# How long a broker told to reread its files (SIGHUP) has to take the control login after.
REREAD_TIMEOUT_S = 5.0


class Change:
    """The broker's side of a registry change: devices added (or given a new password) and
    removed."""

    def __init__(self) -> None:
        self.added: list[tuple[str, str]] = []
        self.removed: list[str] = []

    def add(self, device_id: str, password_hash: str) -> None:
        self.added.append((device_id, password_hash))

    def remove(self, device_id: str) -> None:
        self.removed.append(device_id)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def _lines(settings: Settings, added: Sequence[tuple[str, str]], removed: Sequence[str]) -> list:
    for device_id, _ in added:
        if device_id in (settings.ingest_username, ADMIN_USERNAME) or device_id.startswith(
            "telemed-"
        ):
            raise Invalid(
                "a device may not have a service account's name",
                [FieldProblem("device_id", "ids starting with telemed- belong to the broker's "
                              "service accounts", "reserved_device_id")],
            )  # fmt: skip
    return [device_account(d, h).line() for d, h in added] + [
        f"remove {broker._checked(d)}" for d in removed
    ]


class _Undo:
    """The account files as they were before a change, to put back."""

    def __init__(self, settings: Settings, *, whole: bool) -> None:
        folder = settings.broker_dir
        self.journal = folder / JOURNAL
        self.size = self.journal.stat().st_size if self.journal.exists() else None
        # Files about to be replaced are kept by a second name (a hard link: no copy).
        self.kept: dict[Path, Path | None] = {}
        if whole:
            for path in (folder / SNAPSHOT, self.journal):
                keep = path.with_name(f".{path.name}.undo")
                keep.unlink(missing_ok=True)
                if path.exists():
                    os.link(path, keep)
                    self.kept[path] = keep
                else:
                    self.kept[path] = None

    def restore(self) -> None:
        for path, keep in self.kept.items():
            if keep is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(keep, path)
        if self.size is not None:
            with open(self.journal, "r+b") as f:
                f.truncate(self.size)
                os.fsync(f.fileno())

    def discard(self) -> None:
        for keep in self.kept.values():
            if keep is not None:
                keep.unlink(missing_ok=True)


class _NotTaken(BrokerUnavailable):
    """The broker certainly took nothing of the change."""


def _send(settings: Settings, lines: Sequence[str]) -> None:
    send_commands(settings.mqtt_host, settings.mqtt_port, settings.broker_admin_password, lines,
                  timeout_s=ANSWER_TIMEOUT_S)  # fmt: skip


def _tell(settings: Settings, lines: Sequence[str]) -> None:
    """Have the running broker apply `lines`; BrokerUnavailable when it does not."""
    try:
        _send(settings, lines)
        return
    except BrokerDown as exc:
        raise _NotTaken(f"the broker does not run ({exc}); nothing was changed") from None
    except AdminRefused:
        # It started before its files held the control account: it rereads them on SIGHUP
        # (they hold this change too) and takes the control login after.
        log.warning("the broker does not know the admin account yet: sending it SIGHUP")
        if not signal_reload(settings.broker_pidfile):
            raise _NotTaken(
                "the broker refused the application's control login and is not a local "
                "process to tell to reread its files; nothing was changed"
            ) from None
    deadline = time.monotonic() + REREAD_TIMEOUT_S
    while True:
        time.sleep(0.2)
        try:
            _send(settings, lines)
            return
        except AdminRefused:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    "the broker refused the application's control login even after rereading "
                    "its files (is TELEMED_BROKER_ADMIN_PASSWORD the one in its files?)"
                ) from None


def _write_and_tell(settings: Settings, lines: list[str], rows: list[dict] | None) -> None:
    """Step 2 and 3 of the module's text, or neither."""
    undo = _Undo(settings, whole=rows is not None)
    sent = False
    try:
        if rows is not None and not broker.has_snapshot(settings):
            broker.write_from_rows(settings, rows)  # the first files: they hold the change
            sending = ["reload"]
        else:
            broker.append_journal(settings, lines)
            if rows is not None:
                broker.write_from_rows(settings, rows)
            sending = lines
        sent = True
        _tell(settings, sending)
    except BaseException as exc:
        undo.restore()
        reread = "the broker took none of it"
        if sent and not isinstance(exc, _NotTaken):
            # It may hold part of the change: make it reread the files, which no longer do.
            reread = "the broker was told to reread its accounts"
            if not signal_reload(settings.broker_pidfile):
                reread = ("the broker may hold part of it and could not be told to reread its "
                          "accounts: run `telemed devices sync`")  # fmt: skip
            log.error("a change the broker may have taken in part is undone; %s", reread)
        if isinstance(exc, BrokerError) and not isinstance(exc, BrokerUnavailable):
            raise BrokerUnavailable(f"{exc}; the change is undone and {reread}") from None
        raise
    undo.discard()


def _whole(settings: Settings) -> bool:
    return not broker.has_snapshot(settings) or broker.journal_size(settings) > COMPACT_BYTES


def apply_changes(
    conn: SyncConn,
    settings: Settings,
    *,
    added: Sequence[tuple[str, str]] = (),
    removed: Sequence[str] = (),
) -> None:
    """Tell the broker of devices added (`(device_id, hash)`, also for a new password) and
    removed, inside the caller's transaction (the lock is held until it ends). Raises
    BrokerUnavailable, with the files as they were, when the broker does not take them: the
    caller's transaction must then roll back."""
    lines = _lines(settings, added, removed)
    if not lines:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
        rows = conn.execute(ACTIVE_DEVICES).fetchall() if _whole(settings) else None
        _write_and_tell(settings, lines, rows)


async def _apply_async(conn: AsyncConn, settings: Settings, change: Change) -> None:
    """`apply_changes` for the API, inside `registry_change_async`."""
    lines = _lines(settings, change.added, change.removed)
    if not lines:
        return
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK,))
    rows = None
    if _whole(settings):
        cur = await conn.execute(ACTIVE_DEVICES)
        rows = await cur.fetchall()
    await asyncio.to_thread(_write_and_tell, settings, lines, rows)


def repair(settings: Settings) -> None:
    """After a commit that failed once the broker had taken its change: the files rewritten
    from the registry, and the broker made to reread them."""
    from telemed.db import connect_sync

    log.error("a registry change failed to commit after the broker took it: the broker's "
              "accounts are rewritten from the registry")  # fmt: skip
    try:
        with connect_sync(settings.dsn) as conn:
            broker.sync_broker(conn, settings)
    except Exception:
        log.critical("the broker may hold a change the registry does not: run "
                     "`telemed devices sync`", exc_info=True)  # fmt: skip


@contextmanager
def registry_change(conn: SyncConn, settings: Settings) -> Iterator[Change]:
    """A transaction whose registry changes the broker takes with it: change the rows in the
    block and note them on the Change; at its end the broker is told (or BrokerUnavailable
    rolls everything back), then the transaction commits."""
    change = Change()
    told = False
    try:
        with conn.transaction():
            yield change
            apply_changes(conn, settings, added=change.added, removed=change.removed)
            told = bool(change)
    except BaseException:
        if told:
            repair(settings)
        raise


@asynccontextmanager
async def registry_change_async(conn: AsyncConn, settings: Settings) -> AsyncIterator[Change]:
    """`registry_change` for the API's async connections. A request cancelled while the broker
    is being told waits for the answer: a change the broker took is then repaired, since the
    registry's transaction rolls back."""
    change = Change()
    told = False
    try:
        async with conn.transaction():
            yield change
            work = asyncio.ensure_future(_apply_async(conn, settings, change))
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                told = bool(change) and await _succeeded(work)
                raise
            told = bool(change)
    except BaseException:
        if told:
            await asyncio.to_thread(repair, settings)
        raise


async def _succeeded(work: asyncio.Future) -> bool:
    try:
        await work
    except BaseException:
        return False
    return True
