"""The constant load's own client (bench/steady.py): every request is answered, failed or timed
out, never lost, whatever the server does with its connection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest

from bench import steady

pytestmark = pytest.mark.asyncio


async def _run(port: int, rate: int, seconds: int, connections: int = 64) -> steady.SteadyResult:
    try:
        return await steady.run(
            f"http://127.0.0.1:{port}/v1/contacts", "k", ['{"x": "'], "p-", rate, seconds, connections
        )
    finally:
        gc.unfreeze()  # steady.run freezes what the process holds and pauses the collector, for the
        gc.enable()  # generator's own sake: not for the rest of the suite


async def _serve(answer: Callable[[int, int], bool | None]) -> tuple[asyncio.Server, int]:
    """A server that reads each request and answers it 201 when `answer(connection number, request
    number)` (both counted from 1, the requests across all connections) says so; when it says no,
    it goes on reading (never answering) or, if it returns None, closes the connection."""
    connections = requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, requests
        connections += 1
        mine = connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                requests += 1
                verdict = answer(mine, requests)
                if verdict is None:
                    break
                if verdict:
                    writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_request_the_server_drops_fails_and_the_others_go_on_new_connections():
    """Every third request's connection is closed unanswered: those fail, the rest are answered,
    and no request is counted twice or left out, with one connection allowed at a time."""
    server, port = await _serve(lambda _, n: None if n % 3 == 0 else True)
    try:
        result = await _run(port, rate=30, seconds=1, connections=1)
    finally:
        server.close()
    assert result.offered == 30 and len(result.latencies_ms) == 30
    assert result.failed == 10 and len(result.created) + result.repeated == 20


async def test_a_request_never_answered_times_out_and_its_connection_is_not_reused(monkeypatch):
    """A request the server reads and never answers fails after the client's time-out; the rest,
    on other connections, are answered."""
    monkeypatch.setattr(steady._Sender, "TIMEOUT", 0.5)
    server, port = await _serve(lambda connection, _: connection != 1)  # the first one never answers
    try:
        result = await _run(port, rate=10, seconds=1, connections=2)
    finally:
        server.close()
    assert result.offered == 10 and len(result.latencies_ms) == 10
    assert result.failed == 1 and len(result.created) == 9
    assert max(result.latencies_ms) >= 500


async def test_nothing_listening_fails_every_request_and_the_run_ends():
    server, port = await _serve(lambda _, __: True)
    server.close()
    await server.wait_closed()
    result = await _run(port, rate=20, seconds=1, connections=4)
    assert result.offered == 20 and result.failed == 20 and not result.created


async def test_each_request_says_how_late_the_generator_sent_it():
    """The generator's own lateness is kept per request (and per late request, beside `late`), so
    that the report can tell a request the generator fired late from one the server answered late.
    One connection, answered 120 ms after each request, at 20 a second: each request waits for the
    one before, so the latencies grow to a second, and none of that is the generator's."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                await asyncio.sleep(0.12)
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    try:
        result = await _run(server.sockets[0].getsockname()[1], rate=20, seconds=1, connections=1)
    finally:
        server.close()
    assert len(result.lags_ms) == len(result.latencies_ms) == 20 and len(result.late_lags_ms) == len(result.late)
    assert max(result.latencies_ms) > 500 and max(result.lags_ms) < 200
    assert all(lag <= ms for lag, (_, ms) in zip(result.late_lags_ms, result.late, strict=True))
