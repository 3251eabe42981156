"""Coverage checked the two ways that do not need the pure property test: the command
`telemed rules coverage` (no database), and the scheduler's `rule_coverage` job over the live
database, which alerts the holding organisation for an enrolment whose rules cannot be built,
once, and resolves or notes it when fixed; the admin API lists the same enrolments."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts import rule_coverage
from alerts.rule_coverage import check_rule_coverage
from app import cli, wiring
from app.scheduler import Scheduler
from telemed.catalogue.programs import UnknownStratum
from telemed.migrate import apply_migrations
from telemed.settings import REPO_ROOT
from tests import test_alerts_notify_support as support
from tests import test_catalogue_db as legacy
from tests.test_alerts_notify_support import run_async

own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory
NOW = datetime.now(UTC)


def test_the_command_lists_every_accepted_stratum_with_its_rules_without_a_database() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMED_", "PG"))}
    env["TELEMED_DSN"] = "postgresql://nobody:none@127.0.0.1:9/nowhere"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "rules", "coverage"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 234 and "all 234 accepted strata have rules" in done.stderr
    assert lines[0].startswith("copd mild: absolute:spo2 (red < 90, yellow < 92)")
    assert (
        "ak 1.5-2.5: inr:range 1.5-2.5 (urgent <= 1.0, >= 5.0), "
        "missed:inr (every 7 days, due 12:00, 24 h grace)"
    ) in lines
    assert all("missed:" in line and "NO RULES" not in line for line in lines)


def test_the_command_exits_non_zero_when_an_accepted_stratum_has_no_rules(
    monkeypatch, capsys
) -> None:
    real = rule_coverage.default_rules

    def broken(program: str, stratum: str) -> list:
        if (program, stratum) == ("ak", "2.5-3.5"):
            raise UnknownStratum("ak", stratum, "lost its rules")
        rules = real(program, stratum)
        if (program, stratum) == ("copd", "mild"):
            return [r for r in rules if not r.key.startswith("missed:")]
        return rules

    monkeypatch.setattr(rule_coverage, "default_rules", broken)
    assert cli.main(["rules", "coverage"]) == 1
    out, err = capsys.readouterr()
    assert "ak 2.5-3.5: NO RULES: no rules: '2.5-3.5' lost its rules" in out
    assert "copd mild: NO RULES: no missed-measurement rule" in out
    assert "2 of 234 accepted strata have no rules" in err


# --- the scheduler's check over the live database -------------------------------------------


def job(dsn: str, now: datetime = NOW) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            return await check_rule_coverage(conn, now=now)

    return run_async(go())


def coverage_alerts(db: psycopg.Connection, patient: uuid.UUID) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM alerts WHERE patient_id = %s AND rule_key LIKE 'coverage:%%' ORDER BY id",
        (patient,),
    ).fetchall()


def override(db, patient, user, rule_key, field, value, *, reset=False, at=None) -> None:
    """A threshold override row as it lies in the table, past the API's validation."""
    db.execute(
        "INSERT INTO threshold_overrides (patient_id, rule_key, field, value, reset, set_by, "
        "set_at, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, 'test')",
        (patient, rule_key, field, None if reset else Jsonb(value), reset, user,
         at or datetime.now(UTC)),
    )  # fmt: skip


def insert_inr(db, patient, user, value: float, at: datetime) -> None:
    db.execute(
        "INSERT INTO readings (measured_at, patient_id, metric, value, unit, source, origin, "
        " entered_by, message_id) VALUES (%s, %s, 'inr', %s, '{INR}', 'nurse', %s, %s, %s)",
        (at, patient, value, f"user:{user}", user, uuid.uuid4().hex),
    )


