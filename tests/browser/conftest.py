"""Headless Chromium (Debian's package) driven by Playwright against the app on a real uvicorn.

Playwright's own browser download is never used: the tests launch /usr/bin/chromium, which
scripts/browser-deps installs. Without it (and no way to install it) the tests are skipped.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from telemed.settings import REPO_ROOT

CHROMIUM = os.environ.get("TELEMED_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The documentation's screenshots are rewritten only on request
# (`TELEMED_UPDATE_SCREENSHOTS=1 scripts/test tests/browser`); an ordinary run keeps its own.
SCREENSHOTS = (
    REPO_ROOT / "docs" / "screenshots"
    if os.environ.get("TELEMED_UPDATE_SCREENSHOTS") == "1"
    else REPO_ROOT / ".dev" / "test" / "screenshots"
)
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 860}
TIMEOUT_MS = 15_000


def _chromium_present() -> bool:
    if Path(CHROMIUM).exists():
        return True
    script = REPO_ROOT / "scripts" / "browser-deps"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run([str(script)], check=False, timeout=900)
    return Path(CHROMIUM).exists()


@pytest.fixture(scope="package")
def chromium():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed in .venv")
    if not _chromium_present():
        pytest.skip(f"no Chromium at {CHROMIUM}, and scripts/browser-deps could not install it")
    vendor = REPO_ROOT / "app" / "web" / "static" / "vendor" / "uPlot.iife.min.js"
    if not vendor.exists():
        subprocess.run([str(REPO_ROOT / "scripts" / "web-assets")], check=True, timeout=600)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """One browser context (its own cookies) with one page, collecting script errors."""

    context: object
    page: object
    base: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def sign_in(self, username: str, password: str) -> None:
        self.go("/login")
        self.page.get_by_label("Brugernavn").fill(username)
        self.page.get_by_label("Adgangskode").fill(password)
        self.page.get_by_role("button", name="Log ind").click()
        self.page.wait_for_url(lambda url: "/login" not in url)

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        """Save a small PNG (a 256-colour palette) under SCREENSHOTS."""
        from PIL import Image

        png = self.page.screenshot(full_page=full_page, animations="disabled")
        image = Image.open(io.BytesIO(png)).convert("RGB")
        path = SCREENSHOTS / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        return path

    def assert_accessible(self) -> None:
        """axe-core finds nothing serious or critical on the page as it is now."""
        from axe_playwright_python.sync_playwright import Axe

        result = Axe().run(self.page)
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] for n in v["nodes"][:3])
            for v in result.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, "\n".join(bad)

    def assert_no_script_errors(self) -> None:
        assert not self.errors, self.errors


def _console(tab: Tab, msg) -> None:
    # A refused request shows as "Failed to load resource" too; those are the tests' business
    # (a 401 page is the expected answer to a wrong password). Script errors and CSP refusals
    # ("Refused to ...") are always a fault.
    if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
        tab.errors.append(f"console: {msg.text}")


def web_app(settings):
    """The app as deployed."""
    from app.asgi import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def web_server(settings) -> Iterator[str]:
    """The app on a real uvicorn on a loopback port, in a thread of the test process."""
    import threading
    import time

    import uvicorn

    from tests.conftest import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            web_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    # Open event streams would keep the server waiting for them until they time out.
    server.force_exit = True
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def open_tab(chromium, web_server) -> Iterator:
    tabs: list[Tab] = []

    def make(viewport: dict = DESKTOP, *, locale: str = "da-DK") -> Tab:
        context = chromium.new_context(viewport=viewport, locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(context, page, web_server)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: _console(tab, msg))
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.context.close()
