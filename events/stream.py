"""The event stream: outbox events pushed to signed-in clinicians as server-sent events.

One LISTEN connection per process (the hub) is shared by every open stream. A NOTIFY carries an
outbox id and arrives only once its transaction committed, so the hub fetches exactly the rows
named, never "everything after the last id" — a lower id that commits late is not skipped.
A stream sees an event when the event's `organisation_ids` contain the user's organisation.

An event's SSE id is `<outbox id>:<horizon>`, the horizon being the xmin of the writing
transaction's snapshot (migration 0024): every transaction below it had ended. An event with a
lower id that commits after this one was running then, so its xid is at or above the horizon;
one that committed before it was notified before it and sent first. On reconnect a client sends
`Last-Event-ID` and the stream first replays the organisation's events, at most `replay_h`
hours old (settings.events), with a higher outbox id, or a lower one written by a transaction
at or above the horizon. A replay may repeat an event the client has (its outbox id tells);
it skips none that the caller may see. Streams end after `max_stream_s` so that a server can
shut down; the `retry` field makes the browser reconnect at once, with its Last-Event-ID.

What a stream may deliver is decided when it delivers, not when the event was written: every
`auth_check_s`, busy or idle, the stream checks that its token still resolves to the same user,
active, with the same role and organisation, and ends otherwise (deactivation, revocation,
expiry, a change of role). An event naming a patient is sent, live or replayed, only while
the caller's organisation may see that patient now (telemed.access: a current relation that
opens the patient to the caller's role), or, for an alert's event, while the organisation is
the one the alert was routed to (alerts.access). Events skipped so are neither sent nor
audited. What this does not cover: an event already sent stays with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg

from events import notify
from events.outbox import CHANNEL
from telemed import audit, auth
from telemed.access import CLINICAL_RELATIONS, Actor
from telemed.db import KEEPALIVE, AsyncConn, Pool, connect_async, one_row
from telemed.settings import EventStreamSettings

log = logging.getLogger("telemed.events")

RETRY_MS = 2000
QUEUE_MAX = 1000


REPLAY_PAGE = 500

_ROWS = (
    "SELECT id, created_at, event, patient_id, organisation_ids, payload, horizon::text FROM outbox"
)


# The rows of `ids` that `org` may see now, in the role's relations (telemed.access) or as the
# organisation an alert was routed to (alerts.access).
_VISIBLE = """
SELECT o.id FROM outbox o
WHERE o.id = ANY(%(ids)s)
  AND (o.patient_id IS NULL
       OR (%(responsible)s AND EXISTS (
           SELECT 1 FROM holder_at(o.patient_id, now()) h WHERE h.organisation_id = %(org)s))
       OR EXISTS (
           SELECT 1 FROM care_relations c
           WHERE c.patient_id = o.patient_id AND c.organisation_id = %(org)s
             AND c.ended_at IS NULL AND c.relation = ANY(%(relations)s))
       OR (o.event LIKE 'alert.%%' AND o.payload->>'alert_id' ~ '^[0-9]{1,18}$' AND EXISTS (
           SELECT 1 FROM alerts a
           WHERE a.id = (o.payload->>'alert_id')::bigint AND a.patient_id = o.patient_id
             AND a.organisation_id = %(org)s)))
"""


class Resync:
    """Put in a stream's queue when it may have missed events (a slow reader, a lost LISTEN)."""


RESYNC = Resync()


