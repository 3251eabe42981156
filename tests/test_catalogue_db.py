"""The database's constraint on strata agrees with the clinical catalogue over the whole grid,
and enrollments made before it (migration 0040) are marked, never changed or ended."""

from __future__ import annotations

import shutil
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from telemed.catalogue.programs import COPD_STRATA, PROGRAMS, accepts
from telemed.migrate import apply_migrations, migration_files
from telemed.settings import REPO_ROOT

MIGRATIONS = REPO_ROOT / "migrations"
GRID = [f"{a // 10}.{a % 10}-{b // 10}.{b % 10}" for a in range(100) for b in range(100)]
WORDS = [*COPD_STRATA, "very severe", "", "Severe", "2,0-3,0", "2.0-3.0 ", " 2.0-3.0", "2-3"]
CANDIDATES = [(p, s) for p in (*PROGRAMS, "hf") for s in GRID + WORDS]

# Tries every candidate as a real insert (a savepoint each) and keeps those the table took.
_TRY_ALL = """
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM catalogue_candidates LOOP
        BEGIN
            INSERT INTO enrollments (patient_id, program, stratum, start_date, end_date)
            VALUES (c.patient_id, c.program, c.stratum, current_date - 1, current_date - 1);
            INSERT INTO catalogue_accepted VALUES (c.program, c.stratum);
        EXCEPTION WHEN check_violation THEN
            NULL;
        END;
    END LOOP;
END;
$$
"""


def test_the_table_accepts_exactly_the_catalogue_strata(db, factory, care) -> None:
    """Every string of the shape D.D-D.D (10,000) and some words, for each program: the
    enrollments table takes a row exactly when the catalogue accepts the pair."""
    patient = factory.patient(care.hospital)
    expected = {(p, s) for p, s in CANDIDATES if accepts(p, s)}
    assert len(expected) == 234
    with db.transaction(force_rollback=True):
        db.execute(
            "CREATE TEMP TABLE catalogue_candidates (patient_id uuid, program text, stratum text)"
        )
        db.execute("CREATE TEMP TABLE catalogue_accepted (program text, stratum text)")
        with db.cursor() as cur, cur.copy("COPY catalogue_candidates FROM STDIN") as copy:
            for program, stratum in CANDIDATES:
                copy.write_row((patient, program, stratum))
        db.execute(_TRY_ALL)
        taken = {(r["program"], r["stratum"]) for r in db.execute("TABLE catalogue_accepted")}
        function = db.execute(
            "SELECT program, stratum FROM catalogue_candidates "
            "WHERE enrollment_stratum_in_catalogue(program, stratum)"
        ).fetchall()
    assert taken == expected
    assert {(r["program"], r["stratum"]) for r in function} == expected


def test_the_stratum_constraint_is_the_catalogue_function(db) -> None:
    checks = db.execute(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'enrollments'::regclass AND contype = 'c' AND "
        "pg_get_constraintdef(oid) LIKE '%%stratum%%'"
    ).fetchall()
    assert checks == [
        {
            "conname": "enrollments_stratum_in_catalogue",
            "def": "CHECK ((stratum_outside_catalogue OR "
            "enrollment_stratum_in_catalogue(program, stratum)))",
        }
    ]


def test_no_new_row_may_claim_to_be_outside_the_catalogue(db, factory, care) -> None:
    patient = factory.patient(care.hospital)
    with pytest.raises(psycopg.errors.CheckViolation, match="not in the clinical catalogue"):
        db.execute(
            "INSERT INTO enrollments (patient_id, program, stratum, start_date, "
            "stratum_outside_catalogue) VALUES (%s, 'ak', '4.0-5.0', current_date, true)",
            (patient,),
        )
    enrolled = factory.patient(care.hospital, program="ak", stratum="2.0-3.0")
    with pytest.raises(psycopg.errors.CheckViolation, match="not in the clinical catalogue"):
        db.execute(
            "UPDATE enrollments SET stratum = '4.0-5.0', stratum_outside_catalogue = true "
            "WHERE patient_id = %s",
            (enrolled,),
        )


def migrate_before(dsn: str, number: str, folder) -> None:
    for path in migration_files(MIGRATIONS):
        if path.name < number:
            shutil.copy(path, folder / path.name)
    with psycopg.connect(dsn) as conn:
        apply_migrations(conn, folder)


def legacy_enrollments(dsn: str) -> dict[str, uuid.UUID]:
    """Patients enrolled as the old check allowed: ranges without rules among them."""
    ids = {}
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        org = conn.execute(
            "INSERT INTO organisations (name, kind) VALUES ('AK-klinikken', 'hospital_department') "
            "RETURNING id"
        ).fetchone()["id"]
        for stratum, ended in (
            ("4.0-5.0", False),
            ("1.5-2.5", False),
            ("2.0-3.0", False),
            ("0.5-1.0", True),
        ):
            pid = conn.execute(
                "INSERT INTO patients (pseudonym, name, date_of_birth) "
                "VALUES (%s, 'Legacy', '1944-01-01') RETURNING id",
                (f"P-{uuid.uuid4().hex[:8].upper()}",),
            ).fetchone()["id"]
            conn.execute(
                "INSERT INTO responsibility (patient_id, organisation_id, since, reason) "
                "VALUES (%s, %s, now() - interval '90 days', 'enrolled')",
                (pid, org),
            )
            conn.execute(
                "INSERT INTO enrollments (patient_id, program, stratum, start_date, end_date) "
                "VALUES (%s, 'ak', %s, current_date - 60, %s)",
                (pid, stratum, date.today() - timedelta(days=30) if ended else None),
            )
            ids[stratum] = pid
    ids["org"] = org
    return ids


def test_migration_marks_enrollments_outside_the_catalogue_and_changes_nothing(
    empty_db, tmp_path
) -> None:
    migrate_before(empty_db, "0040", tmp_path)
    ids = legacy_enrollments(empty_db)
    with psycopg.connect(empty_db, row_factory=dict_row) as conn:
        apply_migrations(conn, MIGRATIONS)
        rows = conn.execute(
            "SELECT patient_id, stratum, end_date, stratum_outside_catalogue AS outside "
            "FROM enrollments ORDER BY stratum"
        ).fetchall()
        by_stratum = {r["stratum"]: r for r in rows}
        assert {s: r["outside"] for s, r in by_stratum.items()} == {
            "0.5-1.0": True,
            "1.5-2.5": False,  # covered now, with urgent bounds 1.0 and 5.0
            "2.0-3.0": False,
            "4.0-5.0": True,
        }
        assert by_stratum["4.0-5.0"]["end_date"] is None  # still running: the check alerts
        # An admin can still end the marked enrollment and enrol the patient in a covered range.
        conn.execute(
            "UPDATE enrollments SET end_date = current_date WHERE patient_id = %s",
            (ids["4.0-5.0"],),
        )
        conn.execute(
            "INSERT INTO enrollments (patient_id, program, stratum, start_date) "
            "VALUES (%s, 'ak', '3.5-4.5', current_date + 1)",
            (ids["4.0-5.0"],),
        )
        conn.commit()
