"""The demo sale: its catalog, loading it (``flashsale seed``, the first ``flashsale up``), and the walk-through of
one purchase."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from engine import Engine
from engine.exceptions import StockBelowCommitted
from flashsale.products import save
from persistence.catalog import ProductSpec
from persistence.exceptions import PersistenceError

CATALOG: tuple[ProductSpec, ...] = (
    ProductSpec(1, "Limited sneaker, drop #1", price_cents=12_900, stock=100, max_per_customer=2),
    ProductSpec(2, "Concert ticket, front row", price_cents=8_500, stock=500, max_per_customer=4),
    ProductSpec(3, "Signed vinyl, numbered", price_cents=4_900, stock=10, max_per_customer=1),
)


def seed(
    engine: Engine, db: sa.Engine, *, advance: Callable[[], object] = lambda: None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Put every demo product; returns what was saved and the refusals (a product whose stock is committed, or
    whose catalog write failed). ``advance`` is called after each product (a progress bar)."""
    saved, refused = [], []
    for spec in CATALOG:
        try:
            saved.append(save(engine, db, spec))
        except (StockBelowCommitted, PersistenceError) as error:
            refused.append(f"product {spec.id}: {error.code}: {error.message}")
        advance()
    return saved, refused


WALKTHROUGH_PRODUCT = 1
WALKTHROUGH_CUSTOMER = "alice"

# Reads one field of the JSON on stdin, with the python3 any machine with the project already has.
_FIELD = "python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])'"


def walkthrough(url: str, flashsale: str = "flashsale", *, buyer_tokens: bool = False) -> list[tuple[str, str]]:
    """(title, shell command) for each step of one purchase against ``url``, ready to paste in order.

    With ``buyer_tokens`` (FLASHSALE_BUYER_AUTH=jwt) the buyer first gets a token and sends it on every call."""
    if buyer_tokens:
        hold_body = f'{{"product_id": {WALKTHROUGH_PRODUCT}, "quantity": 1}}'
        auth = ' -H "Authorization: Bearer $TOKEN"'
        login = [
            (
                f"Log in as {WALKTHROUGH_CUSTOMER}: a signed buyer token",
                f"TOKEN=$({flashsale} token {WALKTHROUGH_CUSTOMER})",
            )
        ]
    else:
        hold_body = f'{{"product_id": {WALKTHROUGH_PRODUCT}, "quantity": 1, "customer_id": "{WALKTHROUGH_CUSTOMER}"}}'
        auth, login = "", []
    hold = shlex.quote(hold_body)
    json = "-H 'Content-Type: application/json'" + auth
    return [
        ("See the product, live availability included", f"curl -s {url}/api/products/{WALKTHROUGH_PRODUCT}"),
        *login,
        (
            "Hold one unit (it is yours for FLASHSALE_HOLD_TTL_SECONDS)",
            f"HOLD=$(curl -s -X POST {url}/api/holds {json} -d {hold} | {_FIELD} hold_id); echo $HOLD",
        ),
        (
            "Turn the hold into an order",
            f"ORDER=$(curl -s -X POST {url}/api/orders {json} -d '{{\"hold_id\": \"'$HOLD'\"}}' | {_FIELD} order_id)"
            "; echo $ORDER",
        ),
        ("Pay it: a signed webhook, as the payment provider would send", f"{flashsale} pay $ORDER --status success"),
        ("See the order paid", f"curl -s{auth} {url}/api/orders/$ORDER"),
    ]
