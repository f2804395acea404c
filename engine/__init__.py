"""flashsale's stock engine: atomic Lua scripts in Redis, with sync and asyncio clients."""

from engine.aio import AsyncEngine
from engine.client import Engine
from engine.exceptions import EngineError
from engine.ids import new_id, parse_id
from engine.keys import product_keys

__all__ = ["AsyncEngine", "Engine", "EngineError", "new_id", "parse_id", "product_keys"]
