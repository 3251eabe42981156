"""Webhooks per organisation: registration by admins, fan-out from the outbox, signed delivery
with retries, and the delivery log.

Fan-out inserts one `webhook_deliveries` row per (outbox event, webhook) — the primary key makes
each pair deliverable once. Rows are found by an anti-join over a recent window of the outbox
rather than a cursor, because outbox ids are taken at insert and a transaction that commits late
can leave a lower id behind a higher one; a cursor would skip it, the anti-join does not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated

import httpx
import msgspec
from msgspec import UNSET, Meta, UnsetType
from psycopg import AsyncConnection

from events import notify
from telemed import audit
from telemed.access import SYSTEM, Actor, require_role
from telemed.errors import FieldProblem, Invalid, NotFound

log = logging.getLogger("telemed.webhooks")

EventPattern = Annotated[
    str, Meta(pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$", max_length=100)
]
# Events written since this long ago are fanned out to new deliveries; pruning delivered rows
# must keep them longer than this, or a pruned pair would be delivered again.
FANOUT_WINDOW = timedelta(days=7)
REQUEST_TIMEOUT_S = 10.0


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(max_length=2000)]
    events: Annotated[list[EventPattern], Meta(max_length=50)] = []
    description: Annotated[str, Meta(max_length=500)] | None = None


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(max_length=2000)] | UnsetType = UNSET
    events: Annotated[list[EventPattern], Meta(max_length=50)] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class WebhookOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    organisation_id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookSecret(WebhookOut, kw_only=True):
    """The webhook with its signing secret: shown when made or rotated, never again."""

    secret: str


class AttemptOut(msgspec.Struct, kw_only=True):
    attempt: int
    at: datetime
    status: int | None
    error: str | None
    duration_ms: int | None


class DeliveryOut(msgspec.Struct, kw_only=True):
    outbox_id: int
    event: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    log: list[AttemptOut]


class DeliveryStats(msgspec.Struct, kw_only=True):
    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0


_COLUMNS = "id, organisation_id, url, events, description, active, created_at, updated_at"


def _check_url(url: str, policy: notify.UrlPolicy) -> None:
    problem = policy.problem(url)
    if problem:
        raise Invalid("the webhook URL is not allowed", [FieldProblem("url", problem)])


async def create_webhook(
    conn: AsyncConnection,
    actor: Actor,
    organisation_id: uuid.UUID,
    data: WebhookCreate,
    *,
    policy: notify.UrlPolicy,
) -> WebhookSecret:
    require_role(actor, ["admin"])
    _check_url(data.url, policy)
    secret = secrets.token_urlsafe(32)
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM organisations WHERE id = %s", (organisation_id,))
        if await cur.fetchone() is None:
            raise NotFound("organisation not found")
        cur = await conn.execute(
            "INSERT INTO webhooks (organisation_id, url, secret, events, description, "
            " created_by, start_after) "
            "VALUES (%s, %s, %s, %s, %s, %s, (SELECT coalesce(max(id), 0) FROM outbox)) "
            f"RETURNING {_COLUMNS}, secret",
            (organisation_id, data.url, secret, data.events, data.description, actor.user_id),
        )
        row = await cur.fetchone()
        await audit.record(
            conn,
            actor,
            "create",
            object_type="webhook",
            object_id=row["id"],
            detail={"organisation_id": str(organisation_id), "url": data.url},
        )
    return msgspec.convert(row, WebhookSecret)


async def list_webhooks(
    conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID
) -> list[WebhookOut]:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM webhooks WHERE organisation_id = %s ORDER BY created_at",
            (organisation_id,),
        )
        return msgspec.convert(await cur.fetchall(), list[WebhookOut])


async def update_webhook(
    conn: AsyncConnection,
    actor: Actor,
    webhook_id: uuid.UUID,
    data: WebhookUpdate,
    *,
    policy: notify.UrlPolicy,
) -> WebhookOut:
    require_role(actor, ["admin"])
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not UNSET}
    if "url" in changes:
        _check_url(changes["url"], policy)
    sets = ", ".join(f"{name} = %({name})s" for name in changes)
    async with conn.transaction():
        cur = await conn.execute(
            f"UPDATE webhooks SET {sets + ', ' if sets else ''}updated_at = now() "
            f"WHERE id = %(id)s RETURNING {_COLUMNS}",
            {**changes, "id": webhook_id},
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound("webhook not found")
        await audit.record(
            conn,
            actor,
            "update",
            object_type="webhook",
            object_id=webhook_id,
            detail={k: v for k, v in changes.items() if k != "description"},
        )
    return msgspec.convert(row, WebhookOut)


async def rotate_secret(
    conn: AsyncConnection, actor: Actor, webhook_id: uuid.UUID
) -> WebhookSecret:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE webhooks SET secret = %s, updated_at = now() WHERE id = %s "
            f"RETURNING {_COLUMNS}, secret",
            (secrets.token_urlsafe(32), webhook_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFound("webhook not found")
        await audit.record(
            conn, actor, "rotate_secret", object_type="webhook", object_id=webhook_id
        )
    return msgspec.convert(row, WebhookSecret)


_LOG = """
SELECT d.outbox_id, o.event, d.attempts, d.next_attempt_at, d.delivered_at, d.failed_at,
       d.last_status, d.last_error, d.created_at,
       CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered'
            WHEN d.failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END AS state,
       coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at,
                       'status', a.status, 'error', a.error, 'duration_ms', a.duration_ms)
                       ORDER BY a.attempt)
                 FROM webhook_attempts a
                 WHERE a.webhook_id = d.webhook_id AND a.outbox_id = d.outbox_id), '[]') AS log
