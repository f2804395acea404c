"""schemathesis against /openapi.json: every operation fuzzed with valid and invalid data, a fixed seed and a
fixed number of examples; no answer may be a server error or contradict the document.

Every request carries the admin token, so the admin operations are fuzzed past their authentication; every
check is on, positive data acceptance and negative data rejection included. schemathesis's own pytest plugin
does not run under pytest 9, so each operation's hypothesis strategy is driven here with ``@given``; the checks
are schemathesis's own (``case.call_and_validate``), plus the JSON inside each server-sent event's ``data``
against the schema its ``x-contentSchema`` names.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import pytest
import redis
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth

from api.app import create_app
from api.openapi import document
from api.routes import dashboard
from api.times import parse_sale_bound
from engine import Engine
from persistence.catalog import ProductSpec, put_product
from shared.settings import Settings
from tests.faults.harness import Outcome
from tests.support.api import ADMIN, conformance

EXAMPLES = 50
"""Examples per operation and generation mode: enough to find the usual faults, bounded for CI."""
STREAM = ("GET", "/api/admin/stream")
STREAM_EXAMPLES = 3
"""The stream takes no input but the token, which every request overrides: all its examples send the same
request, and each holds the stream open for its lifetime. A few show every event a healthy engine sends."""
STREAM_SECONDS = 1.0
"""The stream's lifetime here (5 s in production): long enough for a `stats` event, then `reconnect`."""
STREAM_TIMEOUT_SECONDS = 10.0
"""A stream that did not end by itself is cut here, and what it sent is still checked."""
ADMIN_OPERATIONS = {
    (method.upper(), path)
    for path, item in document()["paths"].items()
    for method, operation in item.items()
    if {"adminToken": []} in operation.get("security", [])
}


def sale_window_in_order(case: Any) -> bool:
    """The one rule of PUT /api/admin/products/{id} that JSON Schema cannot state (its ProductSpec says it in
    words): sale_ends_at after sale_starts_at. Schema-valid bodies that break it rightly get 422, so the
    positive examples leave them out; every other schema-valid body must be accepted."""
    body = case.body
    if not isinstance(body, dict):
        return True
    starts, ends = body.get("sale_starts_at"), body.get("sale_ends_at")
    if not isinstance(starts, str) or not isinstance(ends, str):
        return True
    try:
        return parse_sale_bound(ends) > parse_sale_bound(starts)
    except ValueError:  # not a positive example after all: the checks judge it
        return True


POSITIVE_FILTERS = {("PUT", "/api/admin/products/{id}"): sale_window_in_order}


@pytest.fixture
def schema(api_settings: Settings, real_redis: redis.Redis, db: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", STREAM_SECONDS)
    engine = Engine(real_redis)
    for product_id in (1, 2, 3):
        put_product(engine, db, ProductSpec(product_id, f"fuzz {product_id}", 100, 1000, max_per_customer=5))
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))


def check_event_data(method: str, path: str, response: Any) -> None:
    """Each event of a stream against the document, with the JSON its ``data`` holds (which schemathesis
    cannot see in an OpenAPI 3.0 document: ``contentSchema`` is JSON Schema 2019-09)."""
    if not response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return
    content_type = response.headers["content-type"][0]
    conformance().check(method, path, response.status_code, content_type, response.content)


def fuzz(operation: Any, mode: GenerationMode, statuses: Counter[int]) -> None:
    """Run the examples, counting the answers' statuses."""
    key = (operation.method.upper(), operation.path)
    strategy = operation.as_strategy(generation_mode=mode)
    if mode == GenerationMode.POSITIVE and key in POSITIVE_FILTERS:
        strategy = strategy.filter(POSITIVE_FILTERS[key])
    streaming = key == STREAM
    # Buyer tokens are off here, so a buyer endpoint rightly takes a request without one; schemathesis's ignored_auth
    # check (turned on by a documented 401 or 403, such as admission_required) would call that a fault.
    unchecked = [] if key in ADMIN_OPERATIONS else [ignored_auth]
    extra = {"timeout": STREAM_TIMEOUT_SECONDS} if streaming else {}

    @given(case=strategy)
    @settings(
        max_examples=STREAM_EXAMPLES if streaming else EXAMPLES,
        derandomize=True,  # the same examples on every run: CI stays stable
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=ADMIN, excluded_checks=unchecked, **extra)
        statuses[response.status_code] += 1
        check_event_data(key[0], case.formatted_path, response)

    with contextlib.suppress(Unsatisfiable):  # an operation without parameters or body has no invalid input
        run()


@pytest.mark.slow
def test_the_api_answers_every_fuzzed_request_within_its_openapi_document(schema: Any) -> None:
    failures: list[str] = []
    answered: dict[tuple[str, str], Counter[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        statuses = answered.setdefault(key, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, statuses)
            except (Exception, FailureGroup) as error:  # every operation is fuzzed; failures are reported together
                failures.append(f"{key[0]} {key[1]} ({mode.value}): {error}")
    requests = sum(sum(statuses.values()) for statuses in answered.values())
    admin_answered = {f"{m} {p}": dict(sorted(answered.get((m, p), Counter()).items())) for m, p in ADMIN_OPERATIONS}
    outcome = Outcome(
        "fuzz_openapi",
        "schemathesis: no fuzzed request gets a server error or an answer the OpenAPI document does not allow",
        {
            "operations": len(answered),
            "examples_per_operation_and_mode": EXAMPLES,
            "requests": requests,
            "admin_statuses": dict(sorted(admin_answered.items())),
        },
        failures,
    )
    if len(answered) < 15:
        outcome.problems.append(f"only {len(answered)} operations in the document")
    for name, statuses in sorted(admin_answered.items()):
        if not any(200 <= status < 300 for status in statuses):  # the token works: the operation itself ran
            outcome.problems.append(f"{name} never answered 2xx to the admin token: {statuses}")
    outcome.figures["failures"] = len(failures)
    outcome.check()
