"""CPR numbers are stored encrypted (AES-256-GCM) with a keyed hash (HMAC-SHA256) that carries
the uniqueness: no column holds the number, a duplicate still gets a clean 409, a process with
another look-up key stores nothing, and the keys rotate."""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient
from psycopg.rows import dict_row

from telemed.cpr import CprKeyError, lookup_hash, parse_keys, reveal
from telemed.migrate import apply_migrations
from telemed.settings import REPO_ROOT, Settings, load_settings
from tests import services
from tests.conftest import Factory

MIGRATIONS = REPO_ROOT / "migrations"


def new_cpr(rnd: random.Random | None = None) -> tuple[str, date]:
    """A CPR number of someone born in the 1900s (7th digit 0-3), and the birth date."""
    rnd = rnd or random.Random()
    born = date(1930, 1, 1) + timedelta(days=rnd.randrange(25000))
    return f"{born:%d%m%y}{rnd.randrange(4)}{rnd.randrange(1000):03d}", born


def key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def patient_body(cpr: str, born: date, org: uuid.UUID, name: str = "Karen Jensen") -> dict:
    return {
        "name": name,
        "date_of_birth": born.isoformat(),
        "cpr": cpr,
        "responsible_organisation_id": str(org),
    }


def test_no_column_holds_the_number_and_the_keyed_hash_finds_it(client, db, care, settings):
    cpr, born = new_cpr()
    r = client.post(
        "/api/v1/admin/patients",
        headers=care.admin.headers,
        json=patient_body(f"{cpr[:6]}-{cpr[6:]}", born, care.hospital),
    )
    assert r.status_code == 201, r.text
    row = db.execute(
        "SELECT to_jsonb(p)::text AS everything, cpr_hmac, cpr_enc, cpr_key FROM patients p "
        "WHERE id = %s",
        (r.json()["id"],),
    ).fetchone()
    assert cpr not in row["everything"] and cpr[:6] not in row["everything"]
    assert bytes(row["cpr_hmac"]) == lookup_hash(settings.cpr_keys, cpr)
    assert reveal(settings.cpr_keys, row["cpr_enc"], row["cpr_key"]) == cpr
    found = db.execute(
        "SELECT id FROM patients WHERE cpr_hmac = %s", (lookup_hash(settings.cpr_keys, cpr),)
    ).fetchone()
    assert str(found["id"]) == r.json()["id"]
    # The same number twice, written either way, is a clean conflict that does not repeat it.
    for again in (cpr, f"{cpr[:6]}-{cpr[6:]}"):
        dup = client.post(
            "/api/v1/admin/patients",
            headers=care.admin.headers,
            json=patient_body(again, born, care.hospital, "Someone Else"),
        )
        assert dup.status_code == 409, dup.text
        assert dup.json()["problems"] == [
            {"field": "cpr", "message": "already registered", "code": "already_registered"}
        ]
        assert cpr not in dup.text and cpr[:6] not in dup.text


def test_a_process_with_another_look_up_key_stores_nothing(settings, db, care, caplog):
    from app.asgi import create_app

    other = parse_keys(f"other:{key_text()}", key_text())
    cpr, born = new_cpr()
    name = f"Wrong Key {uuid.uuid4().hex[:8]}"
    # The database's look-up key is claimed by the first number stored, as in production.
    first, first_born = new_cpr()
    with TestClient(app=create_app(settings)) as right:
        assert (
            right.post(
                "/api/v1/admin/patients",
                headers=care.admin.headers,
                json=patient_body(first, first_born, care.hospital),
            ).status_code
            == 201
        )
    app = create_app(msgspec.structs.replace(settings, cpr_keys=other))
    with TestClient(app=app, raise_server_exceptions=False) as wrong:
        r = wrong.post(
            "/api/v1/admin/patients",
            headers=care.admin.headers,
            json=patient_body(cpr, born, care.hospital, name),
        )
    assert r.status_code == 500
    assert db.execute("SELECT count(*) AS n FROM patients WHERE name = %s", (name,)).fetchone() == {
        "n": 0
    }
    assert "CPR look-up key configured is not the one" in caplog.text
    assert cpr not in caplog.text and cpr not in r.text


