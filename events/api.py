"""HTTP side of the events: the event stream and webhook administration. `routers()` lists the
controllers for the application."""

from __future__ import annotations

import uuid
from typing import Literal

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.response import ServerSentEvent
from psycopg import AsyncConnection

from events import notify, stream, webhooks
from telemed.access import Actor, require_role
from telemed.errors import FieldProblem, Invalid


class EventController(Controller):
    path = "/api/v1/events"
    tags = ["events"]

    @get(
        "/",
        operation_id="streamEvents",
        summary="Server-sent events for the user's organisation; resume with Last-Event-ID",
    )
    async def open_stream(
        self,
        request: Request,
        actor: Actor,
        last_event_id: str | None = Parameter(
            default=None,
            description="the id of the last event received (as the stream sent it), for a page "
            "that cannot send the Last-Event-ID header",
        ),
    ) -> ServerSentEvent:
        require_role(actor, ["nurse", "specialist"])
        state = request.app.state
        header = stream.parse_last_event_id(request.headers.get("last-event-id"))
        resume = header if header is not None else stream.parse_last_event_id(last_event_id)
        if last_event_id is not None and resume is None:
            raise Invalid(
                "last_event_id is not an event id",
                [FieldProblem("last_event_id", "an outbox id, or id:horizon as sent")],
            )
        settings = state.settings
        hub = stream.hub_for(state, settings.dsn)
        events = stream.stream(state.pool, hub, actor, request.auth, resume, settings.events)
        return ServerSentEvent(events)


class WebhookController(Controller):
    path = "/api/v1/admin"
    tags = ["webhooks"]

    @post(
        "/organisations/{organisation_id:uuid}/webhooks",
        operation_id="createWebhook",
        summary="Register a webhook for an organisation; the signing secret is shown once",
    )
    async def create(
        self,
        conn: AsyncConnection,
        actor: Actor,
        organisation_id: uuid.UUID,
        data: webhooks.WebhookCreate,
        state: State,
    ) -> webhooks.WebhookSecret:
        return await webhooks.create_webhook(
            conn, actor, organisation_id, data, policy=_url_policy(state)
        )

    @get(
        "/organisations/{organisation_id:uuid}/webhooks",
        operation_id="listWebhooks",
        summary="List an organisation's webhooks",
    )
    async def list_hooks(
        self, conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID
    ) -> list[webhooks.WebhookOut]:
        return await webhooks.list_webhooks(conn, actor, organisation_id)

    @patch(
        "/webhooks/{webhook_id:uuid}",
        operation_id="updateWebhook",
        summary="Change a webhook's URL, event filter, description or active flag",
    )
    async def update(
        self,
        conn: AsyncConnection,
        actor: Actor,
        webhook_id: uuid.UUID,
        data: webhooks.WebhookUpdate,
        state: State,
    ) -> webhooks.WebhookOut:
        return await webhooks.update_webhook(
            conn, actor, webhook_id, data, policy=_url_policy(state)
        )

    @post(
        "/webhooks/{webhook_id:uuid}/rotate-secret",
        operation_id="rotateWebhookSecret",
        summary="Replace a webhook's signing secret; the new one is shown once",
        status_code=200,
    )
    async def rotate(
        self, conn: AsyncConnection, actor: Actor, webhook_id: uuid.UUID
    ) -> webhooks.WebhookSecret:
        return await webhooks.rotate_secret(conn, actor, webhook_id)

    @get(
        "/webhooks/{webhook_id:uuid}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="Delivery log of a webhook, newest first, with every attempt",
    )
    async def deliveries(
        self,
        conn: AsyncConnection,
        actor: Actor,
        webhook_id: uuid.UUID,
        limit: int = Parameter(default=50, ge=1, le=500),
        before: int | None = Parameter(default=None, ge=1),
        delivery_state: Literal["pending", "delivered", "failed"] | None = QueryParameter(
            name="state", default=None
        ),
    ) -> list[webhooks.DeliveryOut]:
        return await webhooks.delivery_log(
            conn, actor, webhook_id, limit=limit, before=before, state=delivery_state
        )

    @post(
        "/webhooks/{webhook_id:uuid}/deliveries/{outbox_id:int}/retry",
        operation_id="retryWebhookDelivery",
        summary="Try an undelivered event again now, also one given up on",
        status_code=200,
    )
    async def retry(
        self, conn: AsyncConnection, actor: Actor, webhook_id: uuid.UUID, outbox_id: int
    ) -> webhooks.DeliveryOut:
        return await webhooks.retry_delivery(conn, actor, webhook_id, outbox_id)


def _url_policy(state: State) -> notify.UrlPolicy:
    return notify.UrlPolicy.from_settings(state.settings.webhooks)


def routers() -> list:
    return [EventController, WebhookController]
