"""The API's error mapping is total: every error class of every package answers its own problem, never a 500, or
is one no request can meet, named below with the reason."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

from api.errors import ERROR_STATUS, EXCEPTION_HANDLERS, status_of
from engine.exceptions import EngineError, EventUnreadable, ProductRuleError
from persistence.exceptions import PersistenceError
from reconciliation.exceptions import ReconciliationError
from shared.settings import ConfigError
from shared.vardir import AlreadyRunning
from workers.drain import DrainFailed

SERVED = ("shared", "engine", "persistence", "workers", "reconciliation", "api")
"""The packages the API stands on (import-linter's layers contract keeps the operator's tools, flashsale and bench,
out of its reach: their errors never meet a request)."""
SKIPPED = ("persistence.migrations",)
"""Alembic's scripts run only inside Alembic."""
MAPPED_BASES = (EngineError, PersistenceError, ReconciliationError)
"""The bases whose every subclass answers through ERROR_STATUS."""
NEVER_IN_A_REQUEST: dict[type[BaseException], str] = {
    ConfigError: "the settings are read once, when a process starts; a bad variable stops it before it serves",
    AlreadyRunning: "the run lock of `flashsale up`",
    DrainFailed: "the drain's, which the API never loads (import-linter's api-reads-only contract)",
    ProductRuleError: "the admin route checks every product rule into its 422 before it puts the product",
    EventUnreadable: "the outbox's readers raise it inside the drain's write, which reports it as MalformedEvent",
}


def _modules() -> list[ModuleType]:
    modules = []
    for name in SERVED:
        package = importlib.import_module(name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if not info.name.startswith(SKIPPED):
                modules.append(importlib.import_module(info.name))
    return modules


def _error_classes() -> set[type[BaseException]]:
    """Every exception class defined in the packages the API stands on."""
    return {
        cls
        for module in _modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }


def _name(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ERRORS = sorted(_error_classes(), key=_name)


def _raised(cls: type[BaseException]) -> bool:
    """A class no other error derives from: the kind that is raised (EngineError and HoldError are bases)."""
    return not any(other is not cls and issubclass(other, cls) for other in ERRORS)


@pytest.mark.parametrize("error", [e for e in ERRORS if issubclass(e, MAPPED_BASES) and _raised(e)], ids=_name)
def test_every_coded_error_answers_its_own_status(error: type[Exception]) -> None:
    instance = error.__new__(error)  # no constructor arguments needed: the status depends on the class alone

    status = status_of(instance)

    assert status is not None, f"{_name(error)} has no status in api.errors.ERROR_STATUS"
    assert 400 <= status < 600
    assert status != 500


@pytest.mark.parametrize("error", ERRORS, ids=_name)
def test_every_error_class_is_answered_or_never_meets_a_request(error: type[BaseException]) -> None:
    handled = [base for base in EXCEPTION_HANDLERS if isinstance(base, type) and issubclass(error, base)]

    assert handled or error in NEVER_IN_A_REQUEST, (
        f"{_name(error)} would answer 500: derive it from its layer's error base "
        "(with a status in api.errors.ERROR_STATUS), or name it in NEVER_IN_A_REQUEST with the reason"
    )


def test_the_mapping_names_only_classes_that_exist_and_a_status_for_each() -> None:
    assert set(ERROR_STATUS) <= set(ERRORS)
    assert all(400 <= status < 600 and status != 500 for status in ERROR_STATUS.values())