def test_keys_are_checked_when_read(tmp_path):
    good = key_text()
    for encryption, lookup, problem in [
        ("k1:" + good, "", "both"),
        ("", good, "both"),
        ("k1:not base64!", good, "is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), good, "32 bytes"),
        (f"k1:{good},k1:{key_text()}", key_text(), "twice"),
        (f"bad id:{good}", key_text(), "id"),
        (f"k1:{good}", good, "differ"),
    ]:
        env = {"TELEMED_STATE_DIR": str(tmp_path), "TELEMED_CPR_KEYS": encryption}
        env["TELEMED_CPR_LOOKUP_KEY"] = lookup
        with pytest.raises(ValueError, match=problem):
            load_settings(env)
    keys = load_settings(
        {
            "TELEMED_STATE_DIR": str(tmp_path),
            "TELEMED_CPR_KEYS": f"new:{key_text()},old:{good}",
            "TELEMED_CPR_LOOKUP_KEY": key_text(),
        }
    ).cpr_keys
    assert keys.current == "new" and set(keys.encryption) == {"new", "old"}
    assert good not in repr(keys) and good[:20] not in repr(keys)


@pytest.fixture
def own(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    dsn = services.fresh_database(service_env["TELEMED_DSN"], MIGRATIONS)
    yield dsn, services.test_settings(service_env, dsn, tmp_path)
    services.drop_database(dsn)


def _admin(dsn: str):
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        factory = Factory(conn)
        org = factory.org()
        return factory.user("admin", org), org


def test_keys_rotate_and_the_old_look_up_key_is_refused_after(own):
    from app.asgi import create_app

    dsn, settings = own
    old = parse_keys(f"k1:{key_text()}", key_text())
    admin, org = _admin(dsn)
    numbers = [new_cpr() for _ in range(3)]
    with TestClient(app=create_app(msgspec.structs.replace(settings, cpr_keys=old))) as c:
        for cpr, born in numbers:
            r = c.post("/api/v1/admin/patients", headers=admin.headers,
                       json=patient_body(cpr, born, org))  # fmt: skip
            assert r.status_code == 201, r.text
    new_enc, new_lookup = key_text(), key_text()
    old_enc = base64.b64encode(old.encryption["k1"]).decode()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "cpr", "rotate"],
        env={
            **os.environ,
            "TELEMED_OWNER_DSN": services.role_dsn(dsn, "owner"),
            "TELEMED_CPR_KEYS": f"k2:{new_enc},k1:{old_enc}",
            "TELEMED_CPR_LOOKUP_KEY": new_lookup,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "3 numbers now under key 'k2'" in done.stdout
    new = parse_keys(f"k2:{new_enc}", new_lookup)  # the old key can go now
    with psycopg.connect(dsn) as conn:
        stored = conn.execute("SELECT cpr_hmac, cpr_enc, cpr_key FROM patients").fetchall()
    assert sorted(reveal(new, enc, kid) for _, enc, kid in stored) == sorted(c for c, _ in numbers)
    assert {kid for *_, kid in stored} == {"k2"}
    assert {bytes(h) for h, *_ in stored} == {lookup_hash(new, c) for c, _ in numbers}
    with TestClient(app=create_app(msgspec.structs.replace(settings, cpr_keys=new))) as c:
        cpr, born = numbers[1]
        dup = c.post("/api/v1/admin/patients", headers=admin.headers,
                     json=patient_body(cpr, born, org, "Again"))  # fmt: skip
        assert dup.status_code == 409
    app = create_app(msgspec.structs.replace(settings, cpr_keys=old))
    with TestClient(app=app, raise_server_exceptions=False) as c:
        cpr, born = new_cpr()
        assert (
            c.post(
                "/api/v1/admin/patients", headers=admin.headers, json=patient_body(cpr, born, org)
            ).status_code
            == 500
        )


def _database_at(service_env: dict[str, str], tmp_path: Path, last: str) -> str:
    """A new database of the owner role, migrated up to and including `last`; owner DSN."""
    folder = tmp_path / "upto"
    folder.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name[:4] <= last:
            shutil.copy(path, folder)
    server = services.role_dsn(service_env["TELEMED_DSN"], "superuser").rpartition("/")[0]
    name = f"telemed_cpr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {services.OWNER_ROLE}')
    dsn = services.role_dsn(f"{server}/{name}", "owner")
    with psycopg.connect(dsn) as conn:
        apply_migrations(conn, folder)
    return dsn


def test_the_migration_encrypts_the_numbers_stored_in_plain_text(service_env, tmp_path):
    dsn = _database_at(service_env, tmp_path, "0061")
    try:
        numbers = [new_cpr() for _ in range(2)]
        with psycopg.connect(dsn) as conn:
            for cpr, born in numbers:
                conn.execute(
                    "INSERT INTO patients (pseudonym, name, date_of_birth, cpr) "
                    "VALUES (%s, 'Old Patient', %s, %s)",
                    (f"P-{uuid.uuid4().hex[:8]}", born, cpr),
                )
            conn.commit()
            # Without keys nothing is applied: 0062 and its data step are one transaction.
            with pytest.raises(CprKeyError, match="no CPR keys"):
                apply_migrations(conn, MIGRATIONS)
            assert conn.execute("SELECT count(*) FROM patients WHERE cpr IS NOT NULL").fetchone()[
                0
            ] == len(numbers)
            keys = parse_keys(f"k1:{key_text()}", key_text())
            applied = apply_migrations(conn, MIGRATIONS, cpr_keys=keys)
            assert applied[:2] == [
                "0062_patients_cpr_encrypted.sql",
                "0063_patients_cpr_plaintext_dropped.sql",
            ]
            columns = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'patients'"
                )
            }
            assert "cpr" not in columns
            stored = conn.execute("SELECT cpr_enc, cpr_key, cpr_hmac FROM patients").fetchall()
            assert sorted(reveal(keys, e, k) for e, k, _ in stored) == sorted(c for c, _ in numbers)
            fingerprint = conn.execute("SELECT fingerprint FROM cpr_lookup_key").fetchone()[0]
            assert bytes(fingerprint) == keys.fingerprint
    finally:
        services.drop_database(dsn)
