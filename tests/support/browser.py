"""A real server and a real browser for the page tests: uvicorn in a thread, Debian's chromium under Playwright.

Playwright drives the chromium installed by the system (``.ci/run`` installs it); it never downloads one.
Screenshots go to ``docs/img/`` when ``FLASHSALE_SCREENSHOTS=1``, else to the test's temporary directory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from shared.settings import Settings
from tests.conftest import unavailable
from tests.support.api import ADMIN
from tests.support.servers import free_port

try:
    from playwright.sync_api import expect
except ImportError:  # chromium() below skips (or, in CI, fails) the tests that would use it
    expect = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The API on a free port, served by uvicorn in a thread; its base URL."""
    from api.app import create_app

    with serve_in_thread(create_app(settings)) as base:
        yield base


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Any ASGI app on a free port, served by uvicorn in a thread; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the test server stopped while starting"
        assert time.monotonic() < deadline, "the test server did not start in 20 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium; the tests skip locally (and fail in CI) without it or without Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    if expect is None:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page_of(browser: Any) -> Iterator[Any]:
    """A page in a fresh context (its own sessionStorage) that fails the test on a script error."""
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    directory = SCREENSHOTS if os.environ.get("FLASHSALE_SCREENSHOTS") == "1" else tmp_path
    path = directory / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    return path


def put_product(base: str, product_id: int, name: str, stock: int, **fields: Any) -> None:
    """Put a product on sale through the admin API: in the catalog (its name) and in the engine."""
    body = {"name": name, "price_cents": 4_900, "stock": stock, **fields}
    response = httpx.put(f"{base}/api/admin/products/{product_id}", json=body, headers=ADMIN, timeout=10)
    assert response.status_code in (200, 201), response.text


def take(base: str, product_id: int, quantity: int, customer_id: str | None = None) -> dict[str, Any]:
    """Hold units through the API, as another buyer would (with its buyer token, which a server with buyer auth off
    ignores)."""
    from tests.support.buyers import bearer

    body: dict[str, Any] = {"product_id": product_id, "quantity": quantity}
    headers: dict[str, str] = {}
    if customer_id is not None:
        body["customer_id"] = customer_id
        headers = bearer(customer_id)
    response = httpx.post(f"{base}/api/holds", json=body, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
