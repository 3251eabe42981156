"""History rules (sustained bands, baselines, changes) give the same alerts however a patient's
readings are split: two real ingest workers on the shared subscription, each holding part of
the patient's readings in concurrent transactions, in measured order or shuffled, against a
single ordered pass (one reading at a time, in measured order) and a single transaction."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.alert_helpers import row, store
from tests.mqtt_helpers import IngestRig, message, open_rig, wait_for

ROUNDS = 24
MESSAGES = 12
SEED = 20261207

# Around the severe stratum's limits: SpO2 red < 88, yellow < 90 held for two readings, a drop
# of 3 points under the median; pulse yellow outside 50-100 held for two readings, red outside
# 40-120; weight a change of 2 kg within 72 hours.
SPO2 = (85, 89, 89.5, 91, 93, 94, 96, 97)
PULSE = (45, 60, 72, 104, 108, 125)
WEIGHT = (78.0, 79.0, 80.0, 80.5, 81.0, 82.5)


@pytest.fixture
def rig(db, settings, service_env, factory) -> Iterator[IngestRig]:
    with open_rig(db, settings, service_env, factory) as r:
        yield r


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


def test_two_workers_give_the_alerts_of_one_ordered_pass(rig: IngestRig, care) -> None:
    rig.start(0, "--batch-ms", "80")
    rig.start(1, "--batch-ms", "80")
    rng = random.Random(SEED)
    nurse = care.nurse.id
    split_rounds = 0
    for n in range(ROUNDS):
        kit = rig.device()
        split = rig.db.execute(
            "SELECT patient_id FROM devices WHERE id = %s", (kit.device_id,)
        ).fetchone()["patient_id"]
        org = rig.db.execute(
            "SELECT organisation_id FROM responsibility WHERE patient_id = %s", (split,)
        ).fetchone()["organisation_id"]
        ordered = rig.factory.patient(org, program="copd")
        together = rig.factory.patient(org, program="copd")
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
        for k in kits:  # one reading's message at a time, in measured order
            store(rig.settings.dsn, _rows(ordered, nurse, k))
        store(rig.settings.dsn, [r for k in kits for r in _rows(together, nurse, k)])

        transactions = rig.db.execute(
            "SELECT count(DISTINCT received_at) AS n FROM readings WHERE patient_id = %s",
            (split,),
        ).fetchone()["n"]
        split_rounds += transactions > 1
        expected = _alerts(rig.db, ordered)
        assert _alerts(rig.db, together) == expected, f"round {n}: one transaction"
        assert _alerts(rig.db, split) == expected, (
            f"round {n} (seed {SEED}, {'shuffled' if n % 2 else 'in order'}, "
            f"{transactions} transactions)"
        )
        assert _withdrawn_only(rig.db, split), f"round {n}"
    # The split really happened: most rounds were written by more than one transaction.
    assert split_rounds >= ROUNDS // 2, split_rounds
