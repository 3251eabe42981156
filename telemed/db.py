"""Database access: the connection pool and SQL kept in named blocks of .sql files."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, LiteralString, TypeAlias, TypedDict, cast

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from telemed.resources import package_dir

SQL_DIR = package_dir("telemed", "sql")

# Every connection the application opens hands rows out as dicts (dict_row): these are the
# types its functions take.
Row: TypeAlias = dict[str, Any]
AsyncConn: TypeAlias = AsyncConnection[DictRow]
SyncConn: TypeAlias = Connection[DictRow]
Pool: TypeAlias = AsyncConnectionPool[AsyncConn]
_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


def one_row(row: Row | None, what: str) -> Row:
    """The row of a query that always returns one (INSERT … RETURNING, an aggregate, a row the
    same transaction holds): its absence is a defect, raised loudly with `what` it was."""
    if row is None:
        raise LookupError(f"{what}: the query returned no row")
    return row


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a file of `-- name: x` blocks into {name: sql}.

    The SQL is typed as a literal string, as psycopg asks of a query: it comes from the package's
    own files, never from input (values are bound as parameters)."""
    parts = _BLOCK.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} defined twice")
        queries[name] = cast(LiteralString, body.strip().rstrip(";"))
    return queries


@cache
def queries(module: str, folder: Path = SQL_DIR) -> dict[str, LiteralString]:
    """Named SQL blocks of `<folder>/<module>.sql`, loaded once."""
    return parse_queries((folder / f"{module}.sql").read_text())


class Queries:
    """Attribute access to one file's named blocks: `Q = Queries("patients"); Q.get_patient`."""

    def __init__(self, module: str, folder: Path = SQL_DIR) -> None:
        self._q = queries(module, folder)

    def __getattr__(self, name: str) -> LiteralString:
        try:
            return self._q[name]
        except KeyError:
            raise AttributeError(name) from None


def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str = "telemed",
    **connect: Any,
) -> Pool:
    """A pool (not yet open) of dict-row connections, each checked when handed out; `connect`
    goes to every connection (KEEPALIVE, for one)."""
    return AsyncConnectionPool(
        dsn,
        connection_class=AsyncConn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"application_name": application_name, "row_factory": dict_row, **connect},
    )


class Keepalive(TypedDict):
    """libpq's TCP keepalive parameters (seconds), so that a connection held open for long (a
    LISTEN, a lock) notices a vanished server or peer within about a minute."""

    keepalives: int
    keepalives_idle: int
    keepalives_interval: int
    keepalives_count: int


KEEPALIVE = Keepalive(keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)


async def connect_async(dsn: str, **kwargs: Any) -> AsyncConn:
    """One connection of its own (not from the pool), rows as dicts."""
    return await AsyncConnection.connect(dsn, row_factory=dict_row, **kwargs)


def connect_sync(dsn: str, **kwargs: Any) -> SyncConn:
    return Connection.connect(dsn, row_factory=dict_row, **kwargs)


class RoleError(RuntimeError):
    """The application connects as a role that could change the audit log."""


_ROLE_RIGHTS = """
SELECT current_user AS role, r.rolsuper AS superuser,
       has_table_privilege('audit_log', 'UPDATE') OR has_table_privilege('audit_log', 'DELETE')
           OR has_table_privilege('audit_log', 'TRUNCATE') AS audit_changeable,
       EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid AND c.relpersistence <> 't')
           AS owns_tables
FROM pg_roles r WHERE r.rolname = current_user
"""


async def check_application_role(pool: Pool) -> None:
    """Refuse to serve as a role that owns tables or may change the audit log (a superuser, the
    owner role): the application runs as the role that owns nothing (docs/deployment.md)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_ROLE_RIGHTS)
        row = one_row(await cur.fetchone(), "the application role's rights")
    if row["superuser"] or row["audit_changeable"] or row["owns_tables"]:
        raise RoleError(
            f"the application connects as {row['role']}, who owns tables or may change the "
            "audit log; give TELEMED_DSN the application role (docs/deployment.md, Database "
            "roles) and TELEMED_OWNER_DSN the owner, for migrations"
        )
