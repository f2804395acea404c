"""The OpenAPI document states exactly what the API takes: its patterns and the validation agree on every
string, and the event stream's events are described the way an EventSource reads them."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from api.openapi import SCHEMAS
from api.times import parse_sale_bound
from api.validation import Fields
from engine.product_rules import MAX_NAME
from tests.support.api import conformance, server_sent_events


def _validator(schema: dict[str, Any]) -> Any:
    """The validator schemathesis holds an OpenAPI 3.0 document's bodies to (JSON Schema draft 4, formats on)."""
    return jsonschema_rs.Draft4Validator(schema, validate_formats=True)


SALE_BOUND = _validator(SCHEMAS["ProductSpec"]["properties"]["sale_ends_at"])
NAME = _validator(SCHEMAS["ProductSpec"]["properties"]["name"])

NEAR_MISS_BOUNDS = st.from_regex(
    r"\A[0-3][0-9]{3}-[01][0-9]-[0-3][0-9][Tt _][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{0,11})?"
    r"([Zz]|[+-][0-2][0-9]:[0-6][0-9])?\Z",
)
"""Strings shaped like date-times, most of them a little wrong: a year before 2000 or after 2999, a space for
the T, second 60, a day or an offset out of range, ten digits of fraction, no zone."""
WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
WHITE_SPACE += "\u2028\u2029\u202f\u205f\u3000"
NAMES = st.text(st.sampled_from([*WHITE_SPACE, "\ufeff", "\u200b", "\u180e", "\x1c", "\x00", "\x9f", "a", "é"]))
"""Names made of every kind of white space and of the look-alikes the regular expression dialects disagree on."""


def _api_takes_bound(text: str) -> bool:
    try:
        parse_sale_bound(text)
    except ValueError:
        return False
    return True


def _api_takes_name(text: str) -> bool:
    fields = Fields({"name": text})
    fields.name("name", MAX_NAME)
    return not fields.errors


@given(NEAR_MISS_BOUNDS)
@example("2026-01-01 00:00:00Z")
@example("2026-12-31T23:59:60Z")
@example("2026-01-01T00:59:60+01:00")
@example("2026-01-01T00:00:00.1234567891Z")
@example("2999-12-31T23:59:59-23:59")
@example("1999-12-31T23:59:59Z")
@example("2024-02-29T00:00:00Z")
@example("2026-02-29T00:00:00Z")
def test_the_document_and_the_admin_api_agree_on_every_sale_bound(text: str) -> None:
    assert SALE_BOUND.is_valid(text) == _api_takes_bound(text), text


def test_sale_bounds_may_be_null() -> None:
    assert SCHEMAS["ProductSpec"]["properties"]["sale_starts_at"]["nullable"] is True
    assert "sale_starts_at" not in SCHEMAS["ProductSpec"]["required"]


@given(NAMES)
@example("\ufeff")
@example("\u3000")
@example(" \u200b ")
def test_the_document_and_the_admin_api_agree_on_every_name(text: str) -> None:
    assert NAME.is_valid(text) == _api_takes_name(text), repr(text)


def test_server_sent_events_are_read_as_an_event_source_reads_them() -> None:
    body = b"retry: 1000\n\nevent: stats\nid: 4\ndata: {}\n\n: a comment\nevent: reconnect\ndata: {}\n\ndata: x\n\n"

    events = server_sent_events(body)

    assert events == [
        {"event": "stats", "data": "{}", "id": "4"},
        {"event": "reconnect", "data": "{}", "id": "4"},  # an event without an id keeps the last one
        {"event": "message", "data": "x", "id": "4"},
    ]


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (b"event: stats\ndata: {}\n\n", "'id' missing"),
        (b'event: stats\nid: 1\ndata: {"version": 1}\n\n', "'at' missing"),
        (b"event: hello\ndata: {}\n\n", "matches 0 of 3 oneOf options"),
        (b'event: reconnect\ndata: {"x": 1}\n\n', "not in ['{}']"),
        (b'event: problem\ndata: {"code": "sold_out", "detail": ""}\n\n', "not in ['engine_unavailable']"),
    ],
)
def test_an_event_the_document_does_not_describe_is_caught(body: bytes, fault: str) -> None:
    with pytest.raises(AssertionError) as caught:
        conformance().check("GET", "/api/admin/stream", 200, "text/event-stream; charset=utf-8", body)
    assert fault in str(caught.value)
