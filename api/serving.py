"""How uvicorn serves the API: ``flashsale serve`` runs it so, and bench/baselines serves its comparison app alike."""

from __future__ import annotations

from typing import Any

UVICORN_OPTIONS: dict[str, Any] = {
    "http": "api.protocol:CoalescingHttpToolsProtocol",  # httptools, one write per response
    "log_level": "info",
    "server_header": False,
    "proxy_headers": True,
    "timeout_graceful_shutdown": 10,
}
