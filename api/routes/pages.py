"""The two pages, ``/`` (the demo storefront) and ``/dashboard`` (the operator's), and their static files.

Plain files from the package (``api/static``): no build step, nothing fetched from elsewhere. The pages
hold no secret; the dashboard's data needs the admin token, which the operator pastes into the page.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent.parent / "static"

# The dashboard keeps an admin token in the page: only the page's own scripts may run or send anything.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


async def storefront(request: Request) -> Response:
    return _page("index.html")


async def dashboard(request: Request) -> Response:
    return _page("dashboard.html")


routes: list[BaseRoute] = [
    Route("/", storefront, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
