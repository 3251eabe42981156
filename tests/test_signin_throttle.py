"""Sign-in throttling per account and per client address, kept in PostgreSQL: wrong passwords on
the API and on the page, in sequence, in parallel and spread over two server processes."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from tests.http_helpers import Served, async_client_from, client_from, telemed_serve
from tests.web_helpers import csrf_from, sign_in

TOKEN = "/api/v1/auth/token"
CPR_LIKE = "0101701234"  # people type their CPR number into the username field


@pytest.fixture(scope="module")
def own_client(settings) -> Iterator[TestClient]:
    """An app of its own whose first lock lasts 30 s (long enough that no test here sees it end
    on a loaded machine); the other limits are the defaults."""
    from app.asgi import create_app

    own = msgspec.structs.replace(settings, signin_delay_base_s=30.0)
    with TestClient(app=create_app(own), raise_server_exceptions=False) as c:
        yield c


def wrong(client, username: str, n: int = 1) -> list[httpx.Response]:
    return [client.post(TOKEN, json={"username": username, "password": "wrong!"}) for _ in range(n)]


def audit_trips(db, object_id: str) -> list[dict]:
    return db.execute(
        "SELECT * FROM audit_log WHERE action = 'sign_in.throttled' AND object_id = %s ORDER BY id",
        (object_id,),
    ).fetchall()


def test_wrong_passwords_on_the_api_end_in_429_and_lock_out_the_right_one(
    own_client, db, care, caplog
):
    caplog.set_level(logging.INFO)
    user = care.nurse
    answers = wrong(own_client, user.username, 50)
    statuses = [r.status_code for r in answers]
    assert statuses[:5] == [401] * 5, statuses
    assert set(statuses[5:]) == {429}, statuses
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()
    assert body["status"] == 429 and body["code"] == "signin_throttled" and body["request_id"]
    right = own_client.post(TOKEN, json={"username": user.username, "password": user.password})
    assert right.status_code == 429, "the right password must not open a locked account"
    trips = audit_trips(db, str(user.id))
    assert len(trips) == 1
    assert trips[0]["object_type"] == "user" and trips[0]["detail"]["scope"] == "account"
    assert user.username not in str(trips[0])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("telemed")]
    assert any("sign-in limit" in line and str(user.id) in line for line in lines), lines
    assert not any(user.username in line for line in lines)


def account_key(settings, username: str) -> bytes:
    from telemed.throttle import keys_for

    return keys_for(username, None, settings.signin_key).account


def end_wait(db, key: bytes) -> None:
    """Let an account's wait end now, as time would (the test cannot sleep through 30 s)."""
    db.execute("UPDATE signin_failures SET locked_until = now() WHERE key = %s", (key,))


def test_the_wait_doubles_after_each_failure_and_a_success_resets_it(settings, db, factory, care):
    from app.asgi import create_app

    own = msgspec.structs.replace(settings, signin_delay_base_s=30.0, signin_account_free=2)
    user = factory.user("nurse", care.nursing)
    login = {"username": user.username, "password": user.password}
    key = account_key(settings, user.username)
    with TestClient(app=create_app(own), raise_server_exceptions=False) as c:
        assert [r.status_code for r in wrong(c, user.username, 3)] == [401, 401, 429]
        waits = [int(wrong(c, user.username)[0].headers["retry-after"])]
        for _ in range(2):
            end_wait(db, key)
            assert wrong(c, user.username)[0].status_code == 401
            refused = c.post(TOKEN, json=login)
            assert refused.status_code == 429
            waits.append(int(refused.headers["retry-after"]))
        assert 15 < waits[0] <= 30 < waits[1] <= 60 < waits[2] <= 120, waits
        end_wait(db, key)
        assert c.post(TOKEN, json=login).status_code == 200
        assert [r.status_code for r in wrong(c, user.username, 2)] == [401, 401]


def test_a_wait_ends_by_itself(settings, db, factory, care):
    from app.asgi import create_app

    own = msgspec.structs.replace(settings, signin_delay_base_s=1.0, signin_account_free=1)
    user = factory.user("nurse", care.nursing)
    with TestClient(app=create_app(own), raise_server_exceptions=False) as c:
        assert wrong(c, user.username)[0].status_code == 401
        locked = db.execute(
            "SELECT locked_until - now() AS left FROM signin_failures WHERE key = %s",
            (account_key(settings, user.username),),
        ).fetchone()["left"]
        time.sleep(max(locked.total_seconds(), 0) + 0.2)
        ok = c.post(TOKEN, json={"username": user.username, "password": user.password})
        assert ok.status_code == 200, ok.text


def test_the_page_sign_in_is_throttled_and_shares_the_account_limit(own_client, factory, care):
    user = factory.user("specialist", care.hospital)
    assert [r.status_code for r in wrong(own_client, user.username, 3)] == [401] * 3
    pages = [sign_in(own_client, user.username, "wrong!") for _ in range(4)]
    assert [p.status_code for p in pages] == [401, 401, 429, 429]
    assert int(pages[-1].headers["retry-after"]) >= 1
    assert 'id="login-error"' in pages[-1].text
    right = sign_in(own_client, user.username, user.password)
    assert right.status_code == 429 and "telemed_session" not in right.cookies


