"""Each body is declared once (api/bodies.py): msgspec's check of a body and the field-by-field reading that words
its faults agree on every body, so a body's answer never depends on which of the two read it; and the document
built from the declarations is OpenAPI 3.0, naming every declared body and answer."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api import bodies
from api.errors import ApiError
from api.openapi import SCHEMAS, document
from api.routes.admin import _window
from api.validation import Also, Fields, decode, parse_object
from engine.calls import MAX_CUSTOMER_ID, MAX_IDEMPOTENCY_KEY, MAX_TRANSACTION_ID
from engine.ids import MAX_PRODUCT_ID
from engine.product_rules import MAX_NAME, MAX_PER_CUSTOMER, MAX_PRICE_CENTS, MAX_QUANTITY, MAX_STOCK

HOLD = "h42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2"
ORDER = "o42_01JD0Z3N5W8YQ2T4V6X8Z0A1B3"


def _integers(high: int) -> st.SearchStrategy[Any]:
    near = st.sampled_from([-1, 0, 1, 2, high - 1, high, high + 1, 2**63, 2**64, -(2**63) - 1])
    return st.one_of(near, st.integers(), st.sampled_from([True, False, 1.0, 1.5, "1", None, [1], {"a": 1}]))


def _texts(max_length: int) -> st.SearchStrategy[Any]:
    characters = st.sampled_from(
        ["a", "é", " ", "\u3000", "\n", "\x00", "\x1f", "\x7f", "\x9f", "|", "\ud800", "\ufeff"]
    )
    near = st.lists(characters, max_size=6).map("".join)
    edge = st.sampled_from(["", "a\n", "\na", "a" * max_length, "a" * (max_length + 1), "é" * (max_length + 1), "  "])
    return st.one_of(near, edge, st.text(max_size=8), st.sampled_from([None, 1, True, ["a"], {"a": "b"}]))


def _ids(valid: str, other: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(
            [valid, other, valid + "\n", valid.lower(), valid[:-1], valid + "0", valid[0] + "0" + valid[2:]]
        ),
        st.sampled_from([valid.replace("42", "1" * 15), valid.replace("42", "1" * 16), "", None, 42]),
        st.from_regex(r"\A[ho][0-9]{1,3}_[0-9A-Za-z]{25,27}\n?\Z"),
    )


def _bounds() -> st.SearchStrategy[Any]:
    near_miss = st.from_regex(
        r"\A[0-3][0-9]{3}-[01][0-9]-[0-3][0-9][Tt _][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{0,11})?"
        r"([Zz]|[+-][0-2][0-9]:[0-6][0-9])?\n?\Z"
    )
    return st.one_of(near_miss, st.sampled_from([None, 0, "", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00Z\n"]))


def _bodies(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies with any subset of the declared fields, near-miss values, and sometimes a field nobody declared."""
    extra = st.dictionaries(st.sampled_from(["pad", "x", "\ud800", "name "]), st.sampled_from([1, "a", None, "\ud800"]))
    return st.tuples(st.fixed_dictionaries({}, optional=fields), extra).map(lambda t: {**t[0], **t[1]})


BODIES: dict[type[msgspec.Struct], st.SearchStrategy[dict[str, Any]]] = {
    bodies.HoldRequest: _bodies(
        {
            "product_id": _integers(MAX_PRODUCT_ID),
            "quantity": _integers(MAX_QUANTITY),
            "customer_id": _texts(MAX_CUSTOMER_ID),
        }
    ),
    bodies.OrderRequest: _bodies({"hold_id": _ids(HOLD, ORDER)}),
    bodies.WebhookRequest: _bodies(
        {
            "order_id": _ids(ORDER, HOLD),
            "transaction_id": _texts(MAX_TRANSACTION_ID),
            "status": st.sampled_from(["success", "failed", "refunded", "paid", "", None, 1, "SUCCESS"]),
        }
    ),
    bodies.ProductSpec: _bodies(
        {
            "name": _texts(MAX_NAME),
            "price_cents": _integers(MAX_PRICE_CENTS),
            "stock": _integers(MAX_STOCK),
            "max_per_customer": _integers(MAX_PER_CUSTOMER),
            "sale_starts_at": _bounds(),
            "sale_ends_at": _bounds(),
        }
    ),
    bodies.DemoPaymentRequest: _bodies(
        {"order_id": _ids(ORDER, HOLD), "status": st.sampled_from(["success", "failed", "x", None])}
    ),
}
ALSO: dict[type[msgspec.Struct], Also] = {bodies.ProductSpec: _window}
KEYS = st.one_of(st.none(), _texts(MAX_IDEMPOTENCY_KEY).filter(lambda k: isinstance(k, str)))


def _answer(call: Any) -> tuple[str, Any]:
    """What the API answers: the body's values, or the problem's code and every field at fault."""
    try:
        value = call()
    except ApiError as error:
        return error.code, error.extra.get("errors")
    return "ok", msgspec.structs.asdict(value)


