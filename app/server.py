"""How `telemed serve` (and so `telemed up`) runs the app under uvicorn.

- h11, not httptools: h11 refuses a request whose head (request line and headers) grows past
  `max_header_bytes` while it arrives, with 400, before the app sees it; httptools has no such
  limit and keeps any amount of header bytes in memory. The app also counts the headers
  (app.api.middleware.header_limits) and answers 431 in its own error shape.
- uvicorn's proxy-header handling is off: the app reads forwarded headers itself, and only from
  the trusted proxies of the settings (app.api.forwarded).
- TLS directly when TELEMED_TLS_CERTFILE and TELEMED_TLS_KEYFILE are set.
"""

from __future__ import annotations

import uvicorn

from telemed.settings import Settings


def uvicorn_config(settings: Settings, *, host: str | None = None, port: int | None = None):
    tls = {}
    if settings.tls_certfile or settings.tls_keyfile:
        if not (settings.tls_certfile and settings.tls_keyfile):
            raise ValueError("TLS needs both TELEMED_TLS_CERTFILE and TELEMED_TLS_KEYFILE")
        tls = {"ssl_certfile": settings.tls_certfile, "ssl_keyfile": settings.tls_keyfile}
    from app.asgi import create_app

    return uvicorn.Config(
        create_app(settings),
        host=host or settings.http_host,
        port=port or settings.http_port,
        http="h11",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        access_log=False,
        # Open event streams would otherwise hold a shutdown until they end.
        timeout_graceful_shutdown=5,
        **tls,
    )


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    uvicorn.Server(uvicorn_config(settings, host=host, port=port)).run()
