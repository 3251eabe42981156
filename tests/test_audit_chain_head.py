"""`telemed audit verify` on a database whose chain head (the one row of `audit_chain`) was
deleted by the owner: a broken chain, reported as such, never a crash on the missing row."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from telemed.audit import verify_chain
from telemed.settings import REPO_ROOT
from tests import services


@pytest.fixture
def chain_dsn(service_env: dict[str, str]) -> Iterator[str]:
    """A database of its own (what is broken here stays broken), as the application role."""
    dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    yield dsn
    services.drop_database(dsn)


def _remove_head(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_log (actor_kind, actor_id, action, client_addr) "
            "VALUES ('user', 'u-1', 'read', '10.1.2.3')"
        )
    with psycopg.connect(services.role_dsn(dsn, "owner"), autocommit=True) as owner:
        owner.execute("ALTER TABLE audit_chain DISABLE TRIGGER USER")
        owner.execute("DELETE FROM audit_chain")
        owner.execute("ALTER TABLE audit_chain ENABLE TRIGGER USER")


def test_a_deleted_chain_head_is_reported_as_a_break(chain_dsn):
    _remove_head(chain_dsn)
    with psycopg.connect(chain_dsn) as conn:
        report = verify_chain(conn)
    assert report.broken is not None
    assert report.broken.audit_id is None
    assert "head" in report.broken.reason and "missing" in report.broken.reason


def test_the_command_names_the_missing_head_and_exits_1(chain_dsn):
    _remove_head(chain_dsn)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        env={**os.environ, "TELEMED_DSN": chain_dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "chain broken" in done.stderr and "missing" in done.stderr
    assert "Traceback" not in done.stderr
