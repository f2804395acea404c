"""flashsale.stack.readiness: free ports, and waiting for a server to answer, stop waiting when it died or never did."""

from __future__ import annotations

import itertools
import socket

from flashsale.stack.readiness import free_port, port_free, wait_until


def test_a_free_port_can_be_bound_and_a_bound_one_is_not_free() -> None:
    port = free_port()

    assert port_free("127.0.0.1", port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert not port_free("127.0.0.1", port)


def test_waiting_ends_ready_once_the_check_passes() -> None:
    asked = itertools.count(1)

    assert wait_until(lambda: next(asked) == 3, within=30, poll=0.001) == "ready"
    assert next(asked) == 4  # asked three times, not more


def test_waiting_stops_when_the_server_has_exited_though_it_never_answered() -> None:
    assert wait_until(lambda: False, within=30, poll=0.001, exited=lambda: True) == "exited"


def test_waiting_gives_up_when_the_server_never_answers() -> None:
    assert wait_until(lambda: False, within=0.05, poll=0.01) == "timed_out"
