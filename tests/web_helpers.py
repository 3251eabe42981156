"""Helpers for the web page tests: a cookie-keeping client of its own, and signing in by form."""

from __future__ import annotations

import re

from litestar.testing import TestClient

CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_from(html: str) -> str:
    found = CSRF_META.search(html) or CSRF_INPUT.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str, **extra: str):
    """Sign in through the form as a browser does: get the form, post it with its token."""
    form = client.get("/login")
    assert form.status_code == 200
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "_csrf_token": csrf_from(form.text),
            **extra,
        },
        follow_redirects=False,
    )


def page_token(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return csrf_from(response.text)
