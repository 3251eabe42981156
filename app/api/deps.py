"""Dependencies shared by the controllers: a pooled connection and the acting user."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from psycopg import AsyncConnection

from telemed.access import Actor


async def provide_conn(state: State) -> AsyncGenerator[AsyncConnection, None]:
    async with state.pool.connection() as conn:
        yield conn


def provide_actor(request: Request) -> Actor:
    return request.user


DEPENDENCIES = {
    "conn": Provide(provide_conn),
    "actor": Provide(provide_actor, sync_to_thread=False),
}
