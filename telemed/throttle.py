"""Sign-in throttling per account and per client address, kept in PostgreSQL so that every API
process counts the same failures (the function `signin_attempt`, migration 0055).

Each key is an HMAC of the username as typed (lower case) or of the client's address (its /64
for IPv6, where one client holds a whole network), so no username reaches the table or a log
line. A few free attempts, then an exponential wait between attempts; the wait is checked and
the attempt counted in one locked step before the password is checked, so parallel attempts
cannot pass the limit together, and a locked account refuses the right password too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math

import msgspec

from telemed.db import AsyncConn, Queries

Q = Queries("signin")
UNKNOWN_ADDRESS = "unknown"


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    account_free: int = 5
    address_free: int = 100
    base_s: float = 1.0
    max_s: float = 900.0
    window_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            account_free=settings.signin_account_free,
            address_free=settings.signin_address_free,
            base_s=settings.signin_delay_base_s,
            max_s=settings.signin_delay_max_s,
            window_s=settings.signin_window_s,
        )


class Keys(msgspec.Struct, frozen=True):
    account: bytes
    address: bytes
    address_label: str  # the address or network, as the audit row shows it

    @property
    def account_label(self) -> str:
        """How a log line names an account that may not exist: a short keyed hash."""
        return "k:" + self.account.hex()[:16]


class Trip(msgspec.Struct, frozen=True):
    scope: str  # 'account' or 'address'
    failures: int
    locked_for_s: float


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after_s: int
    trips: tuple[Trip, ...] = ()


def address_bucket(client_addr: str | None) -> str:
    if not client_addr:
        return UNKNOWN_ADDRESS
    try:
        addr = ipaddress.ip_address(client_addr)
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def keys_for(username: str, client_addr: str | None, secret: str) -> Keys:
    label = address_bucket(client_addr)
    key = secret.encode()
    account = hmac.new(key, b"account\0" + username.strip().lower().encode(), hashlib.sha256)
    address = hmac.new(key, b"address\0" + label.encode(), hashlib.sha256)
    return Keys(account.digest(), address.digest(), label)


def retry_after(wait_s: float) -> int:
    """Whole seconds for Retry-After, never 0 (a client told 0 would try again at once)."""
    return max(1, math.ceil(wait_s))


async def attempt(conn: AsyncConn, keys: Keys, limits: Limits) -> Decision:
    """Check and count one attempt (its own transaction, short: no password work inside)."""
    async with conn.transaction():
        cur = await conn.execute(
            Q.attempt,
            {
                "keys": [keys.account, keys.address],
                "scopes": ["account", "address"],
                "free": [limits.account_free, limits.address_free],
                "base_s": limits.base_s,
                "max_s": limits.max_s,
                "window_s": limits.window_s,
            },
        )
        rows = await cur.fetchall()
    if not rows:
        raise RuntimeError("signin_attempt returned no rows")
    if not rows[0]["allowed"]:
        return Decision(False, retry_after(max(r["wait_s"] for r in rows)))
    trips = tuple(Trip(r["scope"], r["failures"], r["wait_s"]) for r in rows if r["tripped"])
    return Decision(True, 0, trips)


async def succeeded(conn: AsyncConn, keys: Keys) -> None:
    await conn.execute(Q.succeeded, {"account": keys.account, "address": keys.address})
