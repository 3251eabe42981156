"""The audit log's hash chain: every committed row gets the next position and a hash over the row
and the one before it, in commit order, also with many writers at once; `telemed audit verify`
names the first row that was changed, removed or written around the chain.

Tampering is done as the owner or the superuser, who can; each such test has a database of its
own, since what it breaks stays broken."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from telemed.audit import verify_chain
from telemed.settings import REPO_ROOT
from tests import services

MIGRATIONS = REPO_ROOT / "migrations"


@pytest.fixture
def chain_dsn(service_env: dict[str, str]) -> Iterator[str]:
    """A database of its own, as the application role."""
    dsn = services.fresh_database(service_env["TELEMED_DSN"], MIGRATIONS)
    yield dsn
    services.drop_database(dsn)


def add(conn: psycopg.Connection, action: str, n: int = 1) -> None:
    for i in range(n):
        conn.execute(
            "INSERT INTO audit_log (actor_kind, actor_id, action, detail, client_addr) "
            "VALUES ('user', %s, %s, %s, '10.1.2.3')",
            (f"u-{i}", action, Jsonb({"i": i, "text": "æøå \"'\\"})),
        )


def verify(dsn: str, **kw):
    with psycopg.connect(dsn) as conn:
        return verify_chain(conn, **kw)


def rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, chain_seq, action FROM audit_log ORDER BY id").fetchall()


def cli_verify(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify", *args],
        env={**os.environ, "TELEMED_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_committed_rows_take_consecutive_positions_and_verify(chain_dsn):
    with psycopg.connect(chain_dsn, autocommit=True) as conn:
        add(conn, "single")
        with conn.transaction():
            add(conn, "batch", 3)
        with pytest.raises(RuntimeError), conn.transaction():
            add(conn, "rolled back", 2)
            raise RuntimeError
        add(conn, "after")
    got = rows(chain_dsn)
    assert [r[2] for r in got] == ["single", "batch", "batch", "batch", "after"]
    assert [r[1] for r in got] == [1, 2, 3, 4, 5]
    report = verify(chain_dsn)
    assert report.broken is None and report.rows == 5 and report.head_seq == 5
    done = cli_verify(chain_dsn)
    assert done.returncode == 0, done.stderr
    assert f"chain intact, 5 rows, head 5:{report.head_hash}" in done.stdout


def test_the_chain_follows_commit_order_not_insert_order(chain_dsn):
    with psycopg.connect(chain_dsn) as first, psycopg.connect(chain_dsn) as second:
        add(first, "inserted first, committed second")
        add(second, "inserted second, committed first")
        second.commit()
        first.commit()
    got = {r[2]: r for r in rows(chain_dsn)}
    early, late = got["inserted first, committed second"], got["inserted second, committed first"]
    assert early[0] < late[0] and early[1] == 2 and late[1] == 1
    assert verify(chain_dsn).broken is None


def _writer(dsn: str, seed: int, transactions: int) -> int:
    """One process: transactions of one to three rows, some rolled back, with pauses between
    the inserts and the commit so that the processes' transactions overlap."""
    rnd = random.Random(seed)
    committed = 0
    with psycopg.connect(dsn) as conn:
        for t in range(transactions):
            n = rnd.randint(1, 3)
            add(conn, f"w{seed}-t{t}", n)
            time.sleep(rnd.random() * 0.004)
            if rnd.random() < 0.1:
                conn.rollback()
            else:
                conn.commit()
                committed += n
    return committed


@pytest.mark.parametrize("round_", range(3))
def test_many_processes_writing_at_once_make_one_valid_chain(chain_dsn, round_):
    with ProcessPoolExecutor(6) as pool:
        futures = [pool.submit(_writer, chain_dsn, 100 * round_ + i, 40) for i in range(6)]
        committed = sum(f.result() for f in futures)
    got = rows(chain_dsn)
    assert len(got) == committed
    assert sorted(r[1] for r in got) == list(range(1, committed + 1))
    report = verify(chain_dsn)
    assert report.broken is None and report.rows == committed


def _superuser(dsn: str) -> psycopg.Connection:
    return psycopg.connect(services.role_dsn(dsn, "superuser"), autocommit=True)


def _owner(dsn: str) -> psycopg.Connection:
    return psycopg.connect(services.role_dsn(dsn, "owner"), autocommit=True)


def _filled(dsn: str, n: int = 6) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(n):
            add(conn, f"row {i}")
    return rows(dsn)


def test_a_row_changed_by_the_superuser_is_named(chain_dsn):
    got = _filled(chain_dsn)
    victim = got[3][0]
    with _superuser(chain_dsn) as su:
        su.execute("SET session_replication_role = replica")
        su.execute("UPDATE audit_log SET actor_id = 'someone else' WHERE id = %s", (victim,))
    report = verify(chain_dsn)
    assert report.broken is not None and report.broken.audit_id == victim
    assert "changed" in report.broken.reason and report.rows == 3
    done = cli_verify(chain_dsn)
    assert done.returncode == 1
    assert f"chain broken at row id {victim} (chain position 4)" in done.stderr


