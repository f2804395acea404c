"""``flashsale queue``: every product's waiting room, as an operator watches it during a sale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from engine import Engine
from engine.exceptions import ProductNotFound
from engine.types import WaitingRoom
from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import OK, console, json_option, print_json


def room_json(room: WaitingRoom) -> dict[str, Any]:
    return {
        "product_id": room.product_id,
        "waiting": room.waiting,
        "admitted": room.admitted,
        "joined_total": room.joined_total,
        "admitted_total": room.admitted_total,
        "used_total": room.used_total,
        "expired_total": room.expired_total,
        "left_total": room.left_total,
        "available": room.available,
        "admit_per_second": room.admit_per_second,
        "admission_ttl_seconds": (room.admission_ttl_ms or 0) // 1000,
        "opened_at_ms": room.opened_at_ms,
        "sale_starts_at_ms": room.sale_starts_at_ms,
        "pre_queue_tickets": room.pre_queue_last,
        "seed_sha256": room.seed_sha256,
        "seed": room.seed,
    }


def rooms(engine: Engine, product_ids: Sequence[int]) -> list[WaitingRoom]:
    """The waiting rooms of ``product_ids`` (all products when empty), leaving out products without one."""
    found = []
    for product_id in product_ids or engine.product_ids():
        try:
            room = engine.queue_info(product_id)
        except ProductNotFound:
            continue
        if room.on:
            found.append(room)
    return found


def table(found: Sequence[WaitingRoom]) -> Table:
    out = Table(title="waiting rooms", title_justify="left")
    names = ("product", "waiting", "admitted", "used", "expired", "left", "available", "rate cap/s", "ttl s")
    for name in names:
        out.add_column(name, justify="right")
    out.add_column("seed (after the start) or its SHA-256")
    for r in found:
        out.add_row(
            str(r.product_id),
            str(r.waiting),
            str(r.admitted),
            str(r.used_total),
            str(r.expired_total),
            str(r.left_total),
            str(r.available),
            str(r.admit_per_second or "-"),
            str((r.admission_ttl_ms or 0) // 1000),
            f"seed {r.seed}" if r.seed else f"sha256 {r.seed_sha256}",
        )
    return out


@click.command()
@click.argument("product_ids", nargs=-1, type=click.IntRange(min=1))
@json_option
def queue(product_ids: tuple[int, ...], as_json: bool) -> None:
    """Show each product's waiting room: tickets waiting, admitted and unused, used, expired and left, the units
    available, the rate cap, and the seed's SHA-256 (the seed itself once the sale has started).

    Without PRODUCT_IDS, every product with a waiting room. Exit status 0; 2 if Redis is unavailable.
    """
    settings = operator_settings()
    with backends(settings) as (engine, _):
        found = rooms(engine, product_ids)
    if as_json:
        print_json({"rooms": [room_json(r) for r in found]})
        raise SystemExit(OK)
    if not found:
        click.echo("no waiting rooms")
        raise SystemExit(OK)
    console().print(table(found))
    raise SystemExit(OK)
