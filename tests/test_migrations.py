from __future__ import annotations

import psycopg
import pytest

from telemed.migrate import MigrationError, apply_migrations, migration_files
from telemed.settings import REPO_ROOT

MIGRATIONS = REPO_ROOT / "migrations"


def test_migrations_apply_from_empty_and_are_idempotent(empty_db):
    with psycopg.connect(empty_db) as conn:
        applied = apply_migrations(conn, MIGRATIONS)
        assert applied == [p.name for p in migration_files(MIGRATIONS)]
        assert apply_migrations(conn, MIGRATIONS) == []
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    for table in (
        "organisations",
        "users",
        "patients",
        "enrollments",
        "responsibility",
        "devices",
        "readings",
        "audit_log",
        "auth_tokens",
        "care_relations",
    ):
        assert table in tables


def test_readings_is_a_hypertable_on_measured_time(db):
    row = db.execute(
        "SELECT d.column_name FROM timescaledb_information.hypertables h "
        "JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name) "
        "WHERE h.hypertable_name = 'readings'"
    ).fetchone()
    assert row == {"column_name": "measured_at"}
    index = db.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'readings_patient_recent'"
    ).fetchone()
    assert "patient_id" in index["indexdef"] and "measured_at DESC" in index["indexdef"]


def test_an_edited_migration_is_refused(empty_db, tmp_path):
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x int);")
    with psycopg.connect(empty_db) as conn:
        assert apply_migrations(conn, tmp_path) == ["0001_a.sql"]
        (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            apply_migrations(conn, tmp_path)


def test_a_failing_migration_leaves_nothing_half_done(empty_db, tmp_path):
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (x int); SELECT no_such_function();")
    with psycopg.connect(empty_db) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            apply_migrations(conn, tmp_path)
        assert conn.execute("SELECT to_regclass('a')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0


def test_badly_named_migration_files_are_refused(tmp_path):
    (tmp_path / "1_a.sql").write_text("")
    with pytest.raises(MigrationError, match=r"0001_name\.sql"):
        migration_files(tmp_path)


def test_audit_log_is_append_only(db, owner_db, care):
    db.execute("INSERT INTO audit_log (actor_kind, action) VALUES ('system', 'test')")
    # The application role has no right to change it; the owner's rights meet the triggers.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("UPDATE audit_log SET action = 'x'")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DELETE FROM audit_log")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        owner_db.execute("UPDATE audit_log SET action = 'x'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        owner_db.execute("DELETE FROM audit_log")