FROM webhook_deliveries d JOIN outbox o ON o.id = d.outbox_id
WHERE d.webhook_id = %(webhook_id)s
  AND (%(before)s::bigint IS NULL OR d.outbox_id < %(before)s)
  AND (%(outbox_id)s::bigint IS NULL OR d.outbox_id = %(outbox_id)s)
  AND (%(state)s::text IS NULL OR CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered'
            WHEN d.failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END = %(state)s)
ORDER BY d.outbox_id DESC
LIMIT %(limit)s
"""


async def _require_webhook(conn: AsyncConnection, webhook_id: uuid.UUID) -> None:
    cur = await conn.execute("SELECT 1 FROM webhooks WHERE id = %s", (webhook_id,))
    if await cur.fetchone() is None:
        raise NotFound("webhook not found")


async def delivery_log(
    conn: AsyncConnection,
    actor: Actor,
    webhook_id: uuid.UUID,
    *,
    limit: int = 50,
    before: int | None = None,
    state: str | None = None,
    outbox_id: int | None = None,
) -> list[DeliveryOut]:
    """Newest first; page with `before` (an outbox id). Event names and statuses only: no
    payload, so an admin sees no clinical data here."""
    require_role(actor, ["admin"])
    params = {"webhook_id": webhook_id, "before": before, "state": state}
    async with conn.transaction():
        await _require_webhook(conn, webhook_id)
        cur = await conn.execute(_LOG, {**params, "outbox_id": outbox_id, "limit": limit})
        rows = await cur.fetchall()
    return msgspec.convert(rows, list[DeliveryOut])


async def retry_delivery(
    conn: AsyncConnection, actor: Actor, webhook_id: uuid.UUID, outbox_id: int
) -> DeliveryOut:
    """Try a delivery again now, also one that was given up on (the attempt count goes on)."""
    require_role(actor, ["admin"])
    async with conn.transaction():
        await _require_webhook(conn, webhook_id)
        cur = await conn.execute(
            "UPDATE webhook_deliveries SET failed_at = NULL, next_attempt_at = now() "
            "WHERE webhook_id = %s AND outbox_id = %s AND delivered_at IS NULL",
            (webhook_id, outbox_id),
        )
        if cur.rowcount == 0:
            raise NotFound("no undelivered delivery of this event to this webhook")
        await audit.record(
            conn,
            actor,
            "retry",
            object_type="webhook_delivery",
            object_id=f"{webhook_id}:{outbox_id}",
        )
    found = await delivery_log(conn, actor, webhook_id, limit=1, outbox_id=outbox_id)
    return found[0]


_FANOUT = """
INSERT INTO webhook_deliveries (outbox_id, webhook_id, next_attempt_at)
SELECT o.id, w.id, %(now)s
FROM webhooks w
JOIN outbox o ON o.organisation_ids @> ARRAY[w.organisation_id]
WHERE w.active
  AND o.id > w.start_after
  AND o.created_at >= %(since)s
  AND (cardinality(w.events) = 0 OR EXISTS (
        SELECT 1 FROM unnest(w.events) p
        WHERE p = '*' OR p = o.event
           OR (right(p, 2) = '.*' AND starts_with(o.event, left(p, -1)))))
  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                  WHERE d.outbox_id = o.id AND d.webhook_id = w.id)
