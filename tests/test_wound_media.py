"""The sweep of photo files a crash left without a row: what it sets aside, what it never
touches (a stored photo, a fresh file, an original an upload in flight is about to refer to, a
folder of another database), and its scheduler job, which prunes what was set aside long ago."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import anyio.to_thread
import msgspec
import psycopg
import pytest
from psycopg.rows import dict_row

from app import wiring
from app.scheduler import Scheduler
from wounds import media
from wounds.storage import MediaMismatch, MediaStore, PhotoFiles, Staged

pytest.register_assert_rewrite("tests.wound_helpers")
from tests.wound_helpers import case_body, rows, unique_jpeg, upload  # noqa: E402

pytest_plugins = ["tests.wound_helpers"]
DAY = 86400.0


def age(path, seconds: float) -> None:
    """Make a file or folder look `seconds` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def crash_leftover(store: MediaStore) -> PhotoFiles:
    """What an upload killed between writing its files and committing its rows leaves."""
    _, data, _ = unique_jpeg()
    files = PhotoFiles(
        photo_id=uuid.uuid4(),
        sha256=uuid.uuid4().hex * 2,
        original=data,
        display=b"display",
        thumbnails={240: b"t240", 100: b"t100"},
    )
    store.stage([files], Staged())
    return files


async def sweep(dsn: str, store: MediaStore, **kw) -> dict:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        return await media.sweep(conn, store, **kw)


def installation(db) -> str:
    return db.execute("SELECT id::text AS id FROM installation").fetchone()["id"]


def test_the_sweep_removes_what_a_crash_left_and_keeps_every_stored_photo(
    api, wc, db, db_dsn, media_dir
) -> None:
    r = upload(api, wc.nurse, case_body(wc.patient), [unique_jpeg()])
    assert r.status_code == 201, r.text
    (stored,) = rows(
        db, "SELECT id, original_sha256 FROM wound_photos WHERE case_id = %s", r.json()["id"]
    )
    store = MediaStore(media_dir)
    old, fresh = crash_leftover(store), crash_leftover(store)
    (store.tmp / "half-written").write_bytes(b"...")
    for path in (
        store.photo_dir(old.photo_id),
        store.original_path(old.sha256),
        store.tmp / "half-written",
        # a stored photo as old as the leftovers: its row keeps it
        store.photo_dir(stored["id"]),
        store.original_path(stored["original_sha256"]),
    ):
        age(path, 2 * DAY)

    set_aside = store.root / "orphans" / datetime.now(UTC).date().isoformat()
    swept = asyncio.run(sweep(db_dsn, store))

    assert swept == {"photo_dirs": 1, "originals": 1, "tmp": 1, "orphan_days_pruned": 0}
    assert not store.photo_dir(old.photo_id).exists()
    assert not store.original_path(old.sha256).exists()
    assert not (store.tmp / "half-written").exists()
    # Set aside, not deleted: after a restore to an earlier point they are the only copy.
    moved = set_aside / store.original_path(old.sha256).relative_to(store.root)
    assert moved.read_bytes() == old.original
    assert (set_aside / store.display_path(old.photo_id).relative_to(store.root)).exists()
    # less than a day old: perhaps an upload about to commit
    assert store.display_path(fresh.photo_id).exists()
    assert store.original_path(fresh.sha256).exists()
    assert store.display_path(stored["id"]).exists()
    assert store.original_path(stored["original_sha256"]).exists()
    photo = api.get(r.json()["photos"][0]["display_url"], headers=wc.nurse.headers)
    assert photo.status_code == 200
    assert asyncio.run(sweep(db_dsn, store)) == {
        "photo_dirs": 0, "originals": 0, "tmp": 0, "orphan_days_pruned": 0
    }  # fmt: skip


