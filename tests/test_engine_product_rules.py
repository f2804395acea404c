"""The product rules have one owner: the engine, the catalog, the admin API's document and `flashsale product set`
all hold a product to the same bounds, name rules and sale window."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import click
import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.openapi import SCHEMAS
from api.times import parse_sale_bound
from engine import calls
from engine.exceptions import ProductRuleError
from engine.product_rules import (
    EARLIEST_SALE_BOUND,
    LATEST_SALE_BOUND,
    MAX_NAME,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_QUANTITY,
    MAX_STOCK,
    SALE_BOUND_PATTERN,
    check_name,
    check_sale_window,
)
from flashsale.cli.product import set_product
from persistence import catalog
from persistence.catalog import ProductSpec

START = datetime(2030, 1, 1, 12, tzinfo=UTC)
BOUNDS = {"price_cents": MAX_PRICE_CENTS, "stock": MAX_STOCK, "max_per_customer": MAX_PER_CUSTOMER}
ENGINE_ARGUMENT = {"price_cents": "price_cents", "stock": "total", "max_per_customer": "max_per_customer"}
CLI_OPTION = {"price_cents": "price_cents", "stock": "stock", "max_per_customer": "max_per_customer"}


def _spec(**change: Any) -> ProductSpec:
    fields: dict[str, Any] = {"id": 3, "name": "Lamp", "price_cents": 1999, "stock": 50, "max_per_customer": 2}
    return ProductSpec(**{**fields, **change})


def _document_takes(schema: str, field: str, value: object) -> bool:
    return bool(jsonschema_rs.Draft4Validator(SCHEMAS[schema]["properties"][field]).is_valid(value))


def _set_stock(**arguments: int) -> None:
    calls.set_stock(1, arguments.pop("total", 10), **arguments)


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_the_engine_the_catalog_the_document_and_the_cli_take_a_number_up_to_the_same_bound(field: str) -> None:
    highest = BOUNDS[field]
    cli = next(p for p in set_product.params if p.name == CLI_OPTION[field])

    _set_stock(**{ENGINE_ARGUMENT[field]: highest})
    catalog.validate(_spec(**{field: highest}))
    with pytest.raises(ValueError, match=ENGINE_ARGUMENT[field]):
        _set_stock(**{ENGINE_ARGUMENT[field]: highest + 1})
    with pytest.raises(ValueError, match=f"^{field}:"):
        catalog.validate(_spec(**{field: highest + 1}))
    assert _document_takes("ProductSpec", field, highest)
    assert not _document_takes("ProductSpec", field, highest + 1)
    assert isinstance(cli.type, click.IntRange)
    assert cli.type.max == highest


def test_a_hold_takes_up_to_the_same_quantity_in_the_engine_and_the_document() -> None:
    calls.reserve(1, MAX_QUANTITY, 60_000)

    with pytest.raises(ValueError, match="quantity"):
        calls.reserve(1, MAX_QUANTITY + 1, 60_000)
    assert _document_takes("HoldRequest", "quantity", MAX_QUANTITY)
    assert not _document_takes("HoldRequest", "quantity", MAX_QUANTITY + 1)


def test_an_order_of_the_most_units_at_the_highest_price_stays_below_what_lua_writes_exactly() -> None:
    assert MAX_QUANTITY * MAX_PRICE_CENTS < 10**14


def test_a_name_is_stripped_and_held_to_the_same_length_in_the_catalog_and_the_document() -> None:
    assert check_name("  Lamp\u3000") == "Lamp"
    assert check_name(" " + "x" * MAX_NAME + " ") == "x" * MAX_NAME
    assert catalog.validate(_spec(name=" Lamp ")).name == "Lamp"
    assert _document_takes("ProductSpec", "name", "x" * MAX_NAME)
    assert not _document_takes("ProductSpec", "name", "x" * (MAX_NAME + 1))


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME + 1), "Lamp\x00", "Lamp\n2", "Lamp\x9f", "\ud800", 7])
def test_a_name_that_is_blank_long_controlled_or_unencodable_is_refused(name: object) -> None:
    with pytest.raises(ProductRuleError, match=r"^name:") as refused:
        check_name(name)

    assert refused.value.field == "name"


def test_a_window_comes_back_in_utc_and_either_side_may_be_open() -> None:
    paris = timezone(timedelta(hours=1))

    assert check_sale_window(datetime(2030, 1, 1, 13, tzinfo=paris), None) == (START, None)
    assert check_sale_window(None, START) == (None, START)
    assert check_sale_window(None, None) == (None, None)


@pytest.mark.parametrize(
    ("starts", "ends", "field"),
    [
        (START, START, "sale_ends_at"),
        (START, START - timedelta(seconds=1), "sale_ends_at"),
        (datetime(2030, 1, 1), None, "sale_starts_at"),
        (None, "2030-01-01T00:00:00Z", "sale_ends_at"),
        (EARLIEST_SALE_BOUND - timedelta(microseconds=1), None, "sale_starts_at"),
        (datetime(1969, 12, 31, tzinfo=UTC), None, "sale_starts_at"),
        (None, LATEST_SALE_BOUND, "sale_ends_at"),
    ],
)
def test_a_window_that_ends_first_or_names_a_moment_outside_the_years_taken_is_refused(
    starts: Any, ends: Any, field: str
) -> None:
    with pytest.raises(ProductRuleError) as refused:
        check_sale_window(starts, ends)

    assert refused.value.field == field
    with pytest.raises(ValueError, match=f"^{field}:"):
        catalog.validate(_spec(sale_starts_at=starts, sale_ends_at=ends))


def test_the_earliest_and_latest_bounds_are_the_patterns_first_and_last_moments() -> None:
    first = parse_sale_bound("2000-01-01T00:00:00+23:59")
    last = parse_sale_bound("2999-12-31T23:59:59.999999999-23:59")

    assert first == EARLIEST_SALE_BOUND
    assert last < LATEST_SALE_BOUND <= last + timedelta(minutes=1)
    assert check_sale_window(first, last) == (first, last)


@st.composite
def _bounds(draw: st.DrawFn) -> str:
    """Sale bounds written as the pattern takes them: any day of the years 2000 to 2999, any offset."""
    day = draw(st.dates(date(2000, 1, 1), date(2999, 12, 31)))
    clock = draw(st.times()).strftime("%H:%M:%S")
    fraction = draw(st.sampled_from(["", ".5", ".123456", ".999999999"]))
    zone = draw(st.sampled_from(["Z", "+", "-"]))
    if zone != "Z":
        zone += f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    text = f"{day.isoformat()}T{clock}{fraction}{zone}"
    assert re.fullmatch(SALE_BOUND_PATTERN, text)
    return text


@given(_bounds())
def test_every_bound_the_pattern_takes_is_within_the_window_rule(text: str) -> None:
    moment = parse_sale_bound(text)

    assert check_sale_window(moment, None) == (moment, None)
