"""Errors of reconciliation's repairs. Each carries its data and a stable ``code`` that the API maps to HTTP."""

from __future__ import annotations


class ReconciliationError(Exception):
    code = "reconciliation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotInCatalog(ReconciliationError):
    """A rebuild was asked for a product PostgreSQL does not know: there is nothing to rebuild it from."""

    code = "product_not_in_catalog"

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} is not in the catalog: nothing to rebuild it from")
        self.product_id = product_id


class RebuildUnsettled(ReconciliationError):
    """Events kept arriving during every attempt, so no snapshot of PostgreSQL could be restored."""

    code = "rebuild_unsettled"

    def __init__(self, product_id: int, attempts: int) -> None:
        super().__init__(
            f"product {product_id} kept changing: events were written during each of {attempts} rebuild attempts, "
            "so no snapshot of the database could be restored; stop its sale (or wait for it to settle) and "
            "rebuild again"
        )
        self.product_id = product_id
        self.attempts = attempts
