"""Reconciliation: does the engine (Redis) agree with the durable record (PostgreSQL), and the repairs if not."""
