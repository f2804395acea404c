"""The Redis keys: a product's sixteen, hash-tagged with its id, and the sale-wide ones outside every product's slot.

Every key a script touches comes in through KEYS and carries its hash tag, so that it works on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from redis.crc import key_slot

from engine.ids import check_product_id


@dataclass(frozen=True, slots=True)
class ProductKeys:
    """The sixteen keys of one product, in the order every script receives them (see lua/_prelude.lua).

    The last five are the waiting room's (docs/waiting-room.md): empty unless the product opted in."""

    product: str
    holds: str
    hold_exp: str
    orders: str
    order_exp: str
    txns: str
    customers: str
    idem: str
    tombs: str
    outbox: str
    hold_queue: str
    queue: str
    queue_wait: str
    queue_adm: str
    queue_tab: str
    queue_subs: str

    def all(self) -> list[str]:
        return [
            self.product,
            self.holds,
            self.hold_exp,
            self.orders,
            self.order_exp,
            self.txns,
            self.customers,
            self.idem,
            self.tombs,
            self.outbox,
            self.hold_queue,
            self.queue,
            self.queue_wait,
            self.queue_adm,
            self.queue_tab,
            self.queue_subs,
        ]


PRODUCTS_KEY = "fs:products"
"""The set of known product ids. It lives outside any product's slot and no script touches it."""

TRANSACTION_KEY_PREFIX = "fs:txn:"

CLAIMS_COMPLETE_KEY = "fs:txns:complete"
"""The claim store's completeness mark (one Redis only): the run id of the server on which every transaction id
PostgreSQL records was found claimed. While it names the server a claim script runs on, an id without a claim is
new. It lives no longer than the shortest of those claims (see ``AsyncEngine.vouch_claims``)."""


def transaction_key(transaction_id: str) -> str:
    """The sale-wide claim of a transaction id: ``fs:txn:{<id>}``, hash-tagged from the id itself.

    Redis Cluster hashes the text between the first ``{`` and the next ``}``, so braces in the id are
    percent-escaped (and ``%`` first, so that two ids never share a key): the whole id is always the tag.
    """
    escaped = transaction_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return f"{TRANSACTION_KEY_PREFIX}{{{escaped}}}"


@lru_cache(maxsize=65536)
def product_keys(product_id: int) -> ProductKeys:
    check_product_id(product_id)
    tag = f"fs:{{{product_id}}}:"
    return ProductKeys(
        product=tag + "product",
        holds=tag + "holds",
        hold_exp=tag + "hold_exp",
        orders=tag + "orders",
        order_exp=tag + "order_exp",
        txns=tag + "txns",
        customers=tag + "customers",
        idem=tag + "idem",
        tombs=tag + "tombs",
        outbox=tag + "outbox",
        hold_queue=tag + "hold_queue",
        queue=tag + "queue",
        queue_wait=tag + "queue_wait",
        queue_adm=tag + "queue_adm",
        queue_tab=tag + "queue_tab",
        queue_subs=tag + "queue_subs",
    )


@lru_cache(maxsize=65536)
def product_slot(product_id: int) -> int:
    """The Redis Cluster hash slot of every key of ``product_id``: products of one slot can share a script call."""
    return int(key_slot(product_keys(product_id).product.encode()))
