"""Hold and order ids, and the bounds of a product id.

An id names its product, so the engine finds the product's hash slot from the id alone:
``h42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2`` is hold ``01JD0Z…`` of product 42, ``o42_…`` an order.
Ids are parsed, never trusted: anything that does not match exactly is refused before a key is built.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Literal

from engine.exceptions import InvalidId

Kind = Literal["hold", "order"]

MAX_PRODUCT_ID = 10**15 - 1
_PREFIX: dict[Kind, str] = {"hold": "h", "order": "o"}
_ID_RE = re.compile(r"([ho])([1-9][0-9]{0,14})_([0-9A-HJKMNP-TV-Z]{26})")
_ULID_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def check_product_id(product_id: int) -> int:
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise InvalidId(repr(product_id), "product")
    if not 1 <= product_id <= MAX_PRODUCT_ID:
        raise InvalidId(str(product_id), "product")
    return product_id


@dataclass(frozen=True, slots=True)
class ParsedId:
    kind: Kind
    product_id: int
    ulid: str

    def __str__(self) -> str:
        return format_id(self.kind, self.product_id, self.ulid)


def format_id(kind: Kind, product_id: int, ulid: str) -> str:
    return f"{_PREFIX[kind]}{product_id}_{ulid}"


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # the 1024 spellings of 10 bits
_SHIFTS = range(120, -1, -10)


_RANDOM_BATCH = 1024
"""ULIDs' worth of randomness read from the OS at once: one system call per 1,024 ids, not per id."""
_random: list[int] = []


def _forget_random() -> None:
    _random.clear()  # a forked child must never hand out its parent's ids


os.register_at_fork(after_in_child=_forget_random)


def new_ulid() -> str:
    """A ULID: 48 bits of milliseconds and 80 random bits (os.urandom: ids must not be guessable), in Crockford base32.

    python-ulid's ``str(ULID())`` gives the same text; this is twice as fast, and a hold is made per request.
    """
    if not _random:
        chunk = os.urandom(10 * _RANDOM_BATCH)
        _random.extend(int.from_bytes(chunk[i : i + 10], "big") for i in range(0, len(chunk), 10))
    value = (time.time_ns() // 1_000_000) << 80 | _random.pop()
    # 26 characters spell 130 bits, two at a time: faster than base64's base32, which is pure Python.
    return "".join([_PAIRS[value >> shift & 1023] for shift in _SHIFTS])


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
