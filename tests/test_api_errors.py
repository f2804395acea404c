"""The API's error mapping is total: every engine and persistence error class answers a problem, never a 500."""

from __future__ import annotations

import inspect

import pytest

from api.errors import ENGINE_STATUS, PERSISTENCE_STATUS
from engine import exceptions as engine_errors
from persistence import exceptions as persistence_errors


def _codes(module: object, base: type[Exception]) -> set[str]:
    """The codes of the concrete error classes a module defines (a class that keeps its base's code is a base)."""
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, base) and c is not base]
    return {c.code for c in classes if c.code != base.code}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("module", "base", "mapping"),
    [
        (engine_errors, engine_errors.EngineError, ENGINE_STATUS),
        (persistence_errors, persistence_errors.PersistenceError, PERSISTENCE_STATUS),
    ],
)
def test_every_error_class_has_an_http_status(module: object, base: type[Exception], mapping: dict[str, int]) -> None:
    codes = _codes(module, base)

    assert codes, "no error classes found"
    assert codes <= set(mapping), f"unmapped: {sorted(codes - set(mapping))}"
    assert all(400 <= mapping[code] < 600 and mapping[code] != 500 for code in codes)
