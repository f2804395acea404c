"""The durable record in PostgreSQL (or SQLite): catalog, orders, payments, refunds, migrations."""
