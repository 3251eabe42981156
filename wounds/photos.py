"""An upload's photos: sanitised in worker threads (one bound per event loop on photos decoded
at once), written to the media store, their rows inserted; and the Struct a photo is answered
with. Used by the nurse's upload (wounds.cases) and her reply (wounds.steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from telemed.access import Actor
from telemed.db import Queries
from telemed.errors import BadRequest, DomainError, FieldProblem, Invalid, TooLarge, Unsupported
from wounds import images, media
from wounds.multipart import FilePart
from wounds.storage import MediaStore, PhotoFiles, Staged

Q = Queries("wounds", folder=Path(__file__).parent / "sql")
PHOTO_URL: Final = "/api/v1/wound-photos/{id}"
_STATUS: Final[dict[int, type[DomainError]]] = {
    400: BadRequest,
    413: TooLarge,
    415: Unsupported,
    422: Invalid,
}


class PhotoOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    position: int
    filename: str
    format: str
    width: int
    height: int
    taken_at: datetime | None
    display_url: str
    thumb_urls: dict[str, str]
    original_url: str
    event_id: int | None = None


def photo_out(row: dict[str, Any]) -> PhotoOut:
    base = PHOTO_URL.format(id=row["id"])
    return PhotoOut(
        id=row["id"],
        position=row["position"],
        filename=row["filename"],
        format=row["format"],
        width=row["width"],
        height=row["height"],
        taken_at=row["taken_at"],
        display_url=f"{base}/display",
        thumb_urls={str(size): f"{base}/thumb?size={size}" for size in row["thumb_sizes"]},
        original_url=f"{base}/original",
        event_id=row.get("event_id"),
    )


_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _limiter(threads: int) -> anyio.CapacityLimiter:
    """One bound per event loop on photos decoded at once, shared by all requests: each decode
    holds a full-size image in memory and a core busy (settings.wounds.sanitize_threads)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(threads)
    return limiter


async def sanitize_all(
    photos: list[FilePart], *, max_bytes: int, threads: int
) -> list[images.SanitizedPhoto]:
    """Sanitise every photo in worker threads, at most `threads` at once in this process; one
    error naming each bad photo, or all results."""
    results: list[images.SanitizedPhoto | images.PhotoError | None] = [None] * len(photos)
    limiter = _limiter(threads)

    async def one(part: FilePart) -> None:
        job = functools.partial(images.sanitize, part.data, max_bytes=max_bytes)
        try:
            results[part.index] = await anyio.to_thread.run_sync(job, limiter=limiter)
        except images.PhotoError as exc:
            results[part.index] = exc

    async with anyio.create_task_group() as tg:
        for part in photos:
            tg.start_soon(one, part)
    failed = [
        (part, result)
        for part, result in zip(photos, results, strict=True)
        if isinstance(result, images.PhotoError)
    ]
    if failed:
        detail = "; ".join(f"{part.label}: {error.detail}" for part, error in failed)
        problems = [FieldProblem(part.field, f"{e.code}: {e.detail}", e.code) for part, e in failed]
        raise _STATUS.get(failed[0][1].http_status, Invalid)(detail, problems)
    return [r for r in results if isinstance(r, images.SanitizedPhoto)]


@contextlib.asynccontextmanager
async def written(
    conn: AsyncConnection,
    store: MediaStore,
    parts: list[FilePart],
    clean: list[images.SanitizedPhoto],
) -> AsyncIterator[list[uuid.UUID]]:
    """A transaction that holds the media locks and has the photos' files written, for the
    caller to add the rows that refer to them; if anything fails, the files are removed
    (media.discard). Yields the new photo ids."""
    staged = Staged()
    try:
        async with conn.transaction():
            await media.hold_for_upload(conn, store, [c.sha256 for c in clean])
            yield await store_photos(store, parts, clean, staged)
    except BaseException:
        await media.discard(conn, store, staged)
        raise


async def store_photos(
    store: MediaStore, parts: list[FilePart], clean: list[images.SanitizedPhoto], staged: Staged
) -> list[uuid.UUID]:
    files = [
        PhotoFiles(
            photo_id=uuid.uuid4(),
            sha256=s.sha256,
            original=p.data,
            display=s.display,
            thumbnails=s.thumbnails,
        )
        for p, s in zip(parts, clean, strict=True)
    ]
    await anyio.to_thread.run_sync(store.stage, files, staged)
    return [f.photo_id for f in files]


async def insert_photos(
    conn: AsyncConnection,
    actor: Actor,
    case_id: uuid.UUID,
    event_id: int,
    ids: list[uuid.UUID],
    parts: list[FilePart],
    clean: list[images.SanitizedPhoto],
    now: datetime,
) -> list[dict[str, Any]]:
    cur = await conn.execute(Q.next_position, {"case_id": case_id})
    first = (await cur.fetchone())["position"]
    rows = [
        {
            "id": pid,
            "case_id": case_id,
            "event_id": event_id,
            "position": first + i,
            "filename": part.filename,
            "original_sha256": s.sha256,
            "original_bytes": len(part.data),
            "format": s.format,
            "mime": s.mime,
            "width": s.width,
            "height": s.height,
            "display_width": s.display_width,
            "display_height": s.display_height,
            "thumb_sizes": sorted(s.thumbnails, reverse=True),
            "taken_at": s.taken_at,
            "taken_at_zone_assumed": s.taken_at_zone_assumed,
            "at": now,
            "by": actor.user_id,
        }
        for i, (pid, part, s) in enumerate(zip(ids, parts, clean, strict=True))
    ]
    async with conn.cursor() as c:
        await c.executemany(Q.insert_photo, rows)
    return rows
