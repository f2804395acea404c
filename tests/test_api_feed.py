"""The dashboard feed's pure parts: rates from running counts, the history's spacing and window, the verdict."""

from __future__ import annotations

from api.feed import HISTORY_SECONDS, POINT_SECONDS, Point, keep_point, rates, verdict_body
from reconciliation.collect import EngineCounters, ProductState
from reconciliation.compare import Difference, Finding


def test_rates_are_count_deltas_per_second_between_points() -> None:
    points = [Point(10_000, 100, 10), Point(12_000, 140, 16), Point(14_000, 140, 17)]

    assert rates(points) == [
        {"at": 12_000, "holds": 20.0, "orders": 3.0},
        {"at": 14_000, "holds": 0.0, "orders": 0.5},
    ]


def test_rates_count_a_fall_in_the_running_counts_as_no_activity() -> None:
    # Redis flushed or a product rebuilt: the counts start again from zero.
    assert rates([Point(0, 500, 50), Point(2_000, 4, 1)]) == [{"at": 2_000, "holds": 0.0, "orders": 0.0}]


def test_rates_skip_points_at_the_same_moment() -> None:
    assert rates([Point(5_000, 1, 1), Point(5_000, 9, 9)]) == []
    assert rates([Point(5_000, 1, 1)]) == []


def test_the_history_keeps_one_point_per_interval() -> None:
    step = int(POINT_SECONDS * 1000)
    history = keep_point([], Point(0, 0, 0))
    history = keep_point(history, Point(step - 1, 5, 0))  # too soon: not kept
    history = keep_point(history, Point(step, 7, 1))

    assert history == [Point(0, 0, 0), Point(step, 7, 1)]


def test_the_history_forgets_points_older_than_its_window() -> None:
    window = int(HISTORY_SECONDS * 1000)
    history = [Point(0, 0, 0), Point(10_000, 1, 0)]

    history = keep_point(history, Point(window + 5_000, 2, 0))

    assert history == [Point(10_000, 1, 0), Point(window + 5_000, 2, 0)]


def _finding(product_id: int, status: str, remedy: str | None, *differences: Difference) -> Finding:
    state = ProductState(product_id, EngineCounters(10, 10, 0, 0, 0), None, backlog=3 if status == "behind" else 0)
    return Finding(product_id, status, remedy, differences, state)  # type: ignore[arg-type]


def test_the_verdict_is_the_worst_status_and_lists_only_products_that_are_off() -> None:
    findings = [
        _finding(1, "consistent", None),
        _finding(2, "behind", "drain"),
        _finding(3, "drifted", "rebuild", Difference("sold", 4, 3)),
    ]

    verdict = verdict_body(findings, 1_000)

    assert verdict["status"] == "drifted"
    assert verdict["checked_at"] == "1970-01-01T00:00:01.000Z"
    assert verdict["findings"] == [
        {"product_id": 2, "status": "behind", "remedy": "drain", "backlog": 3, "differences": []},
        {
            "product_id": 3,
            "status": "drifted",
            "remedy": "rebuild",
            "backlog": 0,
            "differences": [{"field": "sold", "engine": 4, "durable": 3}],
        },
    ]


def test_the_verdict_on_agreeing_or_no_products_is_consistent() -> None:
    assert verdict_body([_finding(1, "consistent", None)], 0)["status"] == "consistent"
    assert verdict_body([], 0)["status"] == "consistent"
    assert verdict_body([_finding(1, "behind", "drain")], 0)["status"] == "behind"
