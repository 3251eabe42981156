"""What every notification channel shares: the event envelope, webhook signatures, the retry
schedule, which webhook URLs may be called, and the one signed HTTP request of a delivery. The
database side is in events.webhooks (webhooks) and events.stream (the event stream).

A webhook request carries the envelope as its JSON body and these headers:

    X-Telemed-Event-Id:   the outbox id (the same id the event stream uses): dedupe on it
    X-Telemed-Event:      the event name, e.g. alert.raised
    X-Telemed-Timestamp:  Unix seconds when this attempt was signed
    X-Telemed-Signature:  sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the secret>
    X-Telemed-Attempt:    1 for the first attempt, 2 for the first retry, ...

Signing the timestamp with the body lets a receiver refuse replays of an old request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from telemed.settings import WebhookSettings

SIGNATURE_HEADER = "X-Telemed-Signature"
TIMESTAMP_HEADER = "X-Telemed-Timestamp"
EVENT_ID_HEADER = "X-Telemed-Event-Id"
EVENT_HEADER = "X-Telemed-Event"
ATTEMPT_HEADER = "X-Telemed-Attempt"
REQUEST_TIMEOUT_S = 10.0
SIGNATURE_TOLERANCE_S = 300


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox event as clients see it, on the event stream and in webhook bodies."""

    id: int
    event: str
    created_at: datetime
    patient_id: uuid.UUID | None
    payload: dict[str, Any]


def envelope(row: dict[str, Any]) -> Envelope:
    return Envelope(
        id=row["id"],
        event=row["event"],
        created_at=row["created_at"],
        patient_id=row["patient_id"],
        payload=row["payload"],
    )


_encoder = msgspec.json.Encoder()


def encode(env: Envelope) -> bytes:
    return _encoder.encode(env)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver does: recompute the HMAC over the raw body and check the age."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def headers(secret: str, env: Envelope, body: bytes, *, attempt: int, now: float) -> dict[str, str]:
    ts = int(now)
    return {
        "Content-Type": "application/json",
        "User-Agent": "telemed-webhooks/1",
        EVENT_ID_HEADER: str(env.id),
        EVENT_HEADER: env.event,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
        ATTEMPT_HEADER: str(attempt),
    }


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff: base, 2·base, 4·base, ... capped; give up after max_attempts.

    With the defaults (10 s doubling to a 1 h cap, 50 attempts) a receiver may be down for about
    41 hours and still get every event.
    """

    base_s: float = 10.0
    cap_s: float = 3600.0
    max_attempts: int = 50

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> RetryPolicy:
        return cls(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            max_attempts=settings.max_attempts,
        )


class UrlPolicy(msgspec.Struct, frozen=True):
    """Webhook URLs are https to a public address. Hosts in `allowed_hosts` (names or IP
    addresses, from TELEMED_WEBHOOK_ALLOWED_HOSTS) may also use http and private or loopback
    addresses — an integration engine inside the region's network, or a test receiver."""

    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> UrlPolicy:
        return cls(settings.allowed_hosts)

    def problem(self, url: str) -> str | None:
        """Why this URL may not be registered, or None."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return "not a valid URL"
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            return "must be an absolute http(s) URL"
        if parts.username or parts.password:
            return "must not carry credentials; the signature authenticates the sender"
        if len(url) > 2000:
            return "is too long"
        if host in self.allowed_hosts:
            return None
        if parts.scheme != "https":
            return "must use https"
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            return "must not point at a local or internal host"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        return self.address_problem(host, address)

    def address_problem(
        self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> str | None:
        """Checked again on every delivery against what the host name resolves to, so a name
        that later points inside the network is refused."""
        if host.lower() in self.allowed_hosts or str(address) in self.allowed_hosts:
            return None
        if not address.is_global or address.is_multicast:
            return f"resolves to a non-public address ({address})"
        return None


class Outcome(msgspec.Struct, frozen=True):
    status: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


async def _address_problem(url: str, policy: UrlPolicy) -> str | None:
    problem = policy.problem(url)
    if problem:
        return problem
    host = urlsplit(url).hostname or ""
    if host.lower() in policy.allowed_hosts:
        return None
    for *_, sockaddr in await asyncio.get_running_loop().getaddrinfo(host, None):
        found = policy.address_problem(host, ipaddress.ip_address(sockaddr[0]))
        if found:
            return found
    return None


async def post(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    env: Envelope,
    *,
    attempt: int,
    policy: UrlPolicy,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Outcome:
    """One signed POST of `env`; any status outside 2xx, a redirect included, is a failure."""
    body = encode(env)
    started = time.monotonic()
    status: int | None = None
    try:
        error = await _address_problem(url, policy)
        if error is None:
            heads = headers(secret, env, body, attempt=attempt, now=time.time())
            response = await client.post(
                url, content=body, headers=heads, timeout=timeout_s, follow_redirects=False
            )
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
    except (httpx.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return Outcome(status, error, int((time.monotonic() - started) * 1000))
