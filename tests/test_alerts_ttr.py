"""Time in therapeutic range through the API, against hand-computed Rosendaal examples."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from alerts.schedule import LOCAL_TZ
from tests.alert_helpers import row, store

D0 = date(2026, 1, 5)


def on(day: int, hour: int = 12) -> datetime:
    return datetime.combine(D0 + timedelta(days=day), time(hour), tzinfo=LOCAL_TZ)


@pytest.fixture
def ak_patient(factory, care):
    return factory.patient(care.hospital, program="ak", stratum="2.0-3.0", serving=[care.nursing])


def results(db_dsn, care, patient, points):
    rows = [row(patient, "inr", value, on(day), care.nurse.id) for day, value in points]
    store(db_dsn, rows, hooks=False)


def ttr(client, user, patient, **params):
    r = client.get(f"/api/v1/patients/{patient}/ttr", headers=user.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def day(n: int) -> str:
    return (D0 + timedelta(days=n)).isoformat()


def test_hand_computed_ttr(client, db_dsn, care, ak_patient):
    # 2.0 -> 3.0 over days 0-10 lies in range throughout (10 days); 3.0 -> 4.0 over days 10-20
    # touches the range only at its start (0 days). 10 of 20 days: 50 %.
    results(db_dsn, care, ak_patient, [(0, 2.0), (10, 3.0), (20, 4.0)])
    out = ttr(client, care.nurse, ak_patient)
    assert out["percent"] == 50.0 and out["days_in_range"] == 10 and out["days_total"] == 20
    assert (out["low"], out["high"], out["range_source"]) == (2.0, 3.0, "stratum")
    assert out["results"] == 3 and out["reason"] is None and "Rosendaal" in out["method"]
    # The window days 5..14 cover [5, 15): 5 days in range of 10.
    windowed = ttr(client, care.nurse, ak_patient, **{"from": day(5), "to": day(14)})
    assert windowed["percent"] == 50.0 and windowed["days_total"] == 10
    # Days 0..14: 10 of 15.
    assert ttr(client, care.specialist, ak_patient, **{"from": day(0), "to": day(14)})[
        "percent"
    ] == pytest.approx(200 / 3)


def test_crossing_the_range_edge_mid_interval(client, db_dsn, care, ak_patient):
    # 1.5 -> 2.5 over 10 days enters the range at 2.0, half way: 5 of 10 days.
    results(db_dsn, care, ak_patient, [(0, 1.5), (10, 2.5)])
    assert ttr(client, care.nurse, ak_patient)["percent"] == 50.0


def test_results_outside_the_window_still_shape_the_line(client, db_dsn, care, ak_patient):
    # The line from day 0 to day 50 (both 2.4) runs through the window days 45..49 entirely.
    results(db_dsn, care, ak_patient, [(0, 2.4), (50, 2.4), (120, 2.4)])
    out = ttr(client, care.nurse, ak_patient, **{"from": day(45), "to": day(49)})
    assert out["percent"] == 100.0 and out["days_total"] == 5
    # Days 50 -> 120 is a gap over 56 days: not interpolated, and says so.
    gap = ttr(client, care.nurse, ak_patient, **{"from": day(60), "to": day(100)})
    assert gap["percent"] is None and "56 days" in gap["reason"] and gap["excluded"] == 1


def test_same_day_results_are_averaged_and_censored_values_flagged(
    client, db_dsn, care, ak_patient
):
    # Day 0: 1.8 and 2.2 average 2.0; then 4.0 on day 10: in range for 2.0 -> 3.0, i.e. 5 days.
    store(
        db_dsn,
        [
            row(ak_patient, "inr", 1.8, on(0, 8), care.nurse.id),
            row(ak_patient, "inr", 2.2, on(0, 18), care.nurse.id),
            row(ak_patient, "inr", 8.0, on(10), care.nurse.id, comparator=">"),
        ],
        hooks=False,
    )
    out = ttr(client, care.nurse, ak_patient)
    # 2.0 -> 8.0 over 10 days leaves the range at 3.0: 1/6 of the interval.
    assert out["percent"] == pytest.approx(100 / 6) and out["censored_used"] is True


def test_not_calculable_is_null_with_a_reason(client, db_dsn, care, ak_patient):
    assert ttr(client, care.nurse, ak_patient)["reason"] == "fewer than two result days"
    results(db_dsn, care, ak_patient, [(0, 2.5)])
    out = ttr(client, care.nurse, ak_patient)
    assert out["percent"] is None and out["results"] == 1
    copd = ttr(client, care.nurse, care.patient)
    assert copd["percent"] is None and "not enrolled" in copd["reason"]


def test_the_patients_own_range_counts(client, db_dsn, care, ak_patient):
    r = client.put(
        f"/api/v1/patients/{ak_patient}/thresholds",
        headers=care.specialist.headers,
        json={
            "reason": "mechanical valve",
            "changes": [
                {"rule_key": "inr:range", "field": "low", "value": 2.5},
                {"rule_key": "inr:range", "field": "high", "value": 3.5},
            ],
        },
    )
    assert r.status_code == 200, r.text
    # 2.0 -> 3.0 over 10 days is in 2.5-3.5 for its second half only.
    results(db_dsn, care, ak_patient, [(0, 2.0), (10, 3.0)])
    out = ttr(client, care.nurse, ak_patient)
    assert (out["low"], out["high"], out["range_source"]) == (2.5, 3.5, "override")
    assert out["percent"] == 50.0


def test_ttr_access_and_an_empty_period(client, care, ak_patient):
    assert (
        client.get(
            f"/api/v1/patients/{ak_patient}/ttr", headers=care.other_nurse.headers
        ).status_code
        == 404
    )
    r = client.get(
        f"/api/v1/patients/{ak_patient}/ttr",
        headers=care.nurse.headers,
        params={"from": day(10), "to": day(0)},
    )
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "to"
