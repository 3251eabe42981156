"""Request size limits, against the server as production runs it (`telemed serve`): small bodies
for sign-in and the JSON endpoints, the uploads' own limits only on the upload routes, and header
size and count limits in the server."""

from __future__ import annotations

import io
import json
import random
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests import photos
from tests.http_helpers import Served, raw_request, read_response, telemed_serve
from tests.web_helpers import csrf_from
from tests.wound_helpers import case_body, form

pytest_plugins = ["tests.wound_helpers"]

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def served(db_dsn, tmp_path_factory) -> Iterator[Served]:
    with telemed_serve(db_dsn, tmp_path_factory.mktemp("serve")) as s:
        yield s


def _head(path: str, length: int | None, *, extra: str = "", ctype="application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Content-Type: {ctype}"]
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    lines.append(size)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def _problem(body: bytes, status: int, code: str) -> dict:
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code, problem
    assert problem["detail"]
    return problem


def _csrf(served: Served) -> tuple[str, str]:
    """A CSRF cookie and the form token that goes with it, from the sign-in page."""
    form = httpx.get(f"{served.base}/login")
    return form.cookies["telemed_csrf"], csrf_from(form.text)


@pytest.mark.parametrize(
    ("path", "ctype", "token"),
    [
        ("/api/v1/auth/token", "application/json", None),
        ("/login", "application/x-www-form-urlencoded", "header"),
        ("/login", "application/x-www-form-urlencoded", "form"),
    ],
)
def test_a_150_mib_sign_in_body_is_refused_before_it_is_read(served, path, ctype, token):
    """The server answers 413 after 64 KiB of an announced 150 MiB: it did not wait for (or
    keep) the rest. Before the limits it read the whole body into memory first. The page's form
    is tried with its CSRF token in the header and in the form (then the CSRF check reads the
    body to find it, within the same limit)."""
    extra = ""
    if token:
        cookie, value = _csrf(served)
        extra = f"Cookie: telemed_csrf={cookie}\r\n"
        if token == "header":
            extra += f"X-CSRFToken: {value}\r\n"
    head = _head(path, 150 * MIB, extra=extra, ctype=ctype)
    status, _, body = raw_request(served.host, served.port, head, b"x" * 65536, timeout=10)
    assert status == 413
    _problem(body, 413, "body_too_large")


def test_a_chunked_sign_in_body_is_cut_at_the_limit(served):
    """Without Content-Length the limit counts the bytes as they arrive."""
    with socket.create_connection((served.host, served.port), timeout=10) as s:
        s.sendall(_head("/api/v1/auth/token", None))
        sent = 0
        chunk = b"%x\r\n%s\r\n" % (8192, b"y" * 8192)
        try:
            while sent < 4 * MIB:
                s.sendall(chunk)
                sent += 8192
        except OSError:
            pass  # closed by the server after its answer
        status, _, body = read_response(s)
    assert status == 413 and sent < 4 * MIB
    _problem(body, 413, "body_too_large")


def test_json_endpoints_refuse_a_body_over_the_json_limit(served, care):
    data = json.dumps({"readings": [{"metric": "spo2", "value": 95}] * 70000}).encode()
    assert len(data) > 2 * MIB
    r = httpx.post(
        f"{served.base}/api/v1/patients/{care.patient}/readings",
        content=data,
        headers={**care.nurse.headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413, r.text
    problem = r.json()
    assert problem["code"] == "body_too_large" and problem["request_id"]


def test_a_small_json_body_still_reaches_validation(served, care):
    r = httpx.post(
        f"{served.base}/api/v1/patients/{care.patient}/readings",
        json={"readings": "nope"},
        headers=care.nurse.headers,
    )
    assert r.status_code == 400, r.text


def _large_jpeg(min_bytes: int) -> bytes:
    """A noisy phone-sized JPEG larger than `min_bytes`."""
    out = io.BytesIO()
    noise = Image.frombytes("RGB", (1200, 900), random.Random(7).randbytes(1200 * 900 * 3))
    noise.save(out, "JPEG", quality=95, exif=photos.phone_exif())
    data = out.getvalue()
    assert len(data) > min_bytes, len(data)
    return data


def test_uploads_keep_their_own_larger_limit(api, wc):
    """A photo larger than the JSON limit is still accepted on the upload route."""
    photo = _large_jpeg(MIB + 1)
    r = api.post(
        "/api/v1/wound-cases",
        files=form(case_body(wc.patient), [("IMG_0100.jpg", photo, "image/jpeg")]),
        headers=wc.nurse.headers,
    )
    assert r.status_code == 201, r.text


def _send_until_answered(served: Served, data: bytes) -> int:
    """Send `data` in pieces, stopping as soon as the server answers (a server that refuses a
    request closes the connection; a client that went on writing would get a reset instead of
    the answer); the answer's status."""
    with socket.create_connection((served.host, served.port), timeout=10) as s:
        for start in range(0, len(data), 8192):
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(data[start : start + 8192])
            except OSError:
                break
        status, _, _ = read_response(s)
    return status


def test_a_1_mib_header_is_refused(served):
    head = f"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {'a' * MIB}\r\n\r\n"
    assert _send_until_answered(served, head.encode()) in (400, 431)


def test_20000_headers_are_refused(served):
    head = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
    head += "".join(f"x-h{i}: v\r\n" for i in range(20000)) + "\r\n"
    assert _send_until_answered(served, head.encode()) in (400, 431)


def test_too_many_small_headers_get_431_in_the_error_shape(served, care):
    """Below the server's byte limit, the app still counts the headers."""
    headers = {**care.nurse.headers, **{f"x-h{i}": "v" for i in range(150)}}
    r = httpx.get(f"{served.base}/api/v1/auth/me", headers=headers)
    assert r.status_code == 431
    assert r.json()["code"] == "headers_too_large"


def test_ordinary_requests_pass_the_limits(served, care):
    headers = {**care.nurse.headers, "Cookie": "a=" + "b" * 4000, "User-Agent": "x" * 500}
    r = httpx.get(f"{served.base}/api/v1/auth/me", headers=headers)
    assert r.status_code == 200, r.text


def test_the_server_stays_up_after_refusing(served):
    for _ in range(3):
        raw_request(served.host, served.port, _head("/api/v1/auth/token", 150 * MIB), b"x" * 1024)
    time.sleep(0.2)
    assert served.proc.poll() is None
    assert httpx.get(f"{served.base}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEMED_MAX_BODY_BYTES", "0"),
        ("TELEMED_MAX_HEADERS", "0"),
        ("TELEMED_SIGNIN_ACCOUNT_FREE", "0"),
        ("TELEMED_SIGNIN_DELAY_BASE_S", "0"),
        ("TELEMED_SIGNIN_DELAY_MAX_S", "0.5"),
        ("TELEMED_HASH_WORKERS", "0"),
        ("TELEMED_HASH_QUEUE", "-1"),
    ],
)
def test_a_limit_that_would_switch_itself_off_refuses_to_start(name, value):
    from telemed.settings import load_settings

    with pytest.raises(ValueError, match=name):
        load_settings({name: value})
