"""History rules (sustained bands, baselines, changes) give the same alerts however a patient's
readings are split: two real ingest workers on the shared subscription, each holding part of
the patient's readings in concurrent transactions, in measured order or shuffled, against a
single ordered pass (one reading at a time, in measured order) and a single transaction."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from devices.broker import sync_broker
from devices.provisioning import provision
from ingest.batch import lane_of
from telemed.device_contract import readings_topic
from tests.alert_helpers import row, store
from tests.mqtt_helpers import IngestRig, message, wait_for

ROUNDS = 24
MESSAGES = 12
SEED = 20261207

# Around the severe stratum's limits: SpO2 red < 88, yellow < 90 held for two readings, a drop
# of 3 points under the median; pulse yellow outside 50-100 held for two readings, red outside
# 40-120; weight a change of 2 kg within 72 hours.
SPO2 = (85, 89, 89.5, 91, 93, 94, 96, 97)
PULSE = (45, 60, 72, 104, 108, 125)
WEIGHT = (78.0, 79.0, 80.0, 80.5, 81.0, 82.5)


Kit = tuple[str, datetime, list[tuple[str, float, str]]]


def _kits(rng: random.Random, start: datetime) -> list[Kit]:
    return [
        (
            f"k-{i:02d}",
            start + timedelta(hours=5 * i),
            [
                ("spo2", rng.choice(SPO2), "%"),
                ("pulse", rng.choice(PULSE), "bpm"),
                ("weight", rng.choice(WEIGHT), "kg"),
            ],
        )
        for i in range(MESSAGES)
    ]


def _alerts(db: psycopg.Connection, patient: uuid.UUID) -> list[tuple]:
    rows = db.execute(
        "SELECT rule_key, severity, count, first_measured_at, last_measured_at, last_value "
        "FROM alerts WHERE patient_id = %s AND state <> 'resolved' ORDER BY rule_key",
        (patient,),
    ).fetchall()
    return [tuple(r.values()) for r in rows]


def _withdrawn_only(db: psycopg.Connection, patient: uuid.UUID) -> bool:
    """Resolved alerts of the split run may only be ones whose every reading was withdrawn."""
    rows = db.execute(
        "SELECT resolved_by, resolution_note FROM alerts "
        "WHERE patient_id = %s AND state = 'resolved'",
        (patient,),
    ).fetchall()
    return all(r["resolved_by"] is None and "withdrawn" in r["resolution_note"] for r in rows)


def _rows(patient: uuid.UUID, nurse: uuid.UUID, kit: Kit) -> list:
    """The kit's readings as a nurse would enter them (the rules do not look at the source)."""
    _, at, readings = kit
    return [row(patient, metric, value, at, nurse) for metric, value, _ in readings]


def _start_workers(rig: IngestRig) -> None:
    sync_broker(rig.db, rig.settings)  # the ingest account, on a broker that has none yet
    rig.start(0, "--batch-ms", "80")
    rig.start(1, "--batch-ms", "80")


def _check_round(
    rig: IngestRig, n: int, split: uuid.UUID, kits: list[Kit], nurse: uuid.UUID
) -> int:
    """Store the round's kits for two more patients, one message at a time in measured order
    and in one transaction, and compare their alerts with the split patient's; the number of
    transactions that wrote the split patient's readings."""
    org = rig.db.execute(
        "SELECT organisation_id FROM responsibility WHERE patient_id = %s", (split,)
    ).fetchone()["organisation_id"]
    ordered = rig.factory.patient(org, program="copd")
    together = rig.factory.patient(org, program="copd")
    for k in kits:  # one reading's message at a time, in measured order
        store(rig.settings.dsn, _rows(ordered, nurse, k))
    store(rig.settings.dsn, [r for k in kits for r in _rows(together, nurse, k)])
    transactions = rig.db.execute(
        "SELECT count(DISTINCT received_at) AS n FROM readings WHERE patient_id = %s", (split,)
    ).fetchone()["n"]
    expected = _alerts(rig.db, ordered)
    assert _alerts(rig.db, together) == expected, f"round {n}: one transaction"
    assert _alerts(rig.db, split) == expected, (
        f"round {n} (seed {SEED}, {'shuffled' if n % 2 else 'in order'}, "
        f"{transactions} transactions)"
    )
    assert _withdrawn_only(rig.db, split), f"round {n}"
    return transactions


def _patient_of(rig: IngestRig, device_id: str) -> uuid.UUID:
    return rig.db.execute("SELECT patient_id FROM devices WHERE id = %s", (device_id,)).fetchone()[
        "patient_id"
    ]


def test_two_workers_give_the_alerts_of_one_ordered_pass(rig: IngestRig, care) -> None:
    _start_workers(rig)
    rng = random.Random(SEED)
    nurse = care.nurse.id
    split_rounds = 0
    for n in range(ROUNDS):
        kit = rig.device()
        split = _patient_of(rig, kit.device_id)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5 * MESSAGES + 1)
        kits = _kits(rng, start)
        sent = list(kits)
        if n % 2:
            rng.shuffle(sent)  # out of measured order as well as split
        link = rig.link(kit)
        link.publish_many([message(mid, readings, measured_at=at) for mid, at, readings in sent])
        total = sum(len(k[2]) for k in kits)
        device_id = kit.device_id
        wait_for(lambda: rig.count(device_id) == total, what=f"round {n} stored")  # noqa: B023
        link.close()
        split_rounds += _check_round(rig, n, split, kits, nurse) > 1
    # The split really happened: most rounds were written by more than one transaction.
    assert split_rounds >= ROUNDS // 2, split_rounds


TWO_DEVICE_ROUNDS = 10


def test_a_patient_with_two_devices_in_different_lanes_gets_the_alerts_of_one_ordered_pass(
    rig: IngestRig, care
) -> None:
    """A worker's lanes take devices, not patients: a patient's two devices can be written by
    both lanes of both workers at once, and the patient locks must still order them."""
    _start_workers(rig)
    rng = random.Random(SEED + 1)
    nurse = care.nurse.id
    for n in range(TWO_DEVICE_ROUNDS):
        first = rig.device()
        split = _patient_of(rig, first.device_id)
        lane = lane_of(readings_topic(first.device_id), 2)
        second = provision(rig.db, patient_id=split, kind="copd_kit")
        while lane_of(readings_topic(second.device_id), 2) == lane:
            second = provision(rig.db, patient_id=split, kind="copd_kit")
        sync_broker(rig.db, rig.settings)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5 * MESSAGES + 1)
        kits = _kits(rng, start)
        sent = list(kits)
        if n % 2:
            rng.shuffle(sent)
        links = [rig.link(first), rig.link(second)]
        for k, (mid, at, readings) in enumerate(sent):  # alternately, without waiting
            link = links[k % 2]
            link.client.publish(
                readings_topic(link.device_id), message(mid, readings, measured_at=at), qos=1
            )
        total = sum(len(k[2]) for k in kits)
        wait_for(
            lambda: rig.count(first.device_id) + rig.count(second.device_id) == total,  # noqa: B023
            what=f"round {n} stored",
        )
        for link in links:
            link.close()
        _check_round(rig, n, split, kits, nurse)
