"""Every rule kind evaluated on the ingest path: readings stored through the real store (and the
nurse API), alerts and events read back from the database."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from alerts import hooks
from alerts.checks import evaluate
from alerts.rules import AbsoluteRule, Bands, BaselineRule, ChangeRule, Obs, Sustain
from tests.alert_helpers import ago, alert_by_rule, alerts_of, events_of, row, store, with_conn


def nurse_entry(client, care, patient, readings, at=None):
    body = {"measured_at": (at or ago(minutes=1)).isoformat(), "readings": readings}
    r = client.post(f"/api/v1/patients/{patient}/readings", headers=care.nurse.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_red_spo2_entered_by_a_nurse_raises_one_alert_and_one_event(client, db, care):
    nurse_entry(client, care, care.patient, [{"type": "spo2", "value": 86, "unit": "%"}])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert is not None
    assert (alert["severity"], alert["state"], alert["count"]) == ("red", "open", 1)
    assert alert["message"] == "SpO2 86 % below red limit 88 %"
    assert alert["program"] == "copd" and alert["organisation_id"] == care.hospital
    events = events_of(db, care.patient)
    assert [e["event"] for e in events] == ["alert.raised"]
    payload = events[0]["payload"]
    assert payload["alert_id"] == alert["id"] and payload["severity"] == "red"
    assert payload["pseudonym"].startswith("P-") and "name" not in payload
    assert "Test Patient" not in str(payload)
    assert events[0]["organisation_ids"] == [care.hospital]


def test_yellow_spo2_needs_a_second_reading(db_dsn, db, care):
    n = care.nurse.id
    store(db_dsn, [row(care.patient, "spo2", 89, ago(hours=3), n)])
    assert alert_by_rule(db, care.patient, "absolute:spo2") is None
    store(db_dsn, [row(care.patient, "spo2", 89.5, ago(hours=2), n)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert is not None and alert["severity"] == "yellow" and alert["count"] == 1
    assert "2 consecutive readings" in alert["message"]


def test_readings_of_one_batch_see_each_other_in_measured_order(db_dsn, db, care):
    n = care.nurse.id
    # Listed newest first: the older one is judged first and is not sustained, the newer is.
    store(
        db_dsn,
        [
            row(care.patient, "pulse", 105, ago(hours=1), n),
            row(care.patient, "pulse", 104, ago(hours=2), n),
        ],
    )
    alert = alert_by_rule(db, care.patient, "absolute:pulse")
    assert alert is not None and alert["count"] == 1 and alert["last_value"] == 105


def test_a_late_reading_is_judged_by_what_was_measured_before_it(db_dsn, db, care):
    n = care.nurse.id
    at = {h: ago(hours=h) for h in (5, 3, 1)}
    store(db_dsn, [row(care.patient, "spo2", 96, at[5], n)])
    store(db_dsn, [row(care.patient, "spo2", 89, at[1], n)])
    assert alert_by_rule(db, care.patient, "absolute:spo2") is None
    # Arrives now, measured between the two: it follows a normal reading, so it is not a
    # sustained breach itself, but the 89 measured after it now is (judged again with it).
    store(db_dsn, [row(care.patient, "spo2", 89, at[3], n)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert is not None and alert["severity"] == "yellow" and alert["count"] == 1
    assert alert["first_measured_at"] == alert["last_measured_at"] == at[1]
    # One more, measured just before the 89 of an hour ago: a breach of its own.
    store(db_dsn, [row(care.patient, "spo2", 89.5, ago(hours=1, minutes=10), n)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert["count"] == 2 and alert["last_measured_at"] == at[1]


@pytest.fixture
def baseline_patient(factory, care):
    return factory.patient(care.hospital, program="copd", stratum="severe", serving=[care.nursing])


def test_baseline_percent_drop_is_yellow_then_red(db_dsn, db, care, baseline_patient):
    n, p = care.nurse.id, baseline_patient
    store(db_dsn, [row(p, "pef", v, ago(days=d), n) for d, v in ((12, 400), (8, 380), (3, 420))])
    assert alert_by_rule(db, p, "baseline:pef") is None
    store(db_dsn, [row(p, "pef", 310, ago(hours=5), n)])  # 22.5 % below the median 400
    alert = alert_by_rule(db, p, "baseline:pef")
    assert alert is not None and alert["severity"] == "yellow"
    assert alert["detail"]["baseline"] == 400 and alert["detail"]["baseline_readings"] == 3
    # The 310 is now part of the baseline: median of 380, 400, 420, 310 is 390; 270 is 30.8 %.
    store(db_dsn, [row(p, "pef", 270, ago(hours=1), n)])
    alert = alert_by_rule(db, p, "baseline:pef")
    assert alert["severity"] == "red" and alert["count"] == 2
    assert alert["detail"]["baseline"] == 390 and alert["severity_changed_at"] is not None
    assert [e["event"] for e in events_of(db, p)] == ["alert.raised", "alert.upgraded"]


def test_baseline_points_for_spo2_and_cat(db_dsn, db, care, baseline_patient):
    n, p = care.nurse.id, baseline_patient
    history = [row(p, "spo2", 95, ago(days=d), n) for d in (9, 6, 2)]
    history += [row(p, "cat", v, ago(days=d), n) for d, v in ((9, 10), (6, 12), (2, 11))]
    store(db_dsn, history)
    store(db_dsn, [row(p, "spo2", 92, ago(hours=1), n), row(p, "cat", 15, ago(hours=1), n)])
    assert alert_by_rule(db, p, "baseline:spo2")["severity"] == "yellow"
    cat = alert_by_rule(db, p, "baseline:cat")
    assert cat["severity"] == "yellow" and "4 points above baseline 11" in cat["message"]


def test_weight_change_within_three_days(db_dsn, db, care):
    n, p = care.nurse.id, care.patient
    store(
        db_dsn, [row(p, "weight", 80.0, ago(days=2.5), n), row(p, "weight", 80.5, ago(days=1), n)]
    )
    assert alert_by_rule(db, p, "change:weight") is None
    store(db_dsn, [row(p, "weight", 82.1, ago(hours=1), n)])
    alert = alert_by_rule(db, p, "change:weight")
    assert alert is not None and alert["detail"]["compared_value"] == 80.0
    assert "up 2.1 kg from 80 kg" in alert["message"]


@pytest.fixture
def ak_patient(factory, care):
    return factory.patient(care.hospital, program="ak", stratum="2.0-3.0", serving=[care.nursing])


@pytest.mark.parametrize(
    ("value", "severity", "fragment"),
    [
        (2.5, None, None),
        (3.4, "yellow", "above therapeutic range 2.0–3.0"),
        (5.0, "red", "at or above urgent limit 5.0"),
        (1.5, "red", "at or below urgent limit 1.5"),
        (">8.0", "red", "INR >8.0 is outside the meter's measuring range"),
        ("<0.8", "red", "INR <0.8 is outside the meter's measuring range"),
    ],
)
def test_inr_range_urgent_and_censored(client, db, care, ak_patient, value, severity, fragment):
    nurse_entry(client, care, ak_patient, [{"type": "inr", "value": value, "unit": "{INR}"}])
    alert = alert_by_rule(db, ak_patient, "inr:range")
    if severity is None:
        assert alert is None
        return
    assert alert["severity"] == severity and fragment in alert["message"]
    assert alert["program"] == "ak"
    if isinstance(value, str):
        assert alert["detail"]["censored"] is True


def test_no_rules_outside_an_enrollment(db_dsn, db, care, factory):
    unenrolled = factory.patient(care.hospital)
    store(db_dsn, [row(unenrolled, "spo2", 80, ago(hours=1), care.nurse.id)])
    assert alerts_of(db, unenrolled) == []
    # Measured before the enrollment started (30 days ago in the factory).
    store(db_dsn, [row(care.patient, "spo2", 80, ago(days=40), care.nurse.id)])
    assert alerts_of(db, care.patient) == []


@pytest.mark.parametrize(
    ("value", "severity", "fragment"),
    [
        (6.0, "red", "INR 6.0 at or above urgent limit 5.0"),
        (2.0, None, None),
        (1.3, "yellow", "INR 1.3 below therapeutic range 1.5–2.5"),
        (1.0, "red", "INR 1.0 at or below urgent limit 1.0"),
        (2.8, "yellow", "INR 2.8 above therapeutic range 1.5–2.5"),
    ],
)
def test_a_low_intensity_range_is_watched_with_urgent_bounds_outside_it(
    db_dsn, db, care, factory, value, severity, fragment
):
    low = factory.patient(care.hospital, program="ak", stratum="1.5-2.5")
    stored = store(db_dsn, [row(low, "inr", value, ago(hours=1), care.nurse.id)])
    assert len(stored) == 1
    alert = alert_by_rule(db, low, "inr:range")
    if severity is None:
        assert alert is None
        return
    assert alert["severity"] == severity and fragment in alert["message"]


# --- sustain by minutes, and the bounded history against the full one ----------------------

CUSTOM = [
    AbsoluteRule(
        "pulse",
        Bands(red_low=40, yellow_low=50, yellow_high=100, red_high=120),
        Sustain(minutes=30, within_hours=3, include_red=True),
    ),
    AbsoluteRule("spo2", Bands(red_low=85, yellow_low=90), Sustain(count=3, within_hours=6)),
    BaselineRule("spo2", "points", yellow_drop=3, red_drop=6, window_days=1, max_readings=5),
    ChangeRule("weight", delta=2.0, within_hours=12),
]


@pytest.fixture
def custom_rules(monkeypatch):
    monkeypatch.setattr(
        hooks, "_default_set", lambda program, stratum: hooks.rule_set(program, CUSTOM)
    )


def test_sustain_by_minutes_through_the_store(db_dsn, db, care, custom_rules):
    n, p, base = care.nurse.id, care.patient, ago()

    def pulse(value, minutes):
        return row(p, "pulse", value, base - timedelta(minutes=minutes), n)

    store(db_dsn, [pulse(105, 50), pulse(105, 40)])
    store(db_dsn, [pulse(96, 25)])  # breaks the run
    store(db_dsn, [pulse(104, 20), pulse(104, 10)])
    assert alert_by_rule(db, p, "absolute:pulse") is None  # held 10 minutes only
    # Late, measured before all of those: red held 30 minutes at -90, then 60 at -60.
    store(db_dsn, [pulse(130, 120), pulse(130, 90), pulse(130, 60)])
    alert = alert_by_rule(db, p, "absolute:pulse")
    # Judged in measured order, the yellow 105s at -50 and -40 now continue a run that began at
    # -120 (yellow or worse) and count too; the 96 at -25 still breaks it.
    assert alert is not None and alert["severity"] == "red" and alert["count"] == 4
    assert alert["detail"]["held_minutes"] == 30 and "held for 30 min" in alert["message"]
    assert alert["first_measured_at"] == base - timedelta(minutes=90)
    assert alert["last_measured_at"] == base - timedelta(minutes=40)


def test_the_hook_decides_as_the_pure_rules_on_the_full_history(db_dsn, db, care, custom_rules):
    rng = random.Random(20240501)
    n, p = care.nurse.id, care.patient
    ranges = {"pulse": (35, 125), "spo2": (82, 97), "weight": (70, 76)}
    rows = []
    for metric, (lo, hi) in ranges.items():
        for minute in rng.sample(range(1, 24 * 60), 60):
            rows.append(row(p, metric, round(rng.uniform(lo, hi), 1), ago(minutes=minute), n))
    store(db_dsn, rows, hooks=False)
    full = [
        Obs(r["metric"], r["value"], r["measured_at"], r["comparator"])
        for r in db.execute(
            "SELECT metric, value, measured_at, comparator FROM readings WHERE patient_id = %s",
            (p,),
        ).fetchall()
    ]

    async def bounded(conn):
        cur = await conn.execute(
            "SELECT measured_at, received_at, patient_id, metric, value, unit, comparator, "
            "source, origin, message_id FROM readings WHERE patient_id = %s",
            (p,),
        )
        from telemed.readings import StoredReading

        stored = [StoredReading(**r) for r in await cur.fetchall()]
        jobs = hooks._jobs(stored, await hooks._load_contexts(conn, [p]))
        await hooks._load_history(conn, jobs)
        return jobs

    jobs = with_conn(db_dsn, bounded)
    assert len(jobs) == len(rows)
    decided = 0
    for job in jobs:
        rules = job.sets[0].by_metric[job.obs.metric]
        baselines = {r.key: job.baseline for r in rules if isinstance(r, BaselineRule)}
        got = evaluate(job.obs, job.history, rules, baselines)
        want = evaluate(job.obs, full, rules)
        assert [(b.rule_key, b.severity, b.message) for b in got] == [
            (b.rule_key, b.severity, b.message) for b in want
        ], job.obs
        decided += bool(want)
        assert len(job.history) <= 10
    assert decided > 20  # the data breach often enough to mean something


def test_history_is_bounded_however_long_the_stream(db_dsn, db, care, custom_rules):
    n, p = care.nurse.id, care.patient
    start = ago(hours=20)
    store(
        db_dsn,
        [row(p, "spo2", 95, start + timedelta(seconds=20 * i), n) for i in range(3000)],
        hooks=False,
    )
    store(db_dsn, [row(p, "spo2", 91, ago(minutes=1), n)])
    alert = alert_by_rule(db, p, "baseline:spo2")
    assert alert is not None and alert["detail"]["baseline_readings"] == 5
