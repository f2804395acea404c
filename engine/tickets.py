"""Waiting-room tickets and admission tokens: what a buyer holds, and the secrets Redis checks.

``q42_17_3f0c9d1e5a7b2c44`` is ticket number 17 of product 42's waiting room, with its 8-byte secret in hex;
``a42_17_…`` is the same ticket's admission token, with a second secret. The number is public (the pre-queue's
draw lists numbers); the secret makes the text a bearer credential. Texts are parsed, never trusted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from engine.exceptions import InvalidId
from engine.ids import check_product_id

TicketKind = Literal["ticket", "admission"]

SECRET_BYTES = 8
MAX_TICKET_NUMBER = 10**15 - 1
_PREFIX: dict[TicketKind, str] = {"ticket": "q", "admission": "a"}
_RE = re.compile(r"([qa])([1-9][0-9]{0,14})_([1-9][0-9]{0,14})_([0-9a-f]{16})")


@dataclass(frozen=True, slots=True)
class ParsedTicket:
    kind: TicketKind
    product_id: int
    number: int
    secret: bytes

    def __str__(self) -> str:
        return format_ticket(self.kind, self.product_id, self.number, self.secret)

    def admission_arg(self) -> bytes:
        """How the reserve scripts take an admission: the ticket number, ':', the token secret."""
        return str(self.number).encode() + b":" + self.secret


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def format_ticket(kind: TicketKind, product_id: int, number: int, secret: bytes) -> str:
    return f"{_PREFIX[kind]}{product_id}_{number}_{secret.hex()}"


def parse_ticket(value: object, kind: TicketKind = "ticket") -> ParsedTicket:
    """Parse a ticket or an admission token; InvalidId for anything else, the other kind included."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidId(str(value)[:64], kind)
    match = _RE.fullmatch(value)
    if match is None or match.group(1) != _PREFIX[kind]:
        raise InvalidId(value, kind)
    product_id, number = int(match.group(2)), int(match.group(3))
    check_product_id(product_id)
    if not 1 <= number <= MAX_TICKET_NUMBER:
        raise InvalidId(value, kind)
    return ParsedTicket(kind, product_id, number, bytes.fromhex(match.group(4)))