def test_an_unreadable_override_raises_one_red_alert_to_the_holder_and_resolves_when_fixed(
    own_dsn, own_db, own_factory, settings
) -> None:
    team = own_factory.org()
    specialist = own_factory.user("specialist", team)
    patient = own_factory.patient(team, program="ak", stratum="2.0-3.0")
    watched = own_factory.patient(team, program="ak", stratum="2.0-3.0")
    override(own_db, patient, specialist.id, "inr:range", "urgent_low", "1,2")  # text, no number

    async def through_the_scheduler() -> dict | None:
        scheduler = Scheduler(own_dsn, wiring.jobs(settings), instance="coverage-test")
        async with await AsyncConnection.connect(own_dsn, row_factory=dict_row) as conn:
            return await scheduler.run_job(conn, "rule_coverage")

    first = run_async(through_the_scheduler())
    assert first is not None and first["unwatched"] >= 1 and first["alerted"] >= 1
    (alert,) = coverage_alerts(own_db, patient)
    assert (alert["rule_key"], alert["program"], alert["metric"]) == ("coverage:ak", "ak", "inr")
    assert (alert["severity"], alert["state"], alert["count"]) == ("red", "open", 1)
    assert alert["organisation_id"] == team
    assert "inr:range.urgent_low cannot be read" in alert["message"]
    assert coverage_alerts(own_db, watched) == []
    events = own_db.execute(
        "SELECT organisation_ids FROM outbox WHERE event = 'alert.raised' "
        "AND payload->>'alert_id' = %s",
        (str(alert["id"]),),
    ).fetchall()
    assert [e["organisation_ids"] for e in events] == [[team]]

    # Again and again: the same problem is one alert, unchanged.
    job(own_dsn)
    job(own_dsn, NOW + timedelta(minutes=5))
    (again,) = coverage_alerts(own_db, patient)
    assert (again["id"], again["count"], again["state"]) == (alert["id"], 1, "open")

    # The specialist sets the threshold again (a reset row is the latest): resolved, with a note.
    override(own_db, patient, specialist.id, "inr:range", "urgent_low", None, reset=True)
    result = job(own_dsn, NOW + timedelta(minutes=10))
    assert result["resolved"] >= 1
    (fixed,) = coverage_alerts(own_db, patient)
    assert fixed["state"] == "resolved" and "build again" in fixed["resolution_note"]
    assert "no readings arrived" in fixed["resolution_note"]
    job(own_dsn, NOW + timedelta(minutes=15))
    assert len(coverage_alerts(own_db, patient)) == 1


def test_an_override_that_no_longer_fits_is_yellow_and_readings_meanwhile_keep_it_open(
    own_dsn, own_db, own_factory
) -> None:
    team = own_factory.org()
    specialist = own_factory.user("specialist", team)
    nurse = own_factory.user("nurse", team)
    patient = own_factory.patient(team, program="ak", stratum="2.0-3.0")
    override(own_db, patient, specialist.id, "inr:range", "urgent_low", 2.5)  # above the range
    job(own_dsn)
    (alert,) = coverage_alerts(own_db, patient)
    assert alert["severity"] == "yellow"
    assert "rule inr:range runs at its program default" in alert["message"]
    insert_inr(own_db, patient, nurse.id, 2.2, NOW - timedelta(minutes=1))
    override(own_db, patient, specialist.id, "inr:range", "urgent_low", 1.2)
    job(own_dsn, NOW + timedelta(minutes=5))
    (noted,) = coverage_alerts(own_db, patient)
    assert noted["state"] == "open" and noted["detail"]["unjudged_readings"] == 1
    assert "build again" in noted["message"] and "1 reading(s)" in noted["message"]
    assert "review them, then resolve this alert" in noted["message"]
    job(own_dsn, NOW + timedelta(minutes=10))
    (still,) = coverage_alerts(own_db, patient)
    assert (still["count"], still["state"], still["message"]) == (2, "open", noted["message"])
    # It breaks again while the note waits: the alert says so again.
    override(own_db, patient, specialist.id, "inr:range", "urgent_low", 2.6)
    job(own_dsn, NOW + timedelta(minutes=15))
    (broken,) = coverage_alerts(own_db, patient)
    assert "runs at its program default" in broken["message"]
    assert "fixed_at" not in broken["detail"]


