"""api.protocol: uvicorn sends a response's head with its body in one write, and never holds a head back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from api.protocol import CoalescingHttpToolsProtocol, _HeadHeld
from tests.support.servers import free_port


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def held(recorder: Recorder) -> _HeadHeld:
    return _HeadHeld(cast(asyncio.Transport, recorder))


def test_a_head_and_its_body_go_out_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        recorder = Recorder()
        transport = held(recorder)
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        transport.write(b"more")
        await asyncio.sleep(0)
        return recorder.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


def test_a_head_without_a_body_behind_it_goes_out_after_one_turn_of_the_loop() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        recorder = Recorder()
        held(recorder).write(b"HTTP/1.1 200 OK\r\n\r\n")
        before = list(recorder.writes)
        await asyncio.sleep(0)
        return before, recorder.writes

    assert asyncio.run(scenario()) == ([], [b"HTTP/1.1 200 OK\r\n\r\n"])


def test_closing_sends_a_held_head_first_and_a_closed_connection_gets_nothing() -> None:
    async def scenario() -> tuple[Recorder, Recorder]:
        closing, lost = Recorder(), Recorder()
        transport = held(closing)
        transport.write(b"head")
        transport.close()
        held(lost).write(b"head")
        lost.closed = True
        await asyncio.sleep(0)
        return closing, lost

    closing, lost = asyncio.run(scenario())
    assert (closing.writes, closing.closed) == ([b"head"], True)
    assert lost.writes == []


async def _exchange(port: int, request: bytes, until: Callable[[bytes], bool]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received = b""
    while not until(received):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    writer.close()
    return received


def _serve(app: Any, test: Callable[[int, asyncio.Event], Awaitable[None]], first_event: asyncio.Event) -> None:
    async def scenario() -> None:
        port = free_port()
        config = uvicorn.Config(
            app, port=port, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning", loop="asyncio"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn's Server only has this flag
            await asyncio.sleep(0.01)
        try:
            await test(port, first_event)
        finally:
            server.should_exit = True
            await task

    asyncio.run(scenario())


def _app(first_event: asyncio.Event) -> Starlette:
    async def plain(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        await first_event.wait()
        yield b"data: 1\n\n"

    async def stream(request: Request) -> Response:
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/plain", plain, methods=["GET"]), Route("/stream", stream)])


def test_any_other_use_of_the_transport_sends_the_held_head_first() -> None:
    async def scenario() -> list[bytes]:
        recorder = Recorder()
        recorder.writelines = lambda lines: recorder.writes.extend(lines)  # type: ignore[attr-defined]
        transport = held(recorder)
        transport.write(b"head")
        transport.writelines([b"body"])  # type: ignore[attr-defined]
        return recorder.writes

    assert asyncio.run(scenario()) == [b"head", b"body"]


def test_uvicorn_answers_requests_in_turn_on_one_connection_and_head_requests_too() -> None:
    async def test(port: int, first_event: asyncio.Event) -> None:
        get = b"GET /plain HTTP/1.1\r\nhost: t\r\n\r\n"
        head = b"HEAD /plain HTTP/1.1\r\nhost: t\r\n\r\n"
        received = await _exchange(port, get + get + head, lambda r: r.count(b"HTTP/1.1 200 OK") == 3)
        assert received.count(b'{"ok":true}') == 2
        assert received.endswith(b"content-type: application/json\r\n\r\n")

    first_event = asyncio.Event()
    _serve(_app(first_event), test, first_event)


def test_a_stream_sends_its_head_before_its_first_event() -> None:
    async def test(port: int, first_event: asyncio.Event) -> None:
        request = b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n"
        head = await _exchange(port, request, lambda r: r.endswith(b"\r\n\r\n"))
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"text/event-stream" in head
        first_event.set()

    first_event = asyncio.Event()
    _serve(_app(first_event), test, first_event)
