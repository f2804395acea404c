"""flashsale's HTTP API: a Starlette application over the stock engine."""
