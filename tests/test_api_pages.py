"""``/`` and ``/dashboard``: plain pages from the package, with every file they load served from it too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.app import create_app
from api.routes.pages import STATIC
from shared.settings import Settings
from tests.support.api import assert_problem, serve

pytestmark = pytest.mark.anyio

PAGES = ("/", "/dashboard")


@pytest.fixture
async def files(api_settings: Settings, real_redis: redis.Redis, db: sa.Engine) -> AsyncIterator[httpx.AsyncClient]:
    """A client for paths the OpenAPI document leaves out on purpose (the static files)."""
    async with serve(create_app(api_settings), conform=False) as http:
        yield http


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_is_html_that_may_run_only_its_own_scripts(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in response.text  # no inline script: the policy would refuse it


@pytest.mark.parametrize("path", PAGES)
async def test_every_file_a_page_loads_comes_from_the_package(files: httpx.AsyncClient, path: str) -> None:
    page = (await files.get(path)).text
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert any(asset.endswith(".js") for asset in assets)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "nothing may come from elsewhere"
    for asset in assets:
        response = await files.get(asset)
        assert response.status_code == 200, asset
        expected = "text/javascript" if asset.endswith(".js") else "text/css"
        assert response.headers["content-type"].startswith(expected), asset


async def test_a_missing_static_file_is_a_404_problem(files: httpx.AsyncClient) -> None:
    assert_problem(await files.get("/static/nothing-here.js"), 404, "not_found")
    assert_problem(await files.get("/static/../app.py"), 404, "not_found")


async def test_a_page_refuses_other_methods_as_a_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/dashboard"), 405, "method_not_allowed")


def test_the_static_files_are_all_shipped_as_package_data() -> None:
    # pyproject ships api/static/* (no subdirectories): a file in a subdirectory would be left out.
    assert all(path.is_file() for path in STATIC.iterdir())
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'api = ["static/*"]' in pyproject