def test_a_row_changed_by_the_owner_with_its_triggers_off_is_named(chain_dsn):
    got = _filled(chain_dsn)
    victim = got[1][0]
    with _owner(chain_dsn) as owner:
        owner.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        owner.execute("UPDATE audit_log SET detail = '{\"i\": 99}' WHERE id = %s", (victim,))
        owner.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    assert verify(chain_dsn).broken.audit_id == victim
    assert cli_verify(chain_dsn).returncode == 1


def test_a_removed_row_is_named_by_the_one_after_it(chain_dsn):
    got = _filled(chain_dsn)
    with _superuser(chain_dsn) as su:
        su.execute("SET session_replication_role = replica")
        su.execute("DELETE FROM audit_log WHERE id = %s", (got[2][0],))
    broken = verify(chain_dsn).broken
    assert broken.audit_id == got[3][0] and "positions 3 to 3 are missing" in broken.reason


def test_rows_removed_at_the_end_or_all_of_them_are_seen(chain_dsn):
    got = _filled(chain_dsn)
    with _owner(chain_dsn) as owner:
        owner.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        owner.execute("DELETE FROM audit_log WHERE id >= %s", (got[4][0],))
    broken = verify(chain_dsn).broken
    assert broken.audit_id is None and "rows at the end were removed" in broken.reason
    with _owner(chain_dsn) as owner:
        owner.execute("TRUNCATE audit_log")
        owner.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    broken = verify(chain_dsn).broken
    assert broken is not None and "head is at position 6 but its last row at 0" in broken.reason
    done = cli_verify(chain_dsn)
    assert done.returncode == 1 and "the end of the log" in done.stderr


def test_a_row_written_around_the_chain_is_named(chain_dsn):
    _filled(chain_dsn, 2)
    with _owner(chain_dsn) as owner:
        owner.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_chain")
        forged = owner.execute(
            "INSERT INTO audit_log (actor_kind, action) VALUES ('system', 'forged') RETURNING id"
        ).fetchone()[0]
        owner.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_chain")
    broken = verify(chain_dsn).broken
    assert broken.audit_id == forged and "no place in the chain" in broken.reason


def test_a_chain_rewritten_from_a_row_on_is_caught_by_an_anchor_kept_elsewhere(chain_dsn):
    got = _filled(chain_dsn)
    anchor = verify(chain_dsn)
    # The superuser changes row 3 and recomputes every hash from there, as the chain would.
    with _superuser(chain_dsn) as su:
        su.execute("SET session_replication_role = replica")
        su.execute("UPDATE audit_log SET action = 'rewritten' WHERE id = %s", (got[2][0],))
        su.execute(
            """DO $$ DECLARE r audit_log; prev bytea; BEGIN
                 SELECT hash INTO prev FROM audit_log WHERE chain_seq = 2;
                 FOR r IN SELECT * FROM audit_log WHERE chain_seq >= 3 ORDER BY chain_seq LOOP
                   r.hash := sha256(prev || convert_to(audit_log_canonical(r), 'UTF8'));
                   UPDATE audit_log SET hash = r.hash WHERE id = r.id; prev := r.hash;
                 END LOOP;
                 UPDATE audit_chain SET hash = prev; END $$"""
        )
    assert verify(chain_dsn).broken is None
    at_head = f"{anchor.head_seq}:{anchor.head_hash}"
    broken = verify(chain_dsn, anchor=(anchor.head_seq, bytes.fromhex(anchor.head_hash))).broken
    assert broken.audit_id == got[5][0] and "anchor" in broken.reason
    done = cli_verify(chain_dsn, "--anchor", at_head)
    assert done.returncode == 1 and f"row id {got[5][0]}" in done.stderr


def test_rows_written_before_the_chain_existed_are_chained_by_its_migration(
    service_env, tmp_path: Path
):
    """A database at 0060 with audit rows gets them chained, in id order, by 0061."""
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0061":
            shutil.copy(path, before)
    server = services.role_dsn(service_env["TELEMED_DSN"], "superuser").rpartition("/")[0]
    name = f"telemed_chain_{os.getpid()}_{random.randrange(10**6)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {services.OWNER_ROLE}')
    dsn = services.role_dsn(f"{server}/{name}", "owner")
    try:
        with psycopg.connect(dsn) as conn:
            from telemed.migrate import apply_migrations

            apply_migrations(conn, before)
            add(conn, "old", 4)
            applied = apply_migrations(conn, MIGRATIONS)
            assert applied[0].startswith("0061")
        report = verify(dsn)
        assert report.broken is None and report.rows == 4 and report.head_seq == 4
        with psycopg.connect(services.role_dsn(dsn, "app"), autocommit=True) as conn:
            add(conn, "new")
        assert verify(dsn).rows == 5 and verify(dsn).broken is None
    finally:
        services.drop_database(dsn)
