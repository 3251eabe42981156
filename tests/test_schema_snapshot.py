"""The schema the migrations build, kept as a reviewed snapshot (docs/schema.sql).

A migration's effect on the schema shows in review as a diff of that file, and a change to the
database that no migration explains fails here. Rewrite the snapshot after adding a migration:
`TELEMED_UPDATE_SCHEMA=1 scripts/test tests/test_schema_snapshot.py`, then read the diff.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess

import psycopg

from telemed.migrate import apply_migrations
from telemed.settings import REPO_ROOT
from tests import services

SNAPSHOT = REPO_ROOT / "docs" / "schema.sql"
PG_DUMP = services.PG_BIN / "pg_dump"
# What differs between two dumps of the same schema: the server's and pg_dump's versions, the
# session settings, and pg_dump's per-run \restrict key.
_NOISE = re.compile(
    r"^(-- Dumped (from|by) .*|SET .*|SELECT pg_catalog\.set_config.*|\\(un)?restrict .*)$"
)


def schema_dump(dsn: str) -> str:
    """The schema of `dsn`'s database as pg_dump writes it, with TimescaleDB's own catalogue and
    chunks left out (they follow from the extension and the data), normalised."""
    done = subprocess.run(
        [str(PG_DUMP), "--schema-only", "--no-owner", "--exclude-schema=_timescaledb*",
         "--exclude-schema=timescaledb_*", "--dbname", dsn],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    return text


def test_the_migrated_schema_is_the_snapshot(empty_db):
    """Every migration applied to an empty database, as `telemed migrate` does."""
    with psycopg.connect(empty_db) as conn:
        apply_migrations(conn, REPO_ROOT / "migrations")
    dumped = schema_dump(empty_db)
    if os.environ.get("TELEMED_UPDATE_SCHEMA") == "1":
        SNAPSHOT.write_text(dumped)
    snapshot = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            snapshot.splitlines(keepends=True), dumped.splitlines(keepends=True),
            "docs/schema.sql", "the migrated database", n=2,
        )
    )  # fmt: skip
    assert not diff, (
        "the migrations build another schema than docs/schema.sql: after adding a migration, "
        "run TELEMED_UPDATE_SCHEMA=1 scripts/test tests/test_schema_snapshot.py and review the "
        f"diff\n{diff[:6000]}"
    )
