from __future__ import annotations

import json

import pytest

from shared import vardir
from shared.settings import WEBHOOK_SECRET_FILE
from tests.support.api import WEBHOOK_SECRET
from tests.support.cli import Operator
from tests.support.sales import add_product


@pytest.fixture
def order_id(operator: Operator) -> str:
    add_product(operator.engine, operator.db, 5, stock=10)
    return operator.engine.convert(operator.engine.reserve(5, 2).hold_id).order_id


@pytest.fixture
def up_directory(operator: Operator, live_api: str, monkeypatch: pytest.MonkeyPatch) -> Operator:
    """As `flashsale up` leaves it: the secret in var/webhook_secret, the URL in var/up.json, no variables."""
    operator.var_dir.mkdir(parents=True, exist_ok=True)
    (operator.var_dir / WEBHOOK_SECRET_FILE).write_text(WEBHOOK_SECRET + "\n")
    vardir.write_state(operator.var_dir, url=live_api)
    monkeypatch.delenv("FLASHSALE_WEBHOOK_SECRET")
    return operator


def test_pay_needs_only_the_order_and_the_status_where_up_runs(up_directory: Operator, order_id: str) -> None:
    result = up_directory.run("pay", order_id, "--status", "success")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"order {order_id} is now paid (transaction txn_")
    assert up_directory.engine.order(order_id).status == "paid"


def test_pay_twice_with_one_transaction_is_a_duplicate(up_directory: Operator, order_id: str) -> None:
    first = up_directory.run("pay", order_id, "--status", "success", "--transaction-id", "t-1", "--json")
    again = up_directory.run("pay", order_id, "--status", "success", "--transaction-id", "t-1", "--json")

    assert first.exit_code == again.exit_code == 0
    assert (
        json.loads(first.stdout).items()
        >= {
            "http_status": 200,
            "order_id": order_id,
            "transaction_id": "t-1",
            "status": "paid",
            "applied": True,
            "duplicate": False,
        }.items()
    )
    assert json.loads(again.stdout)["duplicate"] is True


def test_pay_failed_cancels_the_order_and_returns_the_units(up_directory: Operator, order_id: str) -> None:
    result = up_directory.run("pay", order_id, "--status", "failed")

    assert result.exit_code == 0, result.output
    assert "is now cancelled" in result.stdout
    assert up_directory.engine.snapshot(5).available == 10


def test_pay_with_the_wrong_secret_is_refused_and_changes_nothing(
    up_directory: Operator, order_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHSALE_WEBHOOK_SECRET", "a-secret-the-server-does-not-know")

    result = up_directory.run("pay", order_id, "--status", "success")

    assert result.exit_code == 1
    assert "401 invalid_signature" in result.stderr
    assert up_directory.engine.order(order_id).status == "pending"


def test_pay_an_unknown_order_exits_1(up_directory: Operator) -> None:
    result = up_directory.run("pay", "o5_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "--status", "success")

    assert result.exit_code == 1
    assert "404 order_not_found" in result.stderr


def test_pay_without_any_secret_says_where_it_looked(operator: Operator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLASHSALE_WEBHOOK_SECRET")

    result = operator.run("pay", "o5_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "--status", "success")

    assert result.exit_code == 2
    assert "FLASHSALE_WEBHOOK_SECRET" in result.stderr
    assert str(operator.var_dir / WEBHOOK_SECRET_FILE) in result.stderr


def test_pay_exits_2_when_nothing_answers(operator: Operator) -> None:
    result = operator.run("pay", "o5_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", "--status", "success", "--url", "http://127.0.0.1:1")

    assert result.exit_code == 2
    assert "nothing answers at http://127.0.0.1:1" in result.stderr
