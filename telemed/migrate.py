"""Apply the ordered SQL files of the `migrations` package, recording each with its checksum.

The files are the repository's top-level migrations/ folder, shipped in the wheel as package
data, so that `telemed migrate` reads them from the installed package (settings.migrations_dir,
or TELEMED_MIGRATIONS_DIR).

A file that was applied is never applied again; one whose content changed after it was applied
is refused, because the database would no longer match what the file says. Migrations run as
the owner of the database, which then owns every object they make (docs/deployment.md,
"Database roles"). A few files have a data step in Python that runs right after them, in the
same transaction: what SQL alone cannot do, such as encrypting with the application's keys.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

from psycopg.rows import dict_row

from telemed import cpr
from telemed.db import SyncConn, one_row

log = logging.getLogger("telemed.migrate")
_NAME = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x7E1E_3ED0


class MigrationError(Exception):
    pass


def migration_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".sql")
    bad = [p.name for p in files if not _NAME.match(p.name)]
    if bad:
        raise MigrationError(f"migration file names must look like 0001_name.sql: {bad}")
    numbers = [p.name[:4] for p in files]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        raise MigrationError(f"two migrations share a number: {dupes}")
    return files


def _data_steps(cpr_keys: cpr.CprKeys | None) -> dict[str, Callable[[SyncConn], object]]:
    return {
        "0062_patients_cpr_encrypted.sql": lambda conn: cpr.encrypt_plaintext(conn, cpr_keys),
    }


def check_owner(conn: SyncConn) -> None:
    """Refuse to migrate as any role but the database's owner: objects made by another role
    would escape the owner's default privileges, and the application role must own nothing."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT current_user AS user, pg_get_userbyid(datdba) AS owner FROM pg_database "
            "WHERE datname = current_database()"
        ).fetchone()
    row = one_row(row, "the current database's owner")
    user, owner = row["user"], row["owner"]
    if user != owner:
        raise MigrationError(
            f"migrations run as the owner of the database ({owner}), not as {user}: "
            "use TELEMED_OWNER_DSN (docs/deployment.md, Database roles)"
        )


def apply_migrations(
    conn: SyncConn, folder: Path, *, cpr_keys: cpr.CprKeys | None = None
) -> list[str]:
    """Apply pending migrations in order; return the names applied. Autocommit connection,
    as the database's owner. `cpr_keys` encrypt CPR numbers stored in plain text, if any."""
    conn.autocommit = True
    check_owner(conn)
    steps = _data_steps(cpr_keys)
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                 filename text PRIMARY KEY,
                 sha256 text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r[0] if isinstance(r, tuple) else r["filename"]: (
                r[1] if isinstance(r, tuple) else r["sha256"]
            )
            for r in conn.execute("SELECT filename, sha256 FROM schema_migrations").fetchall()
        }
        applied: list[str] = []
        for path in migration_files(folder):
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != digest:
                    raise MigrationError(
                        f"{path.name} was changed after it was applied; add a new migration instead"
                    )
                continue
            log.info("applying %s", path.name)
            with conn.transaction():
                conn.execute(text)
                if path.name in steps:
                    steps[path.name](conn)
                conn.execute(
                    "INSERT INTO schema_migrations (filename, sha256) VALUES (%s, %s)",
                    (path.name, digest),
                )
            applied.append(path.name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
