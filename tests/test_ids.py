"""Hold and order ids, and the keys of a product (engine/ids.py)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from redis.crc import key_slot
from ulid import ULID

from engine.exceptions import InvalidId
from engine.ids import (
    _RANDOM_BATCH,
    MAX_PRODUCT_ID,
    ParsedId,
    check_product_id,
    format_id,
    is_ulid,
    new_id,
    new_ulid,
    parse_id,
)
from engine.keys import PRODUCTS_KEY, product_keys

ULID_TEXT = "01JD0Z3N5W8YQ2T4V6X8Z0A1B2"


def test_new_ids_name_their_kind_and_product() -> None:
    hold_id = new_id("hold", 42)
    order_id = new_id("order", 42)

    assert hold_id.startswith("h42_")
    assert order_id.startswith("o42_")
    assert parse_id(hold_id, "hold") == ParsedId("hold", 42, hold_id[4:])
    assert parse_id(order_id, "order").product_id == 42
    assert ULID.from_str(hold_id[4:])  # a real ULID


def test_new_ulid_spells_now_and_its_random_bits_as_python_ulid_does() -> None:
    before = int(time.time() * 1000)
    text = new_ulid()
    after = int(time.time() * 1000)

    parsed = ULID.from_str(text)
    assert str(parsed) == text
    assert before <= parsed.milliseconds <= after
    assert is_ulid(text)


@pytest.mark.parametrize("random", [bytes(10), b"\xff" * 10, bytes(range(10))])
@pytest.mark.parametrize("ms", [0, 1_764_300_000_123, 2**48 - 1])
def test_new_ulid_spells_every_bit_as_python_ulid_does(monkeypatch: pytest.MonkeyPatch, random: bytes, ms: int) -> None:
    monkeypatch.setattr("engine.ids._random", [])
    monkeypatch.setattr("engine.ids.os.urandom", lambda n: random * (n // 10))
    monkeypatch.setattr("engine.ids.time.time_ns", lambda: ms * 1_000_000 + 999_999)

    assert new_ulid() == str(ULID.from_bytes(ms.to_bytes(6, "big") + random))


def test_new_ids_are_unique() -> None:
    assert len({new_id("hold", 1) for _ in range(1_000)}) == 1_000


def test_new_ulid_asks_the_os_for_randomness_once_per_thousand_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        return os.getrandom(n)

    monkeypatch.setattr("engine.ids._random", [])
    monkeypatch.setattr("engine.ids.os.urandom", urandom)

    ulids = {new_ulid() for _ in range(2 * _RANDOM_BATCH)}

    assert len(ulids) == 2 * _RANDOM_BATCH
    assert calls == [10 * _RANDOM_BATCH] * 2


def test_a_forked_process_never_hands_out_its_parents_ids() -> None:
    new_ulid()  # the parent has randomness left in its buffer
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, " ".join(new_ulid()[10:] for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    childs = set(os.read(read, 4096).decode().split())
    os.close(read)

    parents = {new_ulid()[10:] for _ in range(5)}

    assert len(childs) == 5
    assert not childs & parents


def test_a_parsed_id_formats_back_to_itself() -> None:
    value = format_id("order", MAX_PRODUCT_ID, ULID_TEXT)

    assert str(parse_id(value, "order")) == value
    assert len(value) <= 48


@pytest.mark.parametrize(
    "value",
    [
        "",
        "h1_",
        f"h1_{ULID_TEXT[:-1]}",
        f"h1_{ULID_TEXT}Z",
        f"h0_{ULID_TEXT}",
        f"h007_{ULID_TEXT}",
        f"h{MAX_PRODUCT_ID + 1}_{ULID_TEXT}",
        f"h1_{ULID_TEXT.lower()}",
        f"h1_{ULID_TEXT[:-1]}I",  # I, L, O and U are not Crockford base32
        f"h1_{ULID_TEXT}\n",
        f"h1-{ULID_TEXT}",
        f"h{{1}}_{ULID_TEXT}",
        f"h\u0661_{ULID_TEXT}",  # an Arabic-Indic digit one
        f"o1_{ULID_TEXT}",
        "h1_" + "0" * 100,
    ],
)
def test_parse_id_refuses_anything_but_an_exact_hold_id(value: str) -> None:
    with pytest.raises(InvalidId) as refused:
        parse_id(value, "hold")

    assert refused.value.code == "invalid_id"
    assert refused.value.kind == "hold"
    assert len(refused.value.value) <= 64


@pytest.mark.parametrize("value", [None, 1, b"h1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2", ["h1"]])
def test_parse_id_refuses_non_strings(value: Any) -> None:
    with pytest.raises(InvalidId):
        parse_id(value, "hold")


def test_invalid_id_is_a_value_error() -> None:
    assert issubclass(InvalidId, ValueError)


@pytest.mark.parametrize("product_id", [0, -5, MAX_PRODUCT_ID + 1, True, 1.0, "7", None])
def test_product_ids_must_be_positive_integers(product_id: Any) -> None:
    with pytest.raises(InvalidId):
        check_product_id(product_id)
    with pytest.raises(InvalidId):
        product_keys(product_id)
    with pytest.raises(InvalidId):
        new_id("hold", product_id)


def test_product_keys_share_the_product_hash_tag() -> None:
    keys = product_keys(7)

    assert keys.all() == [
        "fs:{7}:product",
        "fs:{7}:holds",
        "fs:{7}:hold_exp",
        "fs:{7}:orders",
        "fs:{7}:order_exp",
        "fs:{7}:txns",
        "fs:{7}:customers",
        "fs:{7}:idem",
        "fs:{7}:tombs",
        "fs:{7}:outbox",
        "fs:{7}:hold_queue",
        "fs:{7}:queue",
        "fs:{7}:queue_wait",
        "fs:{7}:queue_adm",
        "fs:{7}:queue_tab",
        "fs:{7}:queue_subs",
    ]
    assert len({key_slot(k.encode()) for k in keys.all()}) == 1
    assert product_keys(7) != product_keys(70)
    assert PRODUCTS_KEY not in keys.all()


def test_is_ulid_accepts_only_canonical_ulids() -> None:
    assert is_ulid(str(ULID()))
    assert not is_ulid(ULID_TEXT.lower())
    assert not is_ulid(ULID_TEXT + "0")
