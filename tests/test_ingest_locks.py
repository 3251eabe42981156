"""The patient locks of the ingest transactions (alerts.hooks.lock_patients) and how the writer
bounds them: each transaction locks exactly its patients whose rules look back, so two
transactions wait for each other only when they share a patient; and a batch of more devices
than one transaction may lock is written in parts, each device's messages in one part."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts import hooks
from devices.provisioning import provision
from ingest import writer as writer_module
from ingest.batch import Incoming, by_devices
from ingest.writer import Writer
from telemed import readings
from telemed.device_contract import readings_topic
from tests.alert_helpers import ago, connect, row
from tests.mqtt_helpers import message, wait_for


def test_a_patients_lock_key_is_the_low_32_bits_of_its_id_as_a_signed_int4() -> None:
    for _ in range(1000):
        patient = uuid.uuid4()
        space, key = hooks.patient_lock(patient)
        assert space == hooks.LOCK_SPACE
        assert -(2**31) <= key < 2**31
        assert key % 2**32 == patient.int % 2**32
    assert hooks.patient_key(uuid.UUID(int=0xFFFF_FFFF)) == -1
    assert hooks.patient_key(uuid.UUID(int=(5 << 64) | 0x7FFF_FFFF)) == 2**31 - 1


def _item(device: str, n: int) -> Incoming:
    return Incoming(n, 1, readings_topic(device), b"{}", None, 1)


def test_a_batch_is_cut_into_parts_of_at_most_so_many_devices_each_device_in_one() -> None:
    devices = [f"dev-{c * 12}" for c in "abcde"]
    batch = [_item(devices[i % 5], i) for i in range(23)]
    batch.insert(7, Incoming(99, 1, "not/a/device/topic", b"{}", None, 1))
    parts = by_devices(batch, 2)
    assert len(parts) == 3
    seen: dict[str, int] = {}
    for index, part in enumerate(parts):
        ids = {item.topic for item in part if item.topic.startswith("telemed/")}
        assert len(ids) <= 2
        for topic in ids:
            assert seen.setdefault(topic, index) == index, "a device in two parts"
    assert sorted(i.mid for p in parts for i in p) == sorted(i.mid for i in batch)
    for part in parts:  # the batch's order within each part
        order = [batch.index(i) for i in part]
        assert order == sorted(order)
    assert by_devices(batch, 5) == [batch]
    assert by_devices([], 5) == [[]]


async def _held_keys(conn: psycopg.AsyncConnection) -> set[int]:
    cur = await conn.execute(
        "SELECT objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND pid = pg_backend_pid() AND objsubid = 2 AND classid = %s::bigint::oid",
        (hooks.LOCK_SPACE,),
    )
    return {r["k"] - 2**32 if r["k"] >= 2**31 else r["k"] for r in await cur.fetchall()}


def _store_open(
    dsn: str, rows: list, then: Callable[[psycopg.AsyncConnection], Awaitable[None]]
) -> None:
    """Store the rows in a transaction and await `then` in it before it commits."""

    async def go() -> None:
        conn = await connect(dsn)
        async with conn, conn.transaction():
            await readings.store(conn, rows)
            await then(conn)

    asyncio.run(go())


def test_a_transaction_locks_exactly_the_patients_whose_rules_look_back(
    db_dsn, db, care, factory
) -> None:
    patients = [factory.patient(care.hospital, program="copd") for _ in range(3)]
    unenrolled = factory.patient(care.hospital)
    n = care.nurse.id
    rows = [row(p, "spo2", 95, ago(minutes=5), n) for p in patients]
    rows += [row(p, "weight", 80, ago(minutes=5), n) for p in patients]
    rows.append(row(unenrolled, "spo2", 95, ago(minutes=5), n))
    held: list[set[int]] = []

    async def note(conn: psycopg.AsyncConnection) -> None:
        held.append(await _held_keys(conn))

    _store_open(db_dsn, rows, note)
    assert held == [{hooks.patient_key(p) for p in patients}]


def _sharing_an_old_stripe(factory, org) -> tuple[uuid.UUID, uuid.UUID]:
    """Two patients whose ids have the same low 10 bits: the same one of the 1,024 stripes
    that were locked before the locks were per patient."""
    seen: dict[int, uuid.UUID] = {}
    for _ in range(400):
        p = factory.patient(org, program="copd")
        other = seen.setdefault(p.int % 1024, p)
        if other != p:
            return other, p
    raise AssertionError("no two patients of 400 share a stripe")


def test_transactions_of_different_patients_do_not_wait_for_each_other(
    db_dsn, db, care, factory
) -> None:
    first, second = _sharing_an_old_stripe(factory, care.hospital)
    assert hooks.patient_key(first) != hooks.patient_key(second)
    n = care.nurse.id
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def hold() -> None:
        async def wait(_conn: psycopg.AsyncConnection) -> None:
            holding.set()
            await asyncio.to_thread(release.wait, 30)

        _store_open(db_dsn, [row(first, "spo2", 95, ago(minutes=5), n)], wait)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)

        async def attempt(patient: uuid.UUID) -> None:
            conn = await connect(db_dsn)
            async with conn:
                await conn.execute("SET lock_timeout = '500ms'")
                async with conn.transaction():
                    await readings.store(conn, [row(patient, "spo2", 94, ago(minutes=4), n)])

        asyncio.run(attempt(second))  # its own patient: no wait
        with pytest.raises(psycopg.errors.LockNotAvailable):
            asyncio.run(attempt(first))  # the same patient: waits for the holder
        outcome["done"] = True
    finally:
        release.set()
        holder.join(30)
    assert outcome == {"done": True}


def test_a_batch_of_more_devices_than_a_transaction_takes_is_written_in_parts(
    db_dsn, db, care, factory, monkeypatch
) -> None:
    monkeypatch.setattr(writer_module, "MAX_DEVICES", 2)
    patients = [factory.patient(care.hospital, program="copd") for _ in range(5)]
    devices = [provision(db, patient_id=p, kind="copd_kit").device_id for p in patients]
    at = datetime.now(UTC) - timedelta(hours=1)
    batch = [
        Incoming(
            k,
            1,
            readings_topic(devices[k % 5]),
            message(f"part-{k}", (("spo2", 95, "%"), ("pulse", 70, "bpm")), measured_at=at),
            None,
            1,
        )
        for k in range(15)
    ]
    batch.append(Incoming(99, 1, readings_topic("dev-unknown00000"), b"{}", None, 1))

    async def write() -> writer_module.Outcome:
        w = Writer(db_dsn, application_name="test-parts")
        try:
            return await w.commit(batch, datetime.now(UTC))
        finally:
            await w.close()

    outcome = asyncio.run(write())
    assert (outcome.stored, outcome.rejected) == (30, 1)
    rows = db.execute(
        "SELECT device_id, received_at FROM readings WHERE device_id = ANY(%s)", (devices,)
    ).fetchall()
    assert len(rows) == 30
    transactions: dict[datetime, set[str]] = {}
    for r in rows:
        transactions.setdefault(r["received_at"], set()).add(r["device_id"])
    assert len(transactions) == 3 and all(len(d) <= 2 for d in transactions.values())
    assert sorted(len(d) for d in transactions.values()) == [1, 2, 2]


CRASHING_WRITER = """
import asyncio, sys, uuid
from datetime import UTC, datetime, timedelta
from app.wiring import register_reading_hooks
from ingest.writer import Writer
from telemed import readings
from tests.alert_helpers import row

