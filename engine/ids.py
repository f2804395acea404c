"""Hold and order ids, and the Redis keys of a product.

An id names its product, so the engine finds the product's hash slot from the id alone:
``h42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2`` is hold ``01JD0Z…`` of product 42, ``o42_…`` an order.
Ids are parsed, never trusted: anything that does not match exactly is refused before a key is built.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from engine.exceptions import InvalidId

Kind = Literal["hold", "order"]

MAX_PRODUCT_ID = 10**15 - 1
_PREFIX: dict[Kind, str] = {"hold": "h", "order": "o"}
_ID_RE = re.compile(r"([ho])([1-9][0-9]{0,14})_([0-9A-HJKMNP-TV-Z]{26})")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
"""Every 10-bit number as two Crockford base32 characters."""
_time_prefix = (-1, "")
"""The last millisecond new_ulid spelled, and its 10 characters (a tuple: threads swap it whole)."""
_ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


@dataclass(frozen=True, slots=True)
class ProductKeys:
    """The ten keys of one product, in the order every script receives them (see lua/_prelude.lua)."""

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
        ]


PRODUCTS_KEY = "fs:products"
"""The set of known product ids. It lives outside any product's slot and no script touches it."""


def check_product_id(product_id: int) -> int:
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise InvalidId(repr(product_id), "product")
    if not 1 <= product_id <= MAX_PRODUCT_ID:
        raise InvalidId(str(product_id), "product")
    return product_id


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
    )


@dataclass(frozen=True, slots=True)
class ParsedId:
    kind: Kind
    product_id: int
    ulid: str

    def __str__(self) -> str:
        return format_id(self.kind, self.product_id, self.ulid)


def format_id(kind: Kind, product_id: int, ulid: str) -> str:
    return f"{_PREFIX[kind]}{product_id}_{ulid}"


class _RandomBits(threading.local):
    """80-bit numbers from os.urandom, read 4 KiB at a time: one system call per 400 ids, not one per id.

    Per thread, and dropped in a forked child, so that no two ids ever share their random bits.
    """

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def next80(self) -> int:
        if self.at + 10 > len(self.pool):
            self.pool, self.at = os.urandom(4000), 0
        self.at += 10
        return int.from_bytes(self.pool[self.at - 10 : self.at], "big")


_random = _RandomBits()


def _forget_random_bits() -> None:
    global _random
    _random = _RandomBits()


os.register_at_fork(after_in_child=_forget_random_bits)


def new_ulid() -> str:
    """A ULID: 48 bits of milliseconds and 80 random bits (os.urandom: ids must not be guessable), in Crockford base32.

    python-ulid's ``str(ULID())`` gives the same text. This spells 10 bits per table lookup and the time once per
    millisecond, three times faster: a hold is made per request.
    """
    global _time_prefix
    ms = time.time_ns() // 1_000_000
    cached = _time_prefix
    if cached[0] != ms:
        p = _PAIRS
        cached = _time_prefix = (
            ms,
            p[ms >> 40 & 1023] + p[ms >> 30 & 1023] + p[ms >> 20 & 1023] + p[ms >> 10 & 1023] + p[ms & 1023],
        )
    r = _random.next80()
    p = _PAIRS
    return (
        cached[1]
        + p[r >> 70]
        + p[r >> 60 & 1023]
        + p[r >> 50 & 1023]
        + p[r >> 40 & 1023]
        + p[r >> 30 & 1023]
        + p[r >> 20 & 1023]
        + p[r >> 10 & 1023]
        + p[r & 1023]
    )


def new_id(kind: Kind, product_id: int) -> str:
    check_product_id(product_id)
    return format_id(kind, product_id, new_ulid())


def parse_id(value: object, kind: Kind) -> ParsedId:
    """Parse a hold or order id; raise InvalidId for anything else, including the other kind."""
    if not isinstance(value, str) or len(value) > 48:
        raise InvalidId(str(value)[:64], kind)
    match = _ID_RE.fullmatch(value)
    if match is None or match.group(1) != _PREFIX[kind]:
        raise InvalidId(value, kind)
    return ParsedId(kind, int(match.group(2)), match.group(3))


def is_ulid(value: str) -> bool:
    return _ULID_RE.fullmatch(value) is not None
