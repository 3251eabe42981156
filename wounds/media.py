"""Who may remove a photo file, and when.

Files are written before the rows that refer to them are committed (wounds.storage), so
between the two a file has no row and looks exactly like one a crash left behind. Two things
remove files without a row, and each must never take one that an upload in flight is about to
refer to:

- a failed request removes the originals it created, unless a committed row refers to the
  same bytes; but another request may have found that original already there and be about to
  commit a row for it;
- the sweep sets aside what a crash left (photo folders and originals older than a grace period
  that no row refers to, moved to `orphans/<day>/` and pruned months later: after a restore of
  the database to an earlier point they are the only copy of photos it once accepted) and
  removes such temporary files; but an upload may reuse an old orphaned original.

So an upload holds, in the transaction that writes its files and commits its rows, a shared
advisory lock on the media folder and one on each of its originals' digests. A failed request
takes the digest's lock exclusively (one at a time, never two at once) before it asks whether a
row refers to the original; the sweep takes the folder's lock exclusively for its few queries
and moves, so it waits for the uploads in flight to commit or fail, and new ones wait for it.
The grace period keeps fresh files out of the sweep's view even without the lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
from psycopg import AsyncConnection

from telemed.db import Queries
from wounds.storage import MediaStore, Staged

log = logging.getLogger("telemed.wounds.media")
Q = Queries("wounds", folder=Path(__file__).parent / "sql")

MEDIA_LOCK: Final = 0x7E1E_0F16  # pg_advisory_*lock key of the media folder
ORIGINAL_LOCKS: Final = 0x7E1E_0F17  # first key of an original's lock; the second is its hash
GRACE_S: Final = 24 * 3600.0
ORPHANS_KEEP_DAYS: Final = 90  # set-aside files, for recovery after a restore to an earlier point
MIN_KEEP_DAYS: Final = 7
MIN_GRACE_S: Final = 3600.0  # far longer than an upload takes
LOCK_TIMEOUT: Final = "60s"  # the sweep waits this long for the uploads in flight


async def installation(conn: AsyncConnection) -> str:
    cur = await conn.execute("SELECT id::text AS id FROM installation")
    return (await cur.fetchone())["id"]


async def hold_for_upload(conn: AsyncConnection, store: MediaStore, digests: list[str]) -> None:
    """In the transaction that writes an upload's files and commits its rows: the locks, and the
    check that the media folder is this database's (storage.MediaStore.claim)."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (MEDIA_LOCK,))
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared(%s, hashtext(d))"
        " FROM (SELECT DISTINCT unnest(%s::text[]) AS d) AS digests",
        (ORIGINAL_LOCKS, digests),
    )
    await anyio.to_thread.run_sync(store.claim, await installation(conn))


async def discard(conn: AsyncConnection, store: MediaStore, staged: Staged) -> None:
    """After a failed transaction: remove this request's files; keep any original that a
    committed row refers to, or that an upload in flight is about to."""
    with anyio.CancelScope(shield=True):
        for photo_id in staged.photo_ids:
            await anyio.to_thread.run_sync(store.remove_photo_dir, photo_id)
        try:
            await conn.rollback()
            for sha256 in staged.created_originals:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (ORIGINAL_LOCKS, sha256)
                    )
                    cur = await conn.execute(Q.referenced_originals, {"digests": [sha256]})
                    if not await cur.fetchall():
                        await anyio.to_thread.run_sync(store.remove_original, sha256)
        except Exception:
            log.exception("cannot check photo references; keeping the originals")


async def sweep(
    conn: AsyncConnection,
    store: MediaStore,
    *,
    grace_s: float = GRACE_S,
    keep_days: int = ORPHANS_KEEP_DAYS,
    now: float | None = None,
) -> dict[str, Any]:
    """Set aside the photo folders and originals older than `grace_s` (at least an hour) that no
    wound_photos row refers to, remove such temporary files, and prune what was set aside more
    than `keep_days` ago; nothing at all in a folder this database has not claimed."""
    grace_s = max(grace_s, MIN_GRACE_S)
    owner, this = store.owner(), await installation(conn)
    await conn.rollback()
    if owner is None:
        log.info("nothing to sweep in %s: it has no photos yet", store.root)
        return {"skipped": "it has no photos yet"}
    if owner != this:
        why = f"it belongs to installation {owner}"
        log.warning("not sweeping the media folder %s: %s, not %s", store.root, why, this)
        return {"skipped": why}
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, UTC).date()
    found = await anyio.to_thread.run_sync(store.leftovers, now - grace_s)
    photos: set[uuid.UUID] = set()
    originals: set[str] = set()
    if found.photo_ids or found.originals or found.tmp:
        async with conn.transaction():
            await conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MEDIA_LOCK,))
            cur = await conn.execute(Q.referenced_photos, {"ids": found.photo_ids})
            photos = set(found.photo_ids) - {r["id"] for r in await cur.fetchall()}
            cur = await conn.execute(Q.referenced_originals, {"digests": found.originals})
            originals = set(found.originals) - {r["original_sha256"] for r in await cur.fetchall()}

            def set_aside() -> None:
                for photo_id in photos:
                    store.set_aside(store.photo_dir(photo_id), today)
                for sha256 in originals:
                    store.set_aside(store.original_path(sha256), today)
                for path in found.tmp:
                    store.remove_tmp(path)

            await anyio.to_thread.run_sync(set_aside)
    for photo_id in sorted(photos):
        log.warning("set aside photo folder %s: no wound photo refers to it", photo_id)
    for sha256 in sorted(originals):
        log.warning("set aside original %s: no wound photo refers to it", sha256)
    if found.tmp:
        log.warning("removed %d temporary media files", len(found.tmp))
    pruned = await anyio.to_thread.run_sync(
        store.prune_orphans, today - timedelta(days=max(keep_days, MIN_KEEP_DAYS))
    )
    if pruned:
        log.warning("removed %d days of set-aside media older than %d days", pruned, keep_days)
    return {
        "photo_dirs": len(photos),
        "originals": len(originals),
        "tmp": len(found.tmp),
        "orphan_days_pruned": pruned,
    }
