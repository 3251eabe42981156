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
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
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


@pytest.fixture(scope="session")
def chromium():
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed in .venv")
    if not _chromium_present():
        pytest.skip(f"no Chromium at {CHROMIUM}, and scripts/browser-deps could not install it")
    vendor = REPO_ROOT / "telemed" / "web" / "static" / "vendor" / "uPlot.iife.min.js"
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
        """Save a small PNG (a 256-colour palette) under docs/screenshots/."""
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


@pytest.fixture
def open_tab(chromium, live_server) -> Iterator:
    tabs: list[Tab] = []

    def make(viewport: dict = DESKTOP, *, locale: str = "da-DK") -> Tab:
        context = chromium.new_context(viewport=viewport, locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(context, page, live_server)
        page.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: _console(tab, msg))
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.context.close()