def test_an_unknown_username_is_throttled_and_never_stored_or_logged(own_client, db, caplog):
    caplog.set_level(logging.DEBUG)
    statuses = [r.status_code for r in wrong(own_client, CPR_LIKE, 7)]
    assert statuses == [401] * 5 + [429] * 2
    form = own_client.get("/login")
    page = own_client.post(
        "/login",
        data={"username": CPR_LIKE, "password": "x", "_csrf_token": csrf_from(form.text)},
    )
    assert page.status_code == 429
    for line in (r.getMessage() for r in caplog.records):
        assert CPR_LIKE not in line
    trips = db.execute(
        "SELECT * FROM audit_log WHERE action = 'sign_in.throttled' AND object_type = 'username'"
    ).fetchall()
    assert trips and not any(CPR_LIKE in str(row) for row in trips)
    stored = db.execute("SELECT * FROM signin_failures").fetchall()
    assert stored and not any(CPR_LIKE.encode() in bytes(row["key"]) for row in stored)


def test_an_unknown_user_costs_one_argon2_check_like_a_known_one(own_client, care):
    work = own_client.app.state.passwords
    before = work.checked
    wrong(own_client, care.other_nurse.username)
    wrong(own_client, "nobody-by-this-name")
    assert work.checked == before + 2


# --- the server as production runs it, two processes, many clients at once -------------------

SLOW = {"TELEMED_SIGNIN_DELAY_BASE_S": "120", "TELEMED_SIGNIN_ADDRESS_FREE": "8"}


@pytest.fixture(scope="module")
def two_servers(db_dsn, tmp_path_factory) -> Iterator[tuple[Served, Served]]:
    logs = tmp_path_factory.mktemp("serve")
    with (
        telemed_serve(db_dsn, logs, env=SLOW) as one,
        telemed_serve(db_dsn, logs, env=SLOW) as two,
    ):
        yield one, two


async def _parallel_wrong(bases: list[str], username: str, n: int, source: str) -> Counter:
    async with async_client_from(source, timeout=60) as client:

        async def one(i: int) -> int:
            r = await client.post(
                f"{bases[i % len(bases)]}{TOKEN}", json={"username": username, "password": "no"}
            )
            return r.status_code

        return Counter(await asyncio.gather(*(one(i) for i in range(n))))


def test_100_parallel_wrong_passwords_over_two_processes_stay_within_the_limit(
    two_servers, factory, care
):
    user = factory.user("nurse", care.nursing)
    bases = [s.base for s in two_servers]
    counts = asyncio.run(_parallel_wrong(bases, user.username, 100, "127.0.0.11"))
    assert counts[401] == 5 and counts[429] == 95, counts
    for base in bases:
        with client_from("127.0.0.12") as c:
            login = {"username": user.username, "password": user.password}
            r = c.post(f"{base}{TOKEN}", json=login)
            assert r.status_code == 429
            assert 60 < int(r.headers["retry-after"]) <= 120


def test_one_address_trying_many_usernames_is_throttled(two_servers, factory, care):
    one, _ = two_servers
    user = factory.user("nurse", care.nursing)
    with client_from("127.0.0.21") as attacker, client_from("127.0.0.22") as colleague:
        statuses = [
            attacker.post(
                f"{one.base}{TOKEN}", json={"username": f"guess-{i}", "password": "no"}
            ).status_code
            for i in range(10)
        ]
        assert statuses == [401] * 8 + [429] * 2
        r = attacker.post(
            f"{one.base}{TOKEN}", json={"username": user.username, "password": user.password}
        )
        assert r.status_code == 429
        # Another address is not affected.
        r = colleague.post(
            f"{one.base}{TOKEN}", json={"username": user.username, "password": user.password}
        )
        assert r.status_code == 200, r.text


def test_the_server_logs_name_no_username(two_servers):
    for served in two_servers:
        with client_from("127.0.0.31") as c:
            c.post(f"{served.base}{TOKEN}", json={"username": CPR_LIKE, "password": "no"})
    for served in two_servers:
        assert CPR_LIKE not in served.log_text()
        assert "guess-" not in served.log_text()


def test_retry_after_is_whole_seconds_rounded_up():
    from telemed.throttle import retry_after

    assert retry_after(0.01) == 1 and retry_after(1.0) == 1 and retry_after(1.2) == 2
    assert retry_after(899.5) == math.ceil(899.5)


def test_address_buckets():
    from telemed.throttle import address_bucket

    assert address_bucket("203.0.113.9") == "203.0.113.9"
    assert address_bucket("::ffff:203.0.113.9") == "203.0.113.9"
    assert address_bucket("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_bucket(None) == address_bucket("testclient") == "unknown"
