"""The real ComfyUI frontend in headless Chromium, driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APP_READY = "() => window.app && window.app.extensionManager && window.app.graph"
# any URL not on 127.0.0.1; a regular expression (not a function) is matched in the browser, so that
# requests to the server are never held for this process
OUTSIDE_HOSTS = re.compile(r"^(?!http://127\.0\.0\.1[:/])")


def chromium_path(playwright) -> str:
    """A Chromium on PATH (Debian's package), else one Playwright installed; the error says how to get one."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    if os.path.isfile(path := playwright.chromium.executable_path):
        return path
    raise RuntimeError("The browser tests need Chromium and found none: install it with your system's package "
                       "manager (Debian/Ubuntu: sudo apt-get install chromium), or let Playwright fetch its own "
                       "with ~/.cache/comfyui-tstitch/venv/bin/python -m playwright install chromium.")


@contextmanager
def launch_browser():
    """Headless Chromium under Playwright (one per thread: Playwright's sync API allows no second)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(playwright), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, server, width: int = 1600, height: int = 1000):
    """A new page with the frontend served by ``server`` loaded and ready; requests off 127.0.0.1 are blocked."""
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    # the frontend calls outside hosts (fonts, telemetry); this machine must not. Only those are routed: a routed
    # request waits for this process to call into Playwright, and a test waiting on the server alone would hold
    # the page's own requests (an image the frontend gives up on after 2 x 8 s is never asked for again)
    page.route(OUTSIDE_HOSTS, lambda route: route.abort())
    page.goto(server.url)
    wait_until_ready(page)
    return page


def wait_until_ready(page) -> None:
    """The app is up and no longer blocks input (after a load or a reload)."""
    page.wait_for_function(APP_READY, timeout=120_000)
    page.wait_for_selector(".p-blockui-mask", state="hidden", timeout=120_000)


@contextmanager
def open_frontend(server, width: int = 1600, height: int = 1000):
    with launch_browser() as browser:
        yield open_page(browser, server, width, height)