def test_an_enrolment_left_outside_the_catalogue_by_the_migration_is_alerted(
    empty_db, tmp_path
) -> None:
    """Existing data: the range 4.0-5.0 was accepted before migration 0040 and has no rules.
    The check raises a red alert to the holder; the admin re-enrols the patient, and the INR
    measured meanwhile is named on the alert for a clinician to review."""
    legacy.migrate_before(empty_db, "0040", tmp_path)
    ids = legacy.legacy_enrollments(empty_db)
    with psycopg.connect(empty_db, autocommit=True, row_factory=dict_row) as db:
        apply_migrations(db, REPO_ROOT / "migrations")
        nurse = db.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "VALUES ('ak.nurse', 'AK Nurse', 'nurse', %s, 'x') RETURNING id",
            (ids["org"],),
        ).fetchone()["id"]
        insert_inr(db, ids["4.0-5.0"], nurse, 6.1, NOW - timedelta(days=2))
        result = job(empty_db)
        assert (result["checked"], result["unwatched"], result["alerted"]) == (3, 1, 1)
        (alert,) = coverage_alerts(db, ids["4.0-5.0"])
        assert alert["severity"] == "red" and alert["organisation_id"] == ids["org"]
        assert "no alert rules: '4.0-5.0' ends above 4.5" in alert["message"]
        assert "judged by no rule" in alert["message"]
        for covered in ("1.5-2.5", "2.0-3.0", "0.5-1.0"):
            assert coverage_alerts(db, ids[covered]) == []
        db.execute(
            "UPDATE enrollments SET end_date = current_date - 1 WHERE patient_id = %s",
            (ids["4.0-5.0"],),
        )
        db.execute(
            "INSERT INTO enrollments (patient_id, program, stratum, start_date) "
            "VALUES (%s, 'ak', '3.5-4.5', current_date)",
            (ids["4.0-5.0"],),
        )
        assert job(empty_db, NOW + timedelta(minutes=5))["noted"] == 1
        (noted,) = coverage_alerts(db, ids["4.0-5.0"])
        assert noted["state"] == "open" and noted["detail"]["unjudged_readings"] == 1


def test_the_admin_api_lists_unwatched_enrolments(client, db, care, factory) -> None:
    patient = factory.patient(care.hospital, program="ak", stratum="2.5-3.5")
    override(db, patient, care.specialist.id, "inr:range", "high", {"value": 3.0})
    r = client.get("/api/v1/admin/rule-coverage", headers=care.admin.headers)
    assert r.status_code == 200, r.text
    (line,) = [u for u in r.json() if u["patient_id"] == str(patient)]
    assert (line["program"], line["stratum"], line["severity"]) == ("ak", "2.5-3.5", "red")
    assert line["holder_id"] == str(care.hospital) and line["start_date"] <= str(date.today())
    assert "inr:range.high cannot be read" in line["problems"][0]
    assert "Test Patient" not in r.text  # the pseudonym, never the name
    audited = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE patient_id = %s AND object_type = %s",
        (patient, "rule_coverage"),
    ).fetchone()
    assert audited["n"] == 1
    for user in (care.specialist, care.nurse):
        assert client.get("/api/v1/admin/rule-coverage", headers=user.headers).status_code == 403


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ("[]", []),
        ('[{"rule_key": "inr:range"}]', ["red"]),
        ('[{"rule_key": "inr:range", "field": "low", "value": 3.5, "set_by": "x", '
         '"set_at": "2026-01-01T00:00:00Z", "reason": "r"}]', ["yellow"]),
        ('["not an object"]', ["red"]),
    ],
)  # fmt: skip
def test_diagnose_names_each_problem(overrides: str, expected: list[str]) -> None:
    found = rule_coverage.diagnose("ak", "2.0-3.0", overrides)
    assert [p.severity for p in found] == expected
    assert rule_coverage.diagnose("ak", "4.0-5.0", "[]")[0].no_rules


def test_diagnose_finds_a_rule_set_without_missed_measurement_rules(monkeypatch) -> None:
    real = rule_coverage.default_rules
    monkeypatch.setattr(
        rule_coverage,
        "default_rules",
        lambda p, s: [r for r in real(p, s) if not r.key.startswith("missed:")],
    )
    (problem,) = rule_coverage.diagnose("copd", "severe", "[]")
    assert problem.severity == "red" and "no missed-measurement rule" in problem.text