def _read_field_by_field(raw: bytes, kind: type[msgspec.Struct], key: str | None, also: Also | None) -> msgspec.Struct:
    """The body read only the slow way: parsed by orjson (or the standard parser), each field worded."""
    fields = Fields(parse_object(raw))
    values = fields.explain(kind)
    if also is not None:
        also(fields, values)
    if kind in (bodies.HoldRequest, bodies.OrderRequest):
        fields.header("Idempotency-Key", key, MAX_IDEMPOTENCY_KEY)
    fields.check(closed=kind.__struct_config__.forbid_unknown_fields)
    return msgspec.convert(fields.body, kind)


@pytest.mark.parametrize("kind", list(BODIES), ids=lambda kind: kind.__name__)
def test_msgspec_and_the_field_by_field_reading_answer_every_body_alike(kind: type[msgspec.Struct]) -> None:
    also = ALSO.get(kind)
    headers = kind in (bodies.HoldRequest, bodies.OrderRequest)

    @given(body=BODIES[kind], key=KEYS)
    @settings(max_examples=400, deadline=None, database=None)
    @example(body={"product_id": 1, "quantity": 1, "customer_id": "a\n"}, key=None)
    @example(body={"hold_id": HOLD + "\n"}, key=None)
    @example(body={"order_id": ORDER, "transaction_id": "t|1", "status": "success", "extra": "\ud800"}, key=None)
    @example(body={"name": " \u3000 ", "price_cents": 1, "stock": 1}, key=None)
    @example(body={"name": "n", "price_cents": 1, "stock": 1, "sale_ends_at": "2026-02-30T00:00:00Z"}, key=None)
    def agree(body: dict[str, Any], key: str | None) -> None:
        raw = json.dumps(body).encode()  # ASCII with \u escapes: lone surrogates reach the API as JSON allows
        checked = (("Idempotency-Key", key, bodies.IdempotencyKey),) if headers else ()
        fast = _answer(lambda: decode(raw, kind, headers=checked, also=also))
        slow = _answer(lambda: _read_field_by_field(raw, kind, key, also))
        assert fast == slow, body

    agree()


def test_a_webhook_with_bytes_that_are_not_utf8_in_a_field_of_its_own_is_not_json() -> None:
    raw = b'{"order_id": "' + ORDER.encode() + b'", "transaction_id": "t", "status": "success", "note": "\xff"}'

    assert _answer(lambda: decode(raw, bodies.WebhookRequest)) == ("invalid_json", None)


def _schemas(node: Any, inside_properties: bool = False) -> list[dict[str, Any]]:
    """Every schema object of the document, but not the maps of properties themselves."""
    found = []
    if isinstance(node, dict):
        if not inside_properties:
            found.append(node)
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    found += _schemas(sub)
            else:
                found += _schemas(value)
    elif isinstance(node, list):
        for item in node:
            found += _schemas(item)
    return found


def test_the_document_built_from_the_declarations_is_openapi_3_0() -> None:
    parameters = [
        p["schema"] for item in document()["paths"].values() for op in item.values() for p in op.get("parameters", [])
    ]
    for schema in _schemas([*SCHEMAS.values(), *parameters]):
        assert schema.get("type") != "null", schema
        assert not {"anyOf", "examples", "title"} & set(schema), schema
        if "pattern" in schema:
            assert not schema["pattern"].endswith("\\Z"), schema  # ECMA-262 again, as the document's readers take
            re.compile(schema["pattern"])
        if "$ref" in schema:
            assert set(schema) == {"$ref"}, schema  # OpenAPI 3.0 ignores a reference's siblings


def test_every_declared_body_and_answer_is_in_the_document() -> None:
    declared = {
        value.__name__
        for value in vars(bodies).values()
        if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == bodies.__name__
    }

    assert declared <= set(SCHEMAS)
    text = json.dumps(document()["paths"]) + json.dumps(SCHEMAS)
    unreferenced = {s.__name__ for s in bodies.SCHEMAS if f'#/components/schemas/{s.__name__}"' not in text}
    assert not unreferenced


class _Flag(msgspec.Struct, forbid_unknown_fields=True):
    on: bool


class _Listed(msgspec.Struct, forbid_unknown_fields=True):
    items: list[int]


@pytest.mark.parametrize("value", [1, 0, "true", None, [True]])
def test_a_boolean_field_takes_only_true_or_false(value: Any) -> None:
    raw = json.dumps({"on": value}).encode()
    message = "is required" if value is None else "must be true or false"

    assert _answer(lambda: decode(raw, _Flag)) == ("validation_error", [{"field": "on", "message": message}])
    assert _answer(lambda: decode(b'{"on": false}', _Flag)) == ("ok", {"on": False})


def test_a_body_whose_faults_cannot_be_worded_is_refused_when_first_read() -> None:
    with pytest.raises(TypeError, match=r"_Listed\.items"):
        decode(b'{"items": [1]}', _Listed)