class Subscription:
    def __init__(self, organisation_id: uuid.UUID) -> None:
        self.organisation_id = organisation_id
        self.queue: asyncio.Queue[list[dict[str, Any]] | Resync] = asyncio.Queue(QUEUE_MAX)

    def offer(self, item: list[dict[str, Any]] | Resync) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class OutboxHub:
    """LISTENs while any stream is open; reconnects after a lost connection and tells every
    stream to catch up from the database."""

    def __init__(self, dsn: str, *, reconnect_s: float = 1.0) -> None:
        self.dsn = dsn
        self.reconnect_s = reconnect_s
        self.subs: set[Subscription] = set()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, organisation_id: uuid.UUID, *, wait_s: float = 10.0) -> Subscription:
        sub = Subscription(organisation_id)
        self.subs.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-hub")
        try:
            await asyncio.wait_for(self.listening.wait(), wait_s)
        except TimeoutError:
            self.subs.discard(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subs.discard(sub)

    async def _run(self) -> None:
        connected_before = False
        while self.subs:
            try:
                async with await connect_async(
                    self.dsn, autocommit=True, application_name="telemed-events", **KEEPALIVE
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if connected_before:
                        for sub in list(self.subs):
                            sub.offer(RESYNC)
                    connected_before = True
                    self.listening.set()
                    await self._listen(conn)
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("event stream lost its database connection: %s", exc)
                await asyncio.sleep(self.reconnect_s)
            finally:
                self.listening.clear()

    async def _listen(self, conn: AsyncConn) -> None:
        while self.subs:
            ids = [int(n.payload) async for n in conn.notifies(timeout=1.0, stop_after=1)]
            if not ids:
                continue
            ids += [int(n.payload) async for n in conn.notifies(timeout=0.02)]
            cur = await conn.execute(f"{_ROWS} WHERE id = ANY(%s) ORDER BY id", (ids,))
            rows = await cur.fetchall()
            for sub in list(self.subs):
                mine = [r for r in rows if sub.organisation_id in r["organisation_ids"]]
                if mine:
                    sub.offer(mine)


def hub_for(state: Any, dsn: str) -> OutboxHub:
    """The process's hub, kept in the application state."""
    hub = getattr(state, "events_hub", None)
    if hub is None:
        hub = OutboxHub(dsn)
        state.events_hub = hub
    return hub


class Resume(msgspec.Struct, frozen=True):
    """Where a client was: the outbox id of its last event, and that event's horizon."""

    after: int
    horizon: int | None = None


def parse_last_event_id(value: str | None) -> Resume | None:
    """`4711:90210` as this stream sends it, or a bare outbox id `4711`; None if neither."""
    if value is None:
        return None
    after, sep, horizon = value.strip().partition(":")
    if not after.isdigit() or (sep and not horizon.isdigit()):
        return None
    return Resume(int(after), int(horizon) if sep else None)


def message(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the fields of one server-sent event; the data is the JSON envelope."""
    data = msgspec.json.encode(notify.envelope(row)).decode()
    return {"id": f"{row['id']}:{row['horizon']}", "event": row["event"], "data": data}


async def replay(
    conn: AsyncConn,
    organisation_id: uuid.UUID,
    since: Resume,
    *,
    now: datetime,
    window: timedelta = timedelta(hours=24),
) -> list[dict[str, Any]]:
    """The organisation's events after `since`: a page of higher ids, and before it the lower
    ids of transactions at or above the horizon (few: those running at one moment)."""
    mine = "organisation_ids @> ARRAY[%(org)s]::uuid[] AND created_at >= %(oldest)s"
    params = {
        "org": organisation_id,
        "oldest": now - window,
        "after": since.after,
        "horizon": str(since.horizon),
        "page": REPLAY_PAGE,
    }
    async with conn.transaction():
        late: list[dict[str, Any]] = []
        if since.horizon is not None:
            cur = await conn.execute(
                f"{_ROWS} WHERE id < %(after)s AND xid >= %(horizon)s::xid8 AND {mine} ORDER BY id",
                params,
            )
            late = await cur.fetchall()
        cur = await conn.execute(
            f"{_ROWS} WHERE id > %(after)s AND {mine} ORDER BY id LIMIT %(page)s", params
        )
        return late + await cur.fetchall()


async def _audit(pool: Pool, actor: Actor, rows: list[dict[str, Any]]) -> None:
    """Every event naming a patient is a read of that patient's data."""
    named = [r for r in rows if r["patient_id"] is not None]
    if not named:
        return
    async with pool.connection() as conn, conn.transaction():
        for row in named:
            await audit.record(
                conn,
                actor,
                "read",
                patient_id=row["patient_id"],
                object_type="event",
                object_id=row["id"],
                detail={"event": row["event"]},
            )


async def _allowed(
    pool: Pool, actor: Actor, token: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The rows the actor may see now, or None when the sign-in no longer holds: the token
    resolves to nobody, or to a different role or organisation."""
    async with pool.connection() as conn:
        now = await auth.resolve(conn, token, client_addr=None, request_id=None)
        if now is None or (now.role, now.organisation_id) != (actor.role, actor.organisation_id):
            await conn.rollback()
            return None
        named = [r["id"] for r in rows if r["patient_id"] is not None]
        visible: set[int] = set()
        if named:
            relations = list(CLINICAL_RELATIONS.get(actor.role, ()))
            cur = await conn.execute(
                _VISIBLE,
                {
                    "ids": named,
                    "org": actor.organisation_id,
                    "relations": relations,
                    "responsible": "responsible" in relations,
                },
            )
            visible = {r["id"] for r in await cur.fetchall()}
        await conn.rollback()
    return [r for r in rows if r["patient_id"] is None or r["id"] in visible]


async def stream(
    pool: Pool,
    hub: OutboxHub,
    actor: Actor,
    token: str,
    resume: Resume | None,
    settings: EventStreamSettings,
) -> AsyncIterator[dict[str, Any]]:
    """The events of `actor`'s organisation, as dicts of SSE fields, until the stream's
    maximum age (`settings.max_stream_s`) passed."""
    assert actor.organisation_id is not None
    heartbeat_s, max_s = settings.heartbeat_s, settings.max_stream_s
    check_every_s = settings.auth_check_s
    window = timedelta(hours=settings.replay_h)
    org = actor.organisation_id
    sub = await hub.subscribe(org)
    ends = time.monotonic() + max_s
    sent: set[int] = set()  # outbox ids, so that a replay never repeats what this stream sent
    try:
        pending: list[dict[str, Any]] | Resync | None = RESYNC
        since = resume
        if since is None:
            pending = None
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT coalesce(max(id), 0) AS id,"
                    " pg_snapshot_xmin(pg_current_snapshot())::text AS horizon FROM outbox"
                )
                start = one_row(await cur.fetchone(), "the outbox's latest id")
                since = Resume(start["id"], int(start["horizon"]))
        yield {"comment": "connected", "retry": RETRY_MS, "data": None}
        next_check = time.monotonic() + check_every_s
        next_beat = time.monotonic() + heartbeat_s
        while (now := time.monotonic()) < ends:
            if now >= next_check:
                if await _allowed(pool, actor, token, []) is None:
                    return
                next_check = now + check_every_s
            if isinstance(pending, Resync):
                async with pool.connection() as conn:
                    found = await replay(conn, org, since, now=datetime.now(UTC), window=window)
                more = sum(r["id"] > since.after for r in found) == REPLAY_PAGE
                pending = RESYNC if more else None
            elif pending is not None:
                found, pending = pending, None
            elif now >= next_beat:
                yield {"comment": "keep-alive", "data": None}
                next_beat = time.monotonic() + heartbeat_s
                continue
            else:
                wait = min(next_beat, next_check, ends) - now
                with contextlib.suppress(TimeoutError):
                    pending = await asyncio.wait_for(sub.queue.get(), max(wait, 0.01))
                continue
            fresh = [r for r in found if r["id"] not in sent]
            rows = await _allowed(pool, actor, token, fresh) if fresh else []
            if rows is None:
                return
            if rows:
                await _audit(pool, actor, rows)
                for row in rows:
                    yield message(row)
                    sent.add(row["id"])
                next_beat = time.monotonic() + heartbeat_s
            # The highest id handled, sent or not the caller's to see, is the point to resume.
            top = max(found, key=lambda r: r["id"], default=None)
            if top is not None and top["id"] > since.after:
                since = Resume(top["id"], int(top["horizon"]))
    finally:
        hub.unsubscribe(sub)
