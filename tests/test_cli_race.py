from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from engine import Engine
from flashsale.verification.race import RACE_PRICE_CENTS, run_race
from shared.settings import Settings
from tests.support.api import ADMIN_TOKEN, WEBHOOK_SECRET, serve
from tests.support.cli import Operator

pytestmark = pytest.mark.anyio

PRODUCT = 999


async def race(client: httpx.AsyncClient, **options: Any) -> Any:
    settings = {"product_id": PRODUCT, "stock": 10, "concurrency": 30, "quantity": 1, "sample": 3}
    return await run_race(client, admin_token=ADMIN_TOKEN, webhook_secret=WEBHOOK_SECRET, **{**settings, **options})


async def test_race_passes_against_a_correct_server(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    report = await race(client)

    assert report.failures == []
    assert report.passed
    assert report.successes == 10
    assert report.refusals == {"out_of_stock": 20}
    assert report.server_errors == report.other_errors == {}
    assert report.available_after == 0
    assert report.lowest_available is not None
    assert report.lowest_available >= 0
    assert [c.step for c in report.checks] == ["order", "pay", "duplicate webhook", "final state"] * 3
    assert all(c.ok for c in report.checks)
    assert report.released == 7
    snap = engine_sync.snapshot(PRODUCT)
    assert (snap.total, snap.available, snap.held, snap.sold) == (10, 7, 0, 3)


async def test_race_leaves_units_committed_before_it_alone(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    await race(client)  # 3 units sold

    report = await race(client, stock=5, concurrency=8)

    assert report.passed, report.failures
    assert report.committed_before == 3
    assert report.successes == 5
    assert engine_sync.snapshot(PRODUCT).total == 8


async def test_race_expects_the_remainder_when_stock_is_not_a_multiple_of_quantity(client: httpx.AsyncClient) -> None:
    report = await race(client, stock=10, quantity=3, sample=0)

    assert report.passed, report.failures
    assert report.successes == 3
    assert report.available_after == 1


async def test_race_with_less_demand_than_stock_expects_every_hold_to_win(client: httpx.AsyncClient) -> None:
    report = await race(client, stock=50, concurrency=20, quantity=2, sample=1)

    assert report.passed, report.failures
    assert report.successes == 20
    assert report.refusals == {}
    assert report.available_after == 10


class StockChangedBehindItsBack:
    """Before the first hold reaches the API, someone adds 5 units straight into Redis."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self.done = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/holds" and not self.done:
            self.done = True
            total = self.engine.snapshot(PRODUCT).total
            self.engine.set_stock(PRODUCT, total + 5, price_cents=RACE_PRICE_CENTS)
        await self.app(scope, receive, send)


async def test_race_fails_against_a_server_whose_stock_changed_during_the_run(
    api_settings: Settings, engine_sync: Engine, db: Any
) -> None:
    app = create_app(api_settings)
    app.add_middleware(StockChangedBehindItsBack, engine=engine_sync)

    async with serve(app) as client:
        report = await race(client)

    assert not report.passed
    assert report.successes == 15
    assert "15 holds succeeded, expected exactly 10" in report.failures


def test_race_command_passes_against_a_live_server_and_exits_0(operator: Operator, live_api: str) -> None:
    result = operator.run("race", "--url", live_api, "--stock", "5", "--concurrency", "12")

    assert result.exit_code == 0, result.output
    assert "successes       5 (expected 5)" in result.stdout
    assert "refusals        out_of_stock 7" in result.stdout
    assert "purchases       order 3/3, pay 3/3, duplicate webhook 3/3, final state 3/3" in result.stdout
    assert "verdict: PASS" in result.stdout


def test_race_command_json_carries_the_verdict(operator: Operator, live_api: str) -> None:
    result = operator.run("race", "--url", live_api, "--stock", "3", "--concurrency", "6", "--no-purchase", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "pass"
    assert report["successes"] == report["expected_successes"] == 3
    assert report["released"] == 3


def test_race_command_exits_2_when_the_admin_token_is_refused(
    operator: Operator, live_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHSALE_ADMIN_TOKEN", "not-the-servers-admin-token")

    result = operator.run("race", "--url", live_api)

    assert result.exit_code == 2
    assert "the admin API refused the token (401" in result.stderr


def test_race_command_exits_2_when_nothing_answers(operator: Operator) -> None:
    result = operator.run("race", "--url", "http://127.0.0.1:1")

    assert result.exit_code == 2
    assert "the API does not answer" in result.stderr
