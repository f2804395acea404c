"""``flashsale queue``: each product's waiting room, as an operator watches it."""

from __future__ import annotations

import json

from engine.types import WaitingRoomSettings
from tests.support.cli import Operator


def test_queue_says_so_when_no_product_has_a_waiting_room(operator: Operator) -> None:
    operator.engine.set_stock(1, 5)

    result = operator.run("queue")

    assert result.exit_code == 0, result.output
    assert "no waiting rooms" in result.stdout


def test_queue_shows_who_waits_who_may_buy_and_who_bought(operator: Operator) -> None:
    engine = operator.engine
    engine.set_stock(3, 2, waiting_room=WaitingRoomSettings(admit_per_second=50))
    engine.set_stock(4, 9)  # no room: not listed
    tickets = [engine.queue_join(3) for _ in range(5)]
    engine.reserve(3, 1, admission=tickets[0].admission_token)
    engine.queue_leave(tickets[4].ticket)

    result = operator.run("queue")
    listed = json.loads(operator.run("queue", "--json").stdout)

    assert result.exit_code == 0, result.output
    assert "waiting rooms" in result.stdout
    [room] = listed["rooms"]
    assert (room["product_id"], room["waiting"], room["admitted"], room["used_total"], room["left_total"]) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert room["admit_per_second"] == 50
    assert room["seed"] is not None  # no start set: on sale since the room opened, so the seed is public
    assert json.loads(operator.run("queue", "4", "--json").stdout) == {"rooms": []}
