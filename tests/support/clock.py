"""Clocks the tests move by hand: fakeredis's server clock (TIME, also inside Lua scripts), and the API rate
limiter's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import fakeredis
import pytest
from fakeredis.commands_mixins import server_mixin

import api.ratelimit
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


class FrozenClock:
    """Stands in for the ``time`` module inside api.ratelimit: a window ends only when the test moves ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def freeze_rate_limit_clock(monkeypatch: pytest.MonkeyPatch, now: float = 2_000_000_000.25) -> FrozenClock:
    """The rate limiter's windows on a clock the test moves; a window's counter in Redis then lives as long as
    the test, not 2 s of a busy machine's real time."""
    frozen = FrozenClock(now)
    monkeypatch.setattr(api.ratelimit, "time", frozen)
    monkeypatch.setattr(api.ratelimit, "WINDOW_TTL_SECONDS", 3600)
    return frozen