def test_the_sweep_waits_for_an_upload_that_reuses_an_orphaned_original(
    api, wc, db, db_dsn, media_dir, monkeypatch
) -> None:
    """An upload finds the same bytes already on disk, left by a crash long ago, and will refer
    to them; the sweep, which found them unreferenced, must wait for that upload's commit."""
    store = MediaStore(media_dir)
    photo = unique_jpeg()
    sha256 = hashlib.sha256(photo[1]).hexdigest()
    assert store.put_original(sha256, photo[1])
    age(store.original_path(sha256), 2 * DAY)

    locked, go = threading.Event(), threading.Event()
    real = media.hold_for_upload

    async def paused(conn, store, digests):
        await real(conn, store, digests)
        locked.set()
        await anyio.to_thread.run_sync(go.wait, 30)

    monkeypatch.setattr(media, "hold_for_upload", paused)
    with ThreadPoolExecutor(2) as pool:
        uploading = pool.submit(upload, api, wc.nurse, case_body(wc.patient), [photo])
        assert locked.wait(30), "the upload never took its locks"
        sweeping = pool.submit(asyncio.run, sweep(db_dsn, store))
        time.sleep(0.5)
        assert not sweeping.done(), "the sweep did not wait for the upload in flight"
        go.set()
        r = uploading.result(timeout=30)
        swept = sweeping.result(timeout=30)
    assert r.status_code == 201, r.text
    assert swept["originals"] == 0
    assert store.original_path(sha256).read_bytes() == photo[1]
    original = api.get(r.json()["photos"][0]["original_url"], headers=wc.nurse.headers)
    assert original.status_code == 200 and original.content == photo[1]


def test_a_folder_of_another_database_is_neither_swept_nor_written(
    api, wc, db, db_dsn, tmp_path, wound_app
) -> None:
    foreign = MediaStore(tmp_path / "media")
    foreign.claim(str(uuid.uuid4()))
    leftover = crash_leftover(foreign)
    age(foreign.photo_dir(leftover.photo_id), 2 * DAY)
    age(foreign.original_path(leftover.sha256), 2 * DAY)

    swept = asyncio.run(sweep(db_dsn, foreign))

    assert swept["skipped"].startswith("it belongs to installation ")
    assert foreign.display_path(leftover.photo_id).exists()
    with pytest.raises(MediaMismatch, match="belongs to installation"):
        foreign.claim(installation(db))
    # Nothing claimed yet (no photo written): nothing swept either.
    empty = MediaStore(tmp_path / "new")
    assert asyncio.run(sweep(db_dsn, empty)) == {"skipped": "it has no photos yet"}


def test_an_upload_into_another_databases_folder_is_refused_and_leaves_nothing(
    api, wound_app, wc, db, tmp_path
) -> None:
    import msgspec

    foreign = MediaStore(tmp_path / "media")
    foreign.claim(str(uuid.uuid4()))
    settings = wound_app.state.settings
    wound_app.state.settings = msgspec.structs.replace(settings, media_dir=foreign.root)
    try:
        r = upload(api, wc.nurse, case_body(wc.patient), [unique_jpeg()])
    finally:
        wound_app.state.settings = settings
    assert r.status_code == 500
    count = "SELECT count(*) AS n FROM wound_cases WHERE patient_id = %s"
    assert rows(db, count, wc.patient) == [{"n": 0}]
    assert not (foreign.root / "photos").exists() and not (foreign.root / "originals").exists()


def test_the_scheduler_job_sweeps_its_media_folder(db, db_dsn, settings, tmp_path) -> None:
    store = MediaStore(tmp_path / "media")
    store.claim(installation(db))
    leftover = crash_leftover(store)
    age(store.photo_dir(leftover.photo_id), 2 * DAY)

    async def run() -> dict:
        own = msgspec.structs.replace(settings, media_dir=store.root)
        scheduler = Scheduler(db_dsn, wiring.jobs(own), instance="sweeper")
        async with await psycopg.AsyncConnection.connect(db_dsn, row_factory=dict_row) as conn:
            return await scheduler.run_job(conn, "media_sweep")

    long_ago = store.root / "orphans" / "2026-01-05" / "originals"
    long_ago.mkdir(parents=True)
    (long_ago / "x").write_bytes(b"set aside in January")
    recent = store.root / "orphans" / (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
    recent.mkdir(parents=True)

    asyncio.run(run())
    (run_row,) = rows(db, "SELECT ok, result FROM job_runs WHERE instance = 'sweeper'")
    assert run_row == {
        "ok": True,
        "result": {"photo_dirs": 1, "originals": 0, "tmp": 0, "orphan_days_pruned": 1},
    }
    assert not store.photo_dir(leftover.photo_id).exists()
    assert store.original_path(leftover.sha256).exists()  # one day old at most: kept
    assert not long_ago.parent.exists() and recent.exists()  # kept for 90 days
