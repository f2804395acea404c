"""``flashsale product set|list`` and ``flashsale seed``: the catalog, with the admin endpoint's semantics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from api.times import iso_datetime, parse_sale_bound
from engine import Engine
from engine.exceptions import ProductNotFound, StockBelowCommitted
from engine.ids import MAX_PRODUCT_ID
from engine.product_rules import (
    DEFAULT_ADMISSION_TTL_SECONDS,
    MAX_ADMISSION_TTL_SECONDS,
    MAX_ADMIT_PER_SECOND,
    MAX_PER_CUSTOMER,
    MAX_PRICE_CENTS,
    MAX_STOCK,
)
from flashsale import demo_sale
from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import ERROR, FAILED, OK, console, fail, json_option, print_json, progress
from flashsale.products import save
from persistence.catalog import Product, ProductSpec, list_products
from persistence.exceptions import PersistenceError


def moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An RFC 3339 date-time with a time zone, refused as the admin endpoint refuses it."""
    if value is None:
        return None
    try:
        return parse_sale_bound(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _describe(saved: dict[str, Any]) -> str:
    verb = "created" if saved["created"] else "updated"
    limit = f", at most {saved['max_per_customer']} per customer" if saved["max_per_customer"] else ""
    return (
        f"{verb} product {saved['id']} {saved['name']!r}: stock {saved['stock']}, available {saved['available']}, "
        f"price {saved['price_cents']} cents{limit}"
    )


@click.group()
def product() -> None:
    """Put products on sale and list them."""


@product.command("set")
@click.argument("product_id", metavar="ID", type=click.IntRange(1, MAX_PRODUCT_ID))
@click.option("--name", required=True, help="Display name.")
@click.option("--price-cents", type=click.IntRange(0, MAX_PRICE_CENTS), required=True, help="Unit price in cents.")
@click.option("--stock", type=click.IntRange(0, MAX_STOCK), required=True, help="Total units put on sale.")
@click.option(
    "--max-per-customer",
    type=click.IntRange(0, MAX_PER_CUSTOMER),
    default=0,
    show_default=True,
    help="Units one customer may hold, have pending or buy; 0 means no limit.",
)
@click.option(
    "--starts-at",
    callback=moment,
    metavar="RFC3339",
    help="Sale opens (RFC 3339, e.g. 2026-11-28T12:00:00Z); default: open.",
)
@click.option("--ends-at", callback=moment, metavar="RFC3339", help="Sale closes (RFC 3339); default: never.")
@click.option(
    "--low-stock-threshold",
    type=click.IntRange(0, MAX_STOCK),
    default=0,
    show_default=True,
    help="Below it (and above 0), the merchant hears product.low_stock; 0 means never.",
)
@click.option(
    "--waiting-room/--no-waiting-room",
    default=None,
    help="Open (or keep open) the product's waiting room, or close it; left out, the room stays as it is.",
)
@click.option(
    "--admit-per-second",
    type=click.IntRange(1, MAX_ADMIT_PER_SECOND),
    help="With --waiting-room: admissions a second at most; default: no cap.",
)
@click.option(
    "--admission-ttl-seconds",
    type=click.IntRange(1, MAX_ADMISSION_TTL_SECONDS),
    help=f"With --waiting-room: how long an admission waits for its hold; default: {DEFAULT_ADMISSION_TTL_SECONDS}.",
)
@json_option
def set_product(
    product_id: int,
    name: str,
    price_cents: int,
    stock: int,
    max_per_customer: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
    low_stock_threshold: int,
    waiting_room: bool | None,
    admit_per_second: int | None,
    admission_ttl_seconds: int | None,
    as_json: bool,
) -> None:
    """Create or change product ID, in the database and in the engine at once.

    Like PUT /api/admin/products/ID, every field is set: an option left out takes its default. The waiting room
    is the exception: without --waiting-room or --no-waiting-room it stays as it is, on or off, with its rate and
    TTL (a new product has none), so that changing the stock never closes an open room.
    A stock below the units already held, pending or sold is refused (stock_below_committed, exit 1),
    and then nothing changes anywhere. Either store failing changes neither (exit 2: Redis or the
    database unavailable, catalog_write_failed; product_put_incomplete says what was left, and
    running the same command again makes both agree).
    """
    if not waiting_room and (admit_per_second is not None or admission_ttl_seconds is not None):
        raise click.UsageError("--admit-per-second and --admission-ttl-seconds set the room --waiting-room opens")
    settings = operator_settings()
    spec = ProductSpec(
        product_id,
        name,
        price_cents,
        stock,
        max_per_customer,
        starts_at,
        ends_at,
        waiting_room=waiting_room,
        admit_per_second=admit_per_second,
        admission_ttl_seconds=admission_ttl_seconds or DEFAULT_ADMISSION_TTL_SECONDS,
        low_stock_threshold=low_stock_threshold,
    )
    with backends(settings) as (engine, db):
        try:
            saved = save(engine, db, spec)
        except StockBelowCommitted as error:
            fail(f"{error.code}: {error.message}", FAILED)
        except PersistenceError as error:
            fail(f"{error.code}: {error.message}", ERROR)
        except ValueError as error:
            fail(f"validation_error: {error}", ERROR)
    if as_json:
        print_json(saved)
    else:
        click.echo(_describe(saved))


def _row(engine: Engine, product: Product) -> dict[str, Any]:
    try:
        snap = engine.snapshot(product.id)
    except ProductNotFound:
        live: dict[str, Any] = {"in_engine": False, "available": None, "held": None, "pending": None, "sold": None}
    else:
        live = {
            "in_engine": True,
            "available": snap.available,
            "held": snap.held,
            "pending": snap.pending,
            "sold": snap.sold,
        }
    return {
        "id": product.id,
        "name": product.name,
        "price_cents": product.price_cents,
        "stock": product.stock,
        **live,
        "max_per_customer": product.max_per_customer or None,
        "sale_starts_at": iso_datetime(product.sale_starts_at),
        "sale_ends_at": iso_datetime(product.sale_ends_at),
    }


@product.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """The catalog, with live availability from the engine."""
    settings = operator_settings()
    with backends(settings) as (engine, db):
        products = list_products(db)
        with progress(quiet=as_json) as bar:
            task = bar.add_task("reading the engine", total=len(products))
            rows = []
            for item in products:
                rows.append(_row(engine, item))
                bar.advance(task)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("The catalog is empty: `flashsale seed` loads a demo one, `flashsale product set` adds a product.")
        return
    table = Table("id", "name", "price", "stock", "available", "held", "pending", "sold", "limit", "sale window")
    missing = False
    for row in rows:
        missing = missing or not row["in_engine"]
        window = f"{row['sale_starts_at'] or 'open'} → {row['sale_ends_at'] or 'open'}"
        table.add_row(
            str(row["id"]),
            row["name"],
            f"{row['price_cents'] / 100:.2f}",
            str(row["stock"]),
            *(("[red]not in Redis[/]", "", "", "") if not row["in_engine"] else _live(row)),
            str(row["max_per_customer"] or "-"),
            window,
        )
    console().print(table)
    if missing:
        click.echo("Some products are missing from Redis: `flashsale reconcile --rebuild-all` restores them.")


def _live(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return str(row["available"]), str(row["held"]), str(row["pending"]), str(row["sold"])


@click.command()
@json_option
def seed(as_json: bool) -> None:
    """Load the demo catalog (products 1 to 3), creating or resetting each product, as `product set` would."""
    settings = operator_settings()
    with backends(settings) as (engine, db), progress(quiet=as_json) as bar:
        task = bar.add_task("loading the demo catalog", total=len(demo_sale.CATALOG))
        saved, refused = demo_sale.seed(engine, db, advance=lambda: bar.advance(task))
    if as_json:
        print_json({"products": saved, "refused": refused})
    else:
        for item in saved:
            click.echo(_describe(item))
        for line in refused:
            click.echo(f"refused {line}", err=True)
    raise SystemExit(FAILED if refused else OK)
