"""Database access: the connection pool and SQL kept in named blocks of .sql files."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

SQL_DIR = Path(__file__).parent / "sql"
_BLOCK = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` blocks into {name: sql}."""
    parts = _BLOCK.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries


@cache
def queries(module: str, folder: Path = SQL_DIR) -> dict[str, str]:
    """Named SQL blocks of `<folder>/<module>.sql`, loaded once."""
    return parse_queries((folder / f"{module}.sql").read_text())


class Queries:
    """Attribute access to one file's named blocks: `Q = Queries("patients"); Q.get_patient`."""

    def __init__(self, module: str, folder: Path = SQL_DIR) -> None:
        self._q = queries(module, folder)

    def __getattr__(self, name: str) -> str:
        try:
            return self._q[name]
        except KeyError:
            raise AttributeError(name) from None


async def _configure(conn: AsyncConnection) -> None:
    conn.row_factory = dict_row  # type: ignore[assignment]


def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
        kwargs={"application_name": "telemed"},
    )


def connect_sync(dsn: str, **kwargs: object) -> Connection:
    return Connection.connect(dsn, row_factory=dict_row, **kwargs)  # type: ignore[arg-type]
