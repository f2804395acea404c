"""The synchronous engine: every operation of engine.operations, sent over a redis-py ``Redis`` or ``RedisCluster``
and answered when it returns."""

from __future__ import annotations

from typing import Any, TypeVar

from engine.calls import Call
from engine.commands import Command
from engine.exceptions import unavailable_as_engine_error
from engine.operations import Steps, SyncOperations
from engine.replication import Acknowledger

T = TypeVar("T")


class Engine(SyncOperations):
    def __init__(self, redis: Any, **settings: Any) -> None:
        super().__init__(redis, **settings)
        self._acker = Acknowledger(redis, self.ack) if self.ack is not None else None

    def _run(self, call: Call[T]) -> T:
        with unavailable_as_engine_error():
            reply = self._script_reply(call)
        return call.decode(reply)

    def _command(self, command: Command[T]) -> T:
        with unavailable_as_engine_error():
            reply = self._command_reply(command)
        return command.decode(reply)

    def _steps(self, steps: Steps[T]) -> T:
        return steps.answer([self._execute(step) for step in steps.steps])