ON CONFLICT DO NOTHING
"""

_CLAIM = """
WITH due AS (
    SELECT d.outbox_id, d.webhook_id
    FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
    WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= %(now)s
      AND w.active
    ORDER BY d.next_attempt_at, d.outbox_id
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = %(now)s + %(lease)s, last_attempt_at = %(now)s
FROM due, webhooks w, outbox o
WHERE d.outbox_id = due.outbox_id AND d.webhook_id = due.webhook_id
  AND w.id = d.webhook_id AND o.id = d.outbox_id
RETURNING d.outbox_id, d.webhook_id, d.attempts, w.url, w.secret, w.organisation_id,
          o.event, o.created_at, o.patient_id, o.payload
"""


async def fan_out(conn: AsyncConnection, *, now: datetime) -> int:
    """Create the deliveries of recent outbox events to matching webhooks; return how many."""
    async with conn.transaction():
        cur = await conn.execute(_FANOUT, {"now": now, "since": now - FANOUT_WINDOW})
        return cur.rowcount


async def deliver_due(
    conn: AsyncConnection,
    client: httpx.AsyncClient,
    *,
    now: datetime,
    retry: notify.RetryPolicy,
    policy: notify.UrlPolicy,
    limit: int = 50,
    lease: timedelta = timedelta(seconds=60),
    concurrency: int = 8,
) -> DeliveryStats:
    """Claim due deliveries, post them, record each outcome and schedule retries."""
    async with conn.transaction():
        cur = await conn.execute(_CLAIM, {"now": now, "limit": limit, "lease": lease})
        rows = await cur.fetchall()
    stats = DeliveryStats(attempted=len(rows))
    gate = asyncio.Semaphore(concurrency)

    async def one(row: dict) -> notify.Outcome:
        env = notify.Envelope(
            id=row["outbox_id"],
            event=row["event"],
            created_at=row["created_at"],
            patient_id=row["patient_id"],
            payload=row["payload"],
        )
        async with gate:
            return await notify.post(
                client, row["url"], row["secret"], env, attempt=row["attempts"], policy=policy
            )

    outcomes = await asyncio.gather(*(one(row) for row in rows))
    for row, outcome in zip(rows, outcomes, strict=True):
        async with conn.transaction():
            await _record(conn, row, outcome, now=now, retry=retry)
        if outcome.ok:
            stats.delivered += 1
        elif retry.gives_up(row["attempts"]):
            stats.gave_up += 1
        else:
            stats.failed += 1
    return stats


async def _record(
    conn: AsyncConnection,
    row: dict,
    outcome: notify.Outcome,
    *,
    now: datetime,
    retry: notify.RetryPolicy,
) -> None:
    key = (row["outbox_id"], row["webhook_id"])
    await conn.execute(
        "INSERT INTO webhook_attempts (outbox_id, webhook_id, attempt, at, status, error, "
        " duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (*key, row["attempts"], now, outcome.status, outcome.error, outcome.duration_ms),
    )
    if outcome.ok:
        await conn.execute(
            "UPDATE webhook_deliveries SET delivered_at = %s, last_status = %s, last_error = NULL"
            " WHERE outbox_id = %s AND webhook_id = %s",
            (now, outcome.status, *key),
        )
        if row["patient_id"] is not None:
            await audit.record(
                conn,
                SYSTEM,
                "deliver",
                patient_id=row["patient_id"],
                object_type="webhook",
                object_id=row["webhook_id"],
                detail={
                    "outbox_id": row["outbox_id"],
                    "event": row["event"],
                    "organisation_id": str(row["organisation_id"]),
                },
            )
        return
    gave_up = retry.gives_up(row["attempts"])
    next_at = now + timedelta(seconds=retry.delay(row["attempts"]))
    await conn.execute(
        "UPDATE webhook_deliveries SET last_status = %s, last_error = %s, next_attempt_at = %s,"
        " failed_at = %s WHERE outbox_id = %s AND webhook_id = %s",
        (outcome.status, outcome.error, next_at, now if gave_up else None, *key),
    )
    log.warning(
        "webhook %s event %s attempt %s failed%s: %s",
        row["webhook_id"],
        row["outbox_id"],
        row["attempts"],
        " (giving up)" if gave_up else "",
        outcome.error,
    )
