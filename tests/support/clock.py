"""A server clock the tests move by hand: fakeredis answers TIME (also inside Lua scripts) from it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import fakeredis
from fakeredis.commands_mixins import server_mixin

from engine import Engine

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class FakeClock:
    def __init__(self, start_ms: int = START_MS) -> None:
        self.ms = start_ms

    def time(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


@contextmanager
def fake_server_time(clock: FakeClock) -> Iterator[FakeClock]:
    """While active, every fakeredis server reads TIME from ``clock``."""
    with mock.patch.object(server_mixin, "time", clock):
        yield clock


@contextmanager
def clocked_engine(**settings: int) -> Iterator[tuple[Engine, FakeClock]]:
    """An engine on a private fakeredis server whose clock the test moves."""
    with fake_server_time(FakeClock()) as clock:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        try:
            yield Engine(client, **settings), clock
        finally:
            client.close()