register_reading_hooks()
dsn, name, patient, nurse, space, other = sys.argv[1:]

async def main():
    writer = Writer(dsn, application_name=name)
    conn = await writer._connection()
    at = datetime.now(UTC) - timedelta(minutes=5)
    async with conn.transaction():
        await readings.store(conn, [row(uuid.UUID(patient), "spo2", 95, at, uuid.UUID(nurse))])
        print("holding", flush=True)
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (int(space), int(other)))

asyncio.run(main())
"""


def test_a_writer_killed_while_it_waits_frees_the_patients_it_locked(
    db_dsn, db, care, factory
) -> None:
    """A worker killed (kill -9) in the middle of a transaction must not leave its database
    session holding patient locks: other workers would wait for those patients. A session
    whose client is gone only notices when it next reads from the socket, which a session
    waiting for a lock (or running a long statement) does not; the writer's sessions check for
    a closed client every second (client_connection_check_interval)."""
    import os
    import signal
    import subprocess
    import sys

    from telemed.settings import REPO_ROOT

    blocked = factory.patient(care.hospital, program="copd")
    name = f"test-crash-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_dsn, autocommit=False) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", hooks.patient_lock(blocked))
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASHING_WRITER, db_dsn, name, str(care.patient),
             str(care.nurse.id), str(hooks.LOCK_SPACE), str(hooks.patient_key(blocked))],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"

            def waiting() -> bool:
                return (
                    db.execute(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = %s"
                        " AND wait_event_type = 'Lock'",
                        (name,),
                    ).fetchone()["n"]
                    == 1
                )

            wait_for(waiting, timeout=10, what="the writer to wait for the held patient")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

            def freed() -> bool:
                with psycopg.connect(db_dsn, autocommit=False) as probe:
                    got = probe.execute(
                        "SELECT pg_try_advisory_xact_lock(%s, %s)", hooks.patient_lock(care.patient)
                    ).fetchone()[0]
                    probe.rollback()
                    return got

            wait_for(freed, timeout=5, what="the killed writer's patient lock to be freed")
        finally:
            if proc.poll() is None:
                proc.kill()
            holder.rollback()
