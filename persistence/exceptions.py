"""Errors of the durable record. Each carries its data and a stable ``code`` that the API maps to HTTP."""

from __future__ import annotations

from engine.types import OutboxEvent


class PersistenceError(Exception):
    code = "persistence_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CatalogWriteFailed(PersistenceError):
    """The database refused or did not answer while a product was put; neither store changed."""

    code = "catalog_write_failed"

    def __init__(self, product_id: int, reason: str) -> None:
        super().__init__(
            f"product {product_id}: the catalog could not be written ({reason}); nothing was changed, "
            "put the product again"
        )
        self.product_id = product_id
        self.reason = reason


class ProductPutIncomplete(PersistenceError):
    """A put failed half-way and could not be undone: the stores may disagree until the product is put again."""

    code = "product_put_incomplete"

    def __init__(self, product_id: int, state: str) -> None:
        super().__init__(f"product {product_id}: {state}; put the product again to make both agree")
        self.product_id = product_id
        self.state = state


class MalformedEvent(PersistenceError, ValueError):
    """An outbox entry this version cannot apply; its product's drain stops there rather than lose it."""

    code = "malformed_event"

    def __init__(self, event: OutboxEvent, reason: str) -> None:
        super().__init__(f"outbox entry {event.id} of product {event.product_id} ({event.event!r}): {reason}")
        self.product_id = event.product_id
        self.entry_id = event.id
        self.reason = reason
