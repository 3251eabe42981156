"""The two database roles: the owner runs the migrations and owns every object; the application
role (the one the API, the ingest workers, the scheduler and these tests use) owns nothing and
cannot empty or unprotect the audit log. Every attack below runs as the application role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from telemed.db import RoleError
from telemed.migrate import MigrationError, apply_migrations
from telemed.settings import REPO_ROOT


def test_the_application_role_owns_nothing_and_is_no_superuser(db, owner_db):
    me = db.execute(
        "SELECT current_user AS name, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert me == {
        "name": "telemed_app",
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolbypassrls": False,
    }
    db.execute("CREATE TEMP TABLE scratch (x int)")
    owned = db.execute(
        # A session's temporary objects (the readings' staging table) end with it.
        """WITH owned (kind, name, ns) AS (
               SELECT 'class', relname::text, relnamespace FROM pg_class
               WHERE relowner = 'telemed_app'::regrole
               UNION ALL SELECT 'proc', proname::text, pronamespace FROM pg_proc
               WHERE proowner = 'telemed_app'::regrole
               UNION ALL SELECT 'type', typname::text, typnamespace FROM pg_type
               WHERE typowner = 'telemed_app'::regrole
               UNION ALL SELECT 'schema', nspname::text, oid FROM pg_namespace
               WHERE nspowner = 'telemed_app'::regrole)
           SELECT o.kind, o.name FROM owned o JOIN pg_namespace n ON n.oid = o.ns
           WHERE n.nspname !~ '^pg_(toast_)?temp_'"""
    ).fetchall()
    assert owned == []
    # Everything in the schema belongs to the owner role, the readings' chunks included.
    others = owner_db.execute(
        """SELECT c.oid::regclass::text AS name, pg_get_userbyid(c.relowner) AS owner
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN ('public', '_timescaledb_internal')
             AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND c.relowner <> 'telemed_owner'::regrole
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                             AND d.deptype = 'e')"""
    ).fetchall()
    assert others == []
    assert not db.execute("SELECT pg_has_role('telemed_owner', 'MEMBER') AS m").fetchone()["m"]


ATTACKS = [
    "TRUNCATE audit_log",
    "TRUNCATE audit_log CASCADE",
    "DELETE FROM audit_log",
    "UPDATE audit_log SET action = 'nothing to see'",
    "UPDATE audit_log SET chain_seq = NULL, hash = NULL",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "ALTER TABLE audit_log DISABLE TRIGGER USER",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_truncate",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_chain",
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TRIGGER audit_log_no_delete ON audit_log",
    "DROP TRIGGER audit_log_no_update ON audit_log",
    "DROP TRIGGER audit_log_chain ON audit_log",
    "DROP TABLE audit_log",
    "DROP TABLE audit_log CASCADE",
    "ALTER TABLE audit_log RENAME TO audit_log_old",
    "ALTER TABLE audit_log OWNER TO telemed_app",
    "CREATE TRIGGER mine BEFORE INSERT ON audit_log FOR EACH ROW "
    "EXECUTE FUNCTION audit_log_append_only()",
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NULL; END $$",
    "DROP FUNCTION audit_log_only_chained() CASCADE",
    "UPDATE audit_chain SET seq = 0",
    "DELETE FROM audit_chain",
    "TRUNCATE audit_chain",
    "INSERT INTO audit_log (actor_kind, action, chain_seq, hash) "
    "VALUES ('system', 'forged', 999999, '\\x00')",
    "INSERT INTO audit_log (actor_kind, action, at) VALUES ('system', 'backdated', '2001-01-01')",
    "SET session_replication_role = replica",
    "INSERT INTO schema_migrations (filename, sha256) VALUES ('9999_x.sql', 'x')",
    "DELETE FROM schema_migrations",
    "CREATE TABLE public.mine (x int)",
    "TRUNCATE patients CASCADE",
    "TRUNCATE readings",
    "ALTER TABLE patients DISABLE TRIGGER ALL",
    "DELETE FROM cpr_lookup_key",
    "UPDATE cpr_lookup_key SET fingerprint = fingerprint",
]


@pytest.mark.parametrize("statement", ATTACKS)
def test_the_application_role_cannot_touch_the_audit_log_or_the_schema(db, statement):
    db.execute("INSERT INTO audit_log (actor_kind, action) VALUES ('system', 'before')")
    before = db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(statement)
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == before
    triggers = db.execute(
        "SELECT tgname, tgenabled FROM pg_trigger "
        "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal ORDER BY tgname"
    ).fetchall()
    assert triggers == [
        {"tgname": name, "tgenabled": "O"}
        for name in (
            "audit_log_chain",
            "audit_log_no_delete",
            "audit_log_no_truncate",
            "audit_log_no_update",
        )
    ]


def test_the_triggers_refuse_the_owner_too(owner_db):
    owner_db.execute("INSERT INTO audit_log (actor_kind, action) VALUES ('system', 'x')")
    for statement in (
        "TRUNCATE audit_log",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET action = 'y'",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_chain",
    ):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            owner_db.execute(statement)


def test_the_application_role_may_add_and_read_audit_rows(db):
    db.execute(
        "INSERT INTO audit_log (actor_kind, actor_id, action, detail) "
        "VALUES ('system', 'roles-test', 'check', '{\"n\": 1}')"
    )
    row = db.execute(
        "SELECT action, chain_seq, length(hash) AS hash_len FROM audit_log "
        "WHERE actor_id = 'roles-test'"
    ).fetchone()
    assert row["action"] == "check" and row["chain_seq"] >= 1 and row["hash_len"] == 32


def test_new_reading_chunks_are_written_and_read_by_the_application_role(
    db, owner_db, factory, care
):
    # A week of 1990 has no chunk yet: the insert makes one, as the hypertable's owner.
    at = datetime(1990, 1, 1, 12, tzinfo=UTC) + timedelta(days=7 * (uuid.uuid4().int % 500))
    chunks_before = owner_db.execute("SELECT count(*) AS n FROM show_chunks('readings')").fetchone()
    db.execute(
        "INSERT INTO readings (measured_at, patient_id, metric, value, unit, source, origin, "
        "entered_by, message_id) VALUES (%s, %s, 'spo2', 95, '%%', 'nurse', %s, %s, %s)",
        (at, care.patient, f"user:{care.nurse.id}", care.nurse.id, uuid.uuid4().hex),
    )
    chunks = owner_db.execute(
        "SELECT c::text AS name, pg_get_userbyid(k.relowner) AS owner "
        "FROM show_chunks('readings') c JOIN pg_class k ON k.oid = c"
    ).fetchall()
    assert len(chunks) == chunks_before["n"] + 1
    assert {c["owner"] for c in chunks} == {"telemed_owner"}
    got = db.execute(
        "SELECT value FROM readings WHERE patient_id = %s AND measured_at = %s",
        (care.patient, at),
    ).fetchall()
    assert got == [{"value": 95.0}]
    db.execute("UPDATE readings SET detail = '{}' WHERE patient_id = %s", (care.patient,))


def test_tables_of_later_migrations_are_granted_to_the_application_role(db, owner_db):
    name = f"later_{uuid.uuid4().hex[:8]}"
    owner_db.execute(f"CREATE TABLE {name} (id bigint GENERATED ALWAYS AS IDENTITY, x int)")
    try:
        db.execute(f"INSERT INTO {name} (x) VALUES (1)")
        db.execute(f"UPDATE {name} SET x = 2")
        assert db.execute(f"SELECT x FROM {name}").fetchall() == [{"x": 2}]
        db.execute(f"DELETE FROM {name}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(f"TRUNCATE {name}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(f"DROP TABLE {name}")
    finally:
        owner_db.execute(f"DROP TABLE {name}")


def test_retention_through_the_owner_function_keeps_ten_years(db):
    with pytest.raises(psycopg.errors.RaiseException, match="at least ten years"):
        db.execute("SELECT drop_reading_chunks(now() - interval '9 years')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("SELECT drop_chunks('readings', older_than => now() - interval '11 years')")
    db.execute("SELECT drop_reading_chunks(now() - interval '50 years')")


def test_the_api_refuses_to_start_as_the_owner_role(settings, owner_dsn):
    from app.asgi import create_app

    app = create_app(msgspec.structs.replace(settings, dsn=owner_dsn))
    with pytest.raises(BaseExceptionGroup) as refused, TestClient(app=app):
        pass
    assert refused.group_contains(RoleError, match="connects as telemed_owner", depth=1)


def test_migrations_refuse_to_run_as_the_application_role(db_dsn):
    with psycopg.connect(db_dsn) as conn, pytest.raises(MigrationError, match="owner"):
        apply_migrations(conn, REPO_ROOT / "migrations")
