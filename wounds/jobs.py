"""The wounds' scheduler jobs (telemed.jobs.Job): escalate the cases whose answer is overdue,
and sweep the photo files a crash left without a row (wounds.media.sweep)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from telemed.jobs import Job
from telemed.settings import Settings
from wounds import media, steps
from wounds.storage import MediaStore


def jobs(settings: Settings) -> list[Job]:
    every = settings.scheduler
    store = MediaStore(settings.media_dir)
    grace_s = settings.wounds.sweep_grace_h * 3600
    keep_days = settings.wounds.orphans_keep_days

    async def sweep(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
        return await media_sweep(conn, now, store, grace_s=grace_s, keep_days=keep_days)

    return [
        Job("wound_escalations", every.wound_escalations_s, escalations),
        Job("media_sweep", every.media_sweep_s, sweep),
    ]


async def escalations(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    return {"wound_cases": await steps.escalate_overdue(conn, now=now)}


async def media_sweep(
    conn: AsyncConnection,
    now: datetime,
    store: MediaStore,
    *,
    grace_s: float = media.GRACE_S,
    keep_days: int = media.ORPHANS_KEEP_DAYS,
) -> dict[str, Any]:
    """Set aside the wound photo files a crash left without a row, and prune what was set aside
    long ago (wounds.media.sweep)."""
    return await media.sweep(conn, store, grace_s=grace_s, keep_days=keep_days, now=now.timestamp())
