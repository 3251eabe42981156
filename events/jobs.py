"""The events' scheduler jobs (telemed.jobs.Job): webhook delivery, woken by each outbox event
as its transaction commits (NOTIFY) and polled for retries; and the pruning of the delivery log
and of old events no delivery refers to."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
from psycopg import AsyncConnection

from events import notify, webhooks
from events.outbox import CHANNEL
from telemed.jobs import LOG_KEEP_DAYS, Job
from telemed.settings import Settings, WebhookSettings

# A run that tried this many deliveries may have left more due: it runs again at once.
FULL_BATCH = 50


def jobs(settings: Settings) -> list[Job]:
    every = settings.scheduler
    delivery = Delivery(settings.webhooks)
    return [
        Job(
            "webhooks",
            every.webhook_poll_s,
            delivery.run,
            wake_on=CHANNEL,
            worth_a_row=lambda r: bool(r.get("fanned_out") or r.get("attempted")),
            again=lambda r: r.get("attempted", 0) >= FULL_BATCH,
            close=delivery.close,
        ),
        Job("events_retention", every.retention_s, retention),
    ]


class Delivery:
    """Fan new events out to the webhooks that want them and post what is due, on one HTTP
    client kept while the scheduler leads."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.retry = notify.RetryPolicy.from_settings(settings)
        self.policy = notify.UrlPolicy.from_settings(settings)
        self._client: httpx.AsyncClient | None = None

    async def run(self, conn: AsyncConnection, now: datetime) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient()
        fanned = await webhooks.fan_out(conn, now=now)
        stats = await webhooks.deliver_due(
            conn, self._client, now=now, retry=self.retry, policy=self.policy, limit=FULL_BATCH
        )
        return {"fanned_out": fanned, **msgspec.structs.asdict(stats)}

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def retention(
    conn: AsyncConnection, now: datetime, *, log_days: int | None = None
) -> dict[str, Any]:
    """Prune the delivery log, and the events themselves once no webhook delivery refers to
    them (a pending delivery keeps its event; what they told of stays in the alerts and wound
    cases)."""
    # The log must outlive the fan-out window, or a pruned pair would be delivered again.
    days = max(log_days or LOG_KEEP_DAYS, webhooks.FANOUT_WINDOW.days + 1)
    cutoff = now - timedelta(days=days)
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM webhook_deliveries WHERE coalesce(delivered_at, failed_at) < %s",
            (cutoff,),
        )
        deliveries = cur.rowcount
        cur = await conn.execute(
            "DELETE FROM outbox o WHERE o.created_at < %s AND NOT EXISTS "
            "(SELECT 1 FROM webhook_deliveries d WHERE d.outbox_id = o.id)",
            (cutoff,),
        )
        events = cur.rowcount
    return {"deliveries_pruned": deliveries, "outbox_events_pruned": events}
