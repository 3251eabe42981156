"""The worker's lanes: each device's messages always go to the same lane, the same one in every
worker, so that a worker's lanes never write one patient at once (and never wait for each
other's patient locks); a patient whose lock is held up stalls only its own lane."""

from __future__ import annotations

import asyncio
import random
import string
import time
import zlib

import psycopg

from alerts import hooks
from ingest.batch import Incoming, lane_of
from ingest.inbox import Inbox
from ingest.worker import _router
from telemed.device_contract import readings_topic, status_topic
from tests.mqtt_helpers import IngestRig, message, wait_for


def _device_ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    return ["dev-" + "".join(rng.choice(alphabet) for _ in range(12)) for _ in range(n)]


def test_a_devices_lane_is_a_crc_of_its_id_the_same_for_its_topics_and_in_every_process():
    for device_id in _device_ids(200):
        expected = zlib.crc32(device_id.encode()) % 3
        assert lane_of(readings_topic(device_id), 3) == expected
        assert lane_of(status_topic(device_id), 3) == expected
        assert lane_of(readings_topic(device_id), 1) == 0
    # A fixed value: the same in every worker, whatever PYTHONHASHSEED says.
    assert lane_of(readings_topic("dev-k3j5x2abq7mn"), 2) == zlib.crc32(b"dev-k3j5x2abq7mn") % 2
    assert lane_of("not/a/device/topic", 4) == 0
    assert lane_of("telemed/v1/devices/dev-k3j5x2abq7mn/other", 4) == 0


def test_devices_spread_evenly_over_the_lanes():
    ids = _device_ids(4000, seed=11)
    for lanes in (2, 3, 4):
        counts = [0] * lanes
        for device_id in ids:
            counts[lane_of(readings_topic(device_id), lanes)] += 1
        assert all(abs(c - len(ids) / lanes) < 0.1 * len(ids) / lanes for c in counts), counts


def test_the_router_hands_each_devices_messages_to_its_lane_in_order():
    async def go() -> list[list[Incoming]]:
        loop = asyncio.get_running_loop()
        inboxes: list[Inbox[Incoming]] = [Inbox(loop) for _ in range(2)]
        deliver = _router(inboxes)
        ids = _device_ids(20)
        for k in range(400):
            device_id = ids[k % 20]
            topic = readings_topic(device_id) if k % 3 else status_topic(device_id)
            deliver(Incoming(k, 1, topic, b"{}", None, 1))
        return [inbox.take_nowait(1000) for inbox in inboxes]

    lanes = asyncio.run(go())
    assert sum(map(len, lanes)) == 400 and all(lanes)
    for number, items in enumerate(lanes):
        assert all(lane_of(i.topic, 2) == number for i in items)
        assert [i.mid for i in items] == sorted(i.mid for i in items)


def test_a_patient_held_up_stalls_only_its_own_lane(rig: IngestRig, db_dsn) -> None:
    first = rig.device()
    second = rig.device()
    while lane_of(readings_topic(second.device_id), 2) == lane_of(
        readings_topic(first.device_id), 2
    ):
        second = rig.device()
    patient = rig.db.execute(
        "SELECT patient_id FROM devices WHERE id = %s", (first.device_id,)
    ).fetchone()["patient_id"]
    rig.start(0, "--batch-ms", "200")
    links = [rig.link(first), rig.link(second)]
    with psycopg.connect(db_dsn, autocommit=False) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", hooks.patient_lock(patient))
        for n, link in enumerate(links):  # within one batch window
            link.client.publish(readings_topic(link.device_id), message(f"held-{n}"), qos=1)
        wait_for(lambda: rig.count(second.device_id) == 1, what="the other lane's reading")
        time.sleep(0.5)
        assert rig.count(first.device_id) == 0  # waiting for the patient's lock
        holder.rollback()
    wait_for(lambda: rig.count(first.device_id) == 1, what="the held patient's reading")
