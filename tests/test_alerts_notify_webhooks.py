"""Webhooks: signatures, retry policy, URL policy, and delivery to a real local receiver that
fails first — every event arrives once it is up, once, signed, and the log shows each attempt."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from events import notify, webhooks
from telemed.settings import load_settings
from tests import test_alerts_notify_support as support
from tests.test_alerts_notify_support import Receiver, enqueue, run_async

# Fixtures of the notification tests' own database and server.
events_server = support.events_server
events_app = support.events_app
events_settings = support.events_settings
own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory
own_settings = support.own_settings
receiver = support.receiver

SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret"


def test_signature_verifies_and_rejects_tampering_and_age() -> None:
    body = b'{"id":1,"event":"alert.raised"}'
    now = time.time()
    sig = notify.sign(SECRET, int(now), body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert notify.verify(SECRET, str(int(now)), sig, body, now=now)
    assert not notify.verify(SECRET, str(int(now)), sig, body + b" ", now=now)
    assert not notify.verify("another-secret", str(int(now)), sig, body, now=now)
    assert not notify.verify(SECRET, str(int(now) + 1), sig, body, now=now)
    assert not notify.verify(SECRET, str(int(now)), sig, body, now=now + 301)
    assert not notify.verify(SECRET, "not-a-number", sig, body, now=now)


@given(st.integers(min_value=1, max_value=200))
def test_backoff_doubles_up_to_the_cap(attempts: int) -> None:
    policy = notify.RetryPolicy(base_s=10, cap_s=3600, max_attempts=50)
    delay = policy.delay(attempts)
    assert 10 <= delay <= 3600
    assert policy.delay(attempts + 1) == min(3600, 2 * delay)
    assert policy.gives_up(attempts) == (attempts >= 50)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://integration.region.dk/telemed", True),
        ("https://93.184.216.34/hook", True),
        ("http://integration.region.dk/telemed", False),
        ("https://127.0.0.5/hook", False),
        ("https://10.1.2.3/hook", False),
        ("https://[::1]/hook", False),
        ("https://169.254.169.254/latest", False),
        ("https://localhost/hook", False),
        ("https://user:pw@integration.region.dk/", False),
        ("ftp://integration.region.dk/", False),
        ("https://integration.region.dk:99999/", False),
        ("http://127.0.0.1:8080/hook", True),
        ("http://engine.internal/hook", True),
    ],
)
def test_url_policy(url: str, ok: bool, tmp_path) -> None:
    env = {"TELEMED_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1, Engine.Internal"}
    settings = load_settings({**env, "TELEMED_STATE_DIR": str(tmp_path)})
    policy = notify.UrlPolicy.from_settings(settings.webhooks)
    assert (policy.problem(url) is None) == ok, policy.problem(url)


async def _deliver(dsn: str, now: datetime, retry: notify.RetryPolicy) -> webhooks.DeliveryStats:
    policy = notify.UrlPolicy(frozenset({"127.0.0.1"}))
    async with (
        await AsyncConnection.connect(dsn, row_factory=dict_row) as conn,
        httpx.AsyncClient() as client,
    ):
        await webhooks.fan_out(conn, now=now)
        return await webhooks.deliver_due(conn, client, now=now, retry=retry, policy=policy)


@pytest.fixture
def allow_loopback(events_settings) -> None:
    """The events server of these tests may call webhooks on loopback (the test receiver)."""
    assert events_settings.webhooks.allowed_hosts == {"127.0.0.1"}


def _register(base: str, admin, org: uuid.UUID, url: str, events: list[str]) -> dict:
    r = httpx.post(
        f"{base}/api/v1/admin/organisations/{org}/webhooks",
        json={"url": url, "events": events, "description": "regional integration engine"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_receiver_down_then_up_gets_each_event_once_signed(
    events_server: str,
    own_dsn: str,
    own_db: psycopg.Connection,
    own_factory,
    receiver: Receiver,
    allow_loopback: None,
) -> None:
    org, other = own_factory.org(), own_factory.org()
    admin = own_factory.user("admin", own_factory.org())
    patient = own_factory.patient(org, program="copd")
    hook = _register(events_server, admin, org, receiver.url, ["alert.*"])
    assert len(hook["secret"]) >= 32
    event = enqueue(own_db, "alert.raised", {"alert_id": 7}, [org, other], patient)
    enqueue(own_db, "wound.created", {"case": 1}, [org], patient)  # filtered out
    enqueue(own_db, "alert.raised", {"alert_id": 8}, [other], patient)  # another org's
    receiver.statuses = [500]
    retry = notify.RetryPolicy(base_s=10, cap_s=60, max_attempts=5)
    t0 = datetime.now(UTC)

    first = run_async(_deliver(own_dsn, t0, retry))
    assert (first.attempted, first.delivered, first.failed) == (1, 0, 1)
    early = run_async(_deliver(own_dsn, t0 + timedelta(seconds=9), retry))
    assert early.attempted == 0
    second = run_async(_deliver(own_dsn, t0 + timedelta(seconds=11), retry))
    assert (second.attempted, second.delivered) == (1, 1)
    again = run_async(_deliver(own_dsn, t0 + timedelta(hours=1), retry))
    assert again.attempted == 0

    assert len(receiver.received) == 2
    ids = {r.headers[notify.EVENT_ID_HEADER] for r in receiver.received}
    assert ids == {str(event)}
    assert [r.headers[notify.ATTEMPT_HEADER] for r in receiver.received] == ["1", "2"]
    last = receiver.received[-1]
    assert notify.verify(
        hook["secret"],
        last.headers[notify.TIMESTAMP_HEADER],
        last.headers[notify.SIGNATURE_HEADER],
        last.body,
        now=time.time(),
    )
    assert last.json["id"] == event and last.json["payload"] == {"alert_id": 7}
    assert last.json["event"] == "alert.raised" and last.json["patient_id"] == str(patient)

    r = httpx.get(
        f"{events_server}/api/v1/admin/webhooks/{hook['id']}/deliveries", headers=admin.headers
    )
    assert r.status_code == 200, r.text
    (delivery,) = r.json()
    assert delivery["outbox_id"] == event and delivery["state"] == "delivered"
    assert delivery["attempts"] == 2 and delivery["last_status"] == 200
    assert [(a["attempt"], a["status"]) for a in delivery["log"]] == [(1, 500), (2, 200)]
    assert delivery["log"][0]["error"].startswith("HTTP 500")
    audited = own_db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'deliver' AND object_id = %s",
        (hook["id"],),
    ).fetchone()
    assert audited["n"] == 1


def test_gives_up_after_max_attempts_and_admin_retry_delivers(
    events_server: str,
    own_dsn: str,
    own_db: psycopg.Connection,
    own_factory,
    receiver: Receiver,
    allow_loopback: None,
) -> None:
    org = own_factory.org()
    admin = own_factory.user("admin", own_factory.org())
    hook = _register(events_server, admin, org, receiver.url, [])
    event = enqueue(own_db, "alert.escalated", {"level": 1}, [org])
    receiver.statuses = [503, 503]
    retry = notify.RetryPolicy(base_s=1, cap_s=1, max_attempts=2)
    t0 = datetime.now(UTC)
    run_async(_deliver(own_dsn, t0, retry))
    stats = run_async(_deliver(own_dsn, t0 + timedelta(seconds=5), retry))
    assert stats.gave_up == 1
    assert run_async(_deliver(own_dsn, t0 + timedelta(days=1), retry)).attempted == 0
    base = f"{events_server}/api/v1/admin/webhooks/{hook['id']}"
    failed = httpx.get(f"{base}/deliveries?state=failed", headers=admin.headers).json()
    assert [d["outbox_id"] for d in failed] == [event]

    r = httpx.post(f"{base}/deliveries/{event}/retry", headers=admin.headers)
    assert r.status_code == 200 and r.json()["state"] == "pending", r.text
    stats = run_async(_deliver(own_dsn, datetime.now(UTC) + timedelta(seconds=1), retry))
    assert stats.delivered == 1
    assert [r.headers[notify.ATTEMPT_HEADER] for r in receiver.received] == ["1", "2", "3"]
    r = httpx.post(f"{base}/deliveries/{event}/retry", headers=admin.headers)
    assert r.status_code == 404


def test_unreachable_receiver_is_retried_and_concurrent_deliverers_send_once(
    events_server: str,
    own_dsn: str,
    own_db: psycopg.Connection,
    own_factory,
    receiver: Receiver,
    allow_loopback: None,
) -> None:
    org = own_factory.org()
    admin = own_factory.user("admin", own_factory.org())
    down = _register(events_server, admin, org, "http://127.0.0.1:9/nothing-listens", [])
    _register(events_server, admin, org, receiver.url, ["alert.raised"])
    events = [enqueue(own_db, "alert.raised", {"n": i}, [org]) for i in range(5)]
    retry = notify.RetryPolicy(base_s=30, cap_s=30, max_attempts=10)
    now = datetime.now(UTC)

    async def twice() -> list[webhooks.DeliveryStats]:
        return await asyncio.gather(_deliver(own_dsn, now, retry), _deliver(own_dsn, now, retry))

    stats = run_async(twice())
    assert sum(s.delivered for s in stats) == 5
    assert sum(s.failed for s in stats) == 5
    assert sorted(int(r.headers[notify.EVENT_ID_HEADER]) for r in receiver.received) == events
    log = httpx.get(
        f"{events_server}/api/v1/admin/webhooks/{down['id']}/deliveries", headers=admin.headers
    ).json()
    assert {d["state"] for d in log} == {"pending"}
    assert all("ConnectError" in d["last_error"] and d["last_status"] is None for d in log)


def test_webhook_admin_api_checks_role_url_and_hides_the_secret(
    events_server: str, own_factory, allow_loopback: None
) -> None:
    org = own_factory.org()
    admin = own_factory.user("admin", own_factory.org())
    nurse = own_factory.user("nurse", org)
    url = f"{events_server}/api/v1/admin/organisations/{org}/webhooks"
    body = {"url": "https://integration.region.dk/hook"}
    assert httpx.post(url, json=body, headers=nurse.headers).status_code == 403
    bad = httpx.post(url, json={"url": "http://example.org/h"}, headers=admin.headers)
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "url"
    typo = httpx.post(url, json={**body, "event": ["x"]}, headers=admin.headers)
    assert typo.status_code == 400
    made = httpx.post(url, json=body, headers=admin.headers).json()
    listed = httpx.get(url, headers=admin.headers).json()
    assert [h["id"] for h in listed] == [made["id"]] and "secret" not in listed[0]
    hook = f"{events_server}/api/v1/admin/webhooks/{made['id']}"
    off = httpx.patch(hook, json={"active": False}, headers=admin.headers)
    assert off.status_code == 200 and off.json()["active"] is False
    rotated = httpx.post(f"{hook}/rotate-secret", headers=admin.headers).json()
    assert rotated["secret"] != made["secret"]
    missing = f"{events_server}/api/v1/admin/webhooks/{uuid.uuid4()}/deliveries"
    assert httpx.get(missing, headers=admin.headers).status_code == 404
