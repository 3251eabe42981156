"""Behind a TLS-terminating proxy: the client address (audit rows, sign-in limits) and the scheme
(Secure cookies, HSTS) come from forwarded headers only when the direct peer is a trusted proxy.
Against `telemed serve` bound to 127.0.0.1, with 127.0.0.2 playing the proxy."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_helpers import Served, client_from, telemed_serve
from tests.web_helpers import csrf_from

PROXY = "127.0.0.2"
FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def behind_proxy(db_dsn, tmp_path_factory) -> Iterator[Served]:
    env = {"TELEMED_TRUSTED_PROXIES": f"{PROXY}, 10.0.0.0/8"}
    with telemed_serve(db_dsn, tmp_path_factory.mktemp("serve"), env=env) as s:
        yield s


def page_sign_in(client: httpx.Client, base: str, user, headers: dict) -> tuple:
    """The form and its post, as a browser does behind the proxy: the browser sends its cookies
    (Secure ones too, it speaks HTTPS to the proxy) and the proxy passes them on."""
    form = client.get(f"{base}/login", headers=headers)
    assert form.status_code == 200, form.text
    csrf = form.cookies.get("telemed_csrf") or client.cookies.get("telemed_csrf")
    headers = {**headers, "Cookie": f"telemed_csrf={csrf}"}
    r = client.post(
        f"{base}/login",
        data={
            "username": user.username,
            "password": user.password,
            "_csrf_token": csrf_from(form.text),
        },
        headers=headers,
    )
    assert r.status_code == 303, r.text
    return form, r


def cookie_line(response: httpx.Response, name: str) -> str:
    lines = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert lines, response.headers
    return lines[0].lower()


def last_audit_addr(db, patient) -> str:
    row = db.execute(
        "SELECT host(client_addr) AS addr FROM audit_log WHERE patient_id = %s"
        " ORDER BY id DESC LIMIT 1",
        (patient,),
    ).fetchone()
    return row["addr"]


def token_addr(db, user_id) -> str:
    row = db.execute(
        "SELECT host(client_addr) AS addr FROM auth_tokens WHERE user_id = %s AND kind = 'session'"
        " ORDER BY created_at DESC LIMIT 1",
        (user_id,),
    ).fetchone()
    return row["addr"]


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(behind_proxy, db, care):
    with client_from("127.0.0.1") as c:
        form, signed_in = page_sign_in(c, behind_proxy.base, care.nurse, FORWARDED)
        assert "secure" not in cookie_line(signed_in, "telemed_session")
        assert "secure" not in cookie_line(form, "telemed_csrf")
        assert "strict-transport-security" not in signed_in.headers
        assert token_addr(db, care.nurse.id) == "127.0.0.1"
        r = c.get(
            f"{behind_proxy.base}/api/v1/patients/{care.patient}",
            headers={**care.nurse.headers, **FORWARDED},
        )
        assert r.status_code == 200 and "strict-transport-security" not in r.headers
    assert last_audit_addr(db, care.patient) == "127.0.0.1"


def test_forwarded_headers_from_a_trusted_proxy_are_used(behind_proxy, db, care):
    with client_from(PROXY) as c:
        form, signed_in = page_sign_in(c, behind_proxy.base, care.nurse, FORWARDED)
        assert "; secure" in cookie_line(signed_in, "telemed_session")
        assert "; secure" in cookie_line(form, "telemed_csrf")
        assert signed_in.headers["strict-transport-security"].startswith("max-age=")
        assert token_addr(db, care.nurse.id) == "203.0.113.9"
        r = c.get(
            f"{behind_proxy.base}/api/v1/patients/{care.patient}",
            headers={**care.nurse.headers, **FORWARDED},
        )
        assert r.status_code == 200 and "strict-transport-security" in r.headers
    assert last_audit_addr(db, care.patient) == "203.0.113.9"


def test_a_proxy_over_plain_http_sets_no_hsts(behind_proxy, db, care):
    with client_from(PROXY) as c:
        headers = {"X-Forwarded-For": "203.0.113.8", "X-Forwarded-Proto": "http"}
        r = c.get(
            f"{behind_proxy.base}/api/v1/patients/{care.patient}",
            headers={**care.nurse.headers, **headers},
        )
        assert r.status_code == 200 and "strict-transport-security" not in r.headers
    assert last_audit_addr(db, care.patient) == "203.0.113.8"


def test_an_address_the_client_forged_before_the_proxy_is_not_taken(behind_proxy, db, care):
    """The proxy appends the peer it saw; what the client sent itself stands to the left."""
    with client_from(PROXY) as c:
        headers = {"X-Forwarded-For": "198.51.100.66, 203.0.113.7, 10.1.2.3"}
        r = c.get(
            f"{behind_proxy.base}/api/v1/patients/{care.patient}",
            headers={**care.nurse.headers, **headers},
        )
        assert r.status_code == 200
    assert last_audit_addr(db, care.patient) == "203.0.113.7"


@pytest.fixture(scope="module")
def forwarded_mode(db_dsn, tmp_path_factory) -> Iterator[Served]:
    env = {"TELEMED_TRUSTED_PROXIES": PROXY, "TELEMED_PROXY_HEADERS": "forwarded"}
    with telemed_serve(db_dsn, tmp_path_factory.mktemp("serve"), env=env) as s:
        yield s


def test_the_forwarded_header_when_the_proxy_sends_that(forwarded_mode, db, care):
    url = f"{forwarded_mode.base}/api/v1/patients/{care.patient}"
    with client_from(PROXY) as c:
        r = c.get(url, headers={**care.nurse.headers, **FORWARDED})
        assert r.status_code == 200 and "strict-transport-security" not in r.headers
        assert last_audit_addr(db, care.patient) == "127.0.0.2"
        forwarded = {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;by=_proxy'}
        r = c.get(url, headers={**care.nurse.headers, **forwarded})
        assert r.status_code == 200 and "strict-transport-security" in r.headers
    assert last_audit_addr(db, care.patient) == "2001:db8::7"


@pytest.fixture(scope="module")
def tls_served(db_dsn, tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(folder)
    env = {"TELEMED_TLS_CERTFILE": str(cert), "TELEMED_TLS_KEYFILE": str(key)}
    with telemed_serve(db_dsn, folder, env=env) as s:
        s.base = s.base.replace("http://", "https://")
        yield s


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_direct_tls_sets_hsts_and_secure_cookies(tls_served, care):
    with httpx.Client(verify=False) as c:
        form, signed_in = page_sign_in(c, tls_served.base, care.nurse, {})
        assert "; secure" in cookie_line(signed_in, "telemed_session")
        assert "; secure" in cookie_line(form, "telemed_csrf")
        assert signed_in.headers["strict-transport-security"].startswith("max-age=")


# --- the rules themselves ----------------------------------------------------------------------


def proxies(header: str = "x-forwarded"):
    from app.api.forwarded import Proxies

    return Proxies(["127.0.0.2", "10.0.0.0/8", "fd00::/8"], header=header)


def h(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("127.0.0.1", h(x_forwarded_for="203.0.113.9", x_forwarded_proto="https"), (None, None)),
        (
            "127.0.0.2",
            h(x_forwarded_for="203.0.113.9", x_forwarded_proto="https"),
            ("203.0.113.9", "https"),
        ),
        ("127.0.0.2", h(x_forwarded_for="203.0.113.9:5123"), ("203.0.113.9", None)),
        (
            "127.0.0.2",
            h(x_forwarded_for="198.51.100.1, 203.0.113.9, 10.0.0.5"),
            ("203.0.113.9", None),
        ),
        ("127.0.0.2", h(x_forwarded_for="10.0.0.9, 10.0.0.5"), ("10.0.0.9", None)),
        ("127.0.0.2", h(x_forwarded_for="not-an-address"), (None, None)),
        ("127.0.0.2", h(x_forwarded_proto="https"), (None, "https")),
        ("127.0.0.2", h(x_forwarded_proto="javascript"), (None, None)),
        ("127.0.0.2", h(x_forwarded_for="2001:db8::1, fd00::3"), ("2001:db8::1", None)),
        ("127.0.0.2", h(forwarded="for=203.0.113.9;proto=https"), (None, None)),
        (None, h(x_forwarded_for="203.0.113.9"), (None, None)),
    ],
)
def test_x_forwarded_rules(peer, headers, expected):
    assert proxies().resolve(peer, headers) == expected


def test_repeated_x_forwarded_for_headers_are_one_list():
    headers = [(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")]
    assert proxies().resolve("127.0.0.2", headers) == ("203.0.113.9", None)


def test_proto_of_the_client_facing_hop_when_each_proxy_appends_its_own():
    headers = h(x_forwarded_for="203.0.113.9, 10.0.0.5", x_forwarded_proto="https, http")
    assert proxies().resolve("127.0.0.2", headers) == ("203.0.113.9", "https")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=203.0.113.9;proto=https", ("203.0.113.9", "https")),
        ('for="[2001:db8::7]:4711";proto=https', ("2001:db8::7", "https")),
        (
            "for=198.51.100.1, for=203.0.113.9;proto=http, for=10.0.0.5;proto=https",
            ("203.0.113.9", "http"),
        ),
        ("for=unknown;proto=https", (None, "https")),
        ("for=_hidden", (None, None)),
        ('for="203.0.113.9', (None, None)),
    ],
)
def test_forwarded_rules(value, expected):
    headers = h(forwarded=value, x_forwarded_for="198.51.100.200")
    assert proxies("forwarded").resolve("127.0.0.2", headers) == expected


def test_a_bad_trusted_proxy_setting_refuses_to_start():
    from telemed.settings import load_settings

    with pytest.raises(ValueError, match="TELEMED_TRUSTED_PROXIES"):
        load_settings({"TELEMED_TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})
    with pytest.raises(ValueError, match="TELEMED_PROXY_HEADERS"):
        load_settings({"TELEMED_PROXY_HEADERS": "x-real-ip"})
