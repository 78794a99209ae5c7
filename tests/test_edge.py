"""The lean edge (gateway/edge.py): a plain POST /v1/contacts is answered by it exactly as aiohttp
answers it; everything else on the connection goes to aiohttp, in order, and is answered as before."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from gateway import edge as edge_module
from gateway.edge import Edge
from tests.factory import insert_unowned_key
from tests.helpers import GatewayProcess, serving


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Served:
    port: int
    edge: Edge

    async def exchange(self, *chunks: bytes, replies: int = 1, pause: float = 0.0) -> list[Reply]:
        """Send the chunks on one connection (each written on its own), read `replies` replies."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            return [await asyncio.wait_for(_read_reply(reader), 10) for _ in range(replies)]
        finally:
            writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    """The next final reply (an interim 100 Continue is passed over)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    if status == 100:
        return await _read_reply(reader)
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(status, headers, body)


@pytest.fixture
async def served(settings) -> AsyncIterator[Served]:
    async with serving(settings) as (port, edge):
        yield Served(port, edge)


def post(body: dict | bytes, key: str | None, *extra: str, path: str = "/v1/contacts", version: str = "1.1") -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"POST {path} HTTP/{version}", "Host: gateway", "Content-Type: application/json"]
    lines += [f"Authorization: Bearer {key}"] if key else []
    lines += [*extra, f"Content-Length: {len(raw)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def call(provider_id: str | None = None, sender: str = "07700 900123") -> dict:
    return {"channel": "phone", "from": sender, "provider_id": provider_id or f"edge-{uuid.uuid4().hex}"}


async def known(served: Served, key: str) -> None:
    """A key is known to a process once it has been seen: the first call with it goes to aiohttp."""
    (reply,) = await served.exchange(post(call(), key))
    assert reply.status == 201


async def known_as_refused(served: Served, key: str) -> None:
    """The process has checked this key (so the edge could answer for it, were it allowed to)."""
    (reply,) = await served.exchange(post(call(), key))
    assert reply.status == 403


async def test_a_plain_call_is_answered_by_the_edge_as_aiohttp_answers_it(served, client, keys, conn):
    await known(served, keys["channel"])
    before = served.edge.answered
    (edge,) = await served.exchange(post(call("same-shape-1"), keys["channel"], "X-Request-Id: trace-me-1"))
    assert served.edge.answered == before + 1
    r = await client.post(
        "/v1/contacts",
        headers={"Authorization": f"Bearer {keys['channel']}", "X-Request-Id": "trace-me-2"},
        json=call("same-shape-2"),
    )
    assert (edge.status, r.status) == (201, 201)
    theirs = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("date", "content-length")}
    ours = {k: v for k, v in edge.headers.items() if k not in ("date", "content-length")}
    assert ours == {**theirs, "x-request-id": "trace-me-1"}
    decided, expected = edge.json(), await r.json()
    assert decided.keys() == expected.keys()
    assert {k: decided[k] for k in ("action", "target", "reasons")} == {
        k: expected[k] for k in ("action", "target", "reasons")
    }
    row = await conn.fetchrow(
        "SELECT channel, provider_id, status FROM contacts WHERE id = $1", uuid.UUID(decided["contact_id"])
    )
    assert dict(row) == {"channel": "phone", "provider_id": "same-shape-1", "status": "decided"}


async def test_a_retry_pipelined_behind_its_first_attempt_hears_the_same_answer(served, keys):
    await known(served, keys["channel"])
    attempt = post(call("retry-1"), keys["channel"])
    first, second = await served.exchange(attempt + attempt, replies=2)
    assert (first.status, second.status) == (201, 200)
    assert first.json()["contact_id"] == second.json()["contact_id"]
    assert served.edge.handed == 1  # only the connection that made the key known


async def test_a_call_arriving_in_pieces_is_answered_by_the_edge(served, keys):
    await known(served, keys["channel"])
    raw = post(call(), keys["channel"])
    before = served.edge.answered
    (reply,) = await served.exchange(raw[:7], raw[7:40], raw[40:-5], raw[-5:], pause=0.02)
    assert reply.status == 201
    assert served.edge.answered == before + 1


@pytest.fixture
async def all_keys(keys, conn) -> dict[str, str]:
    """The system keys, and a person's key that belongs to no staff member (it may only read)."""
    return {**keys, "person": await insert_unowned_key(conn, "agent")}


def _cases(keys: dict[str, str]) -> dict[str, bytes]:
    key = keys["channel"]
    return {
        "unknown key": post(call(), "not-a-key-we-issued"),
        "no key": post(call(), None),
        "admin-only route's key elsewhere": post(call(), key, path="/v1/restrictions"),
        "not JSON": post(b"{not json", key),
        "not a contact": post({"channel": "carrier-pigeon", "from": "x"}, key),
        "a body of the wrong type": post(call(), key, "Content-Type: text/plain"),
        "HTTP/1.0": post(call(), key, version="1.0"),
        "Expect": post(call(), key, "Expect: 100-continue"),
        "Connection: close": post(call(), key, "Connection: close"),
        "a request id that is not ASCII": post(call(), key, "X-Request-Id: caf\u00e9".encode().decode("latin-1")),
        "chunked": (
            f"POST /v1/contacts HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json"
            "\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (json.dumps(call()).encode(), b""))[:-2]
        + b"\r\n",
        "a readiness check": b"GET /readyz HTTP/1.1\r\nHost: gateway\r\n\r\n",
        "no Host": post(call(), key).replace(b"Host: gateway\r\n", b""),
        "two Hosts": post(call(), key, "Host: elsewhere"),
        "a header given twice": post(call(), key, "User-Agent: a", "User-Agent: b"),
        "two lengths": post(call(), key, "Content-Length: 3"),
        "a length and chunked": post(call(), key, "Transfer-Encoding: chunked"),
        "a folded header": post(call(), key, "X-Note: a", " folded"),
        "a bare line feed": post(call(), key, "X-Note: a\nX-Other: b"),
        "a read-only key": post(call(), keys["person"]),
        "an old WebSocket key": post(call(), key, "Sec-WebSocket-Key1: 1"),
        "a body over the limit": post({**call(), "body": "x" * (1024 * 1024)}, key),
        "a time years before now": post({**call(), "received_at": "2019-01-01T09:00:00Z"}, key),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown key",
        "no key",
        "admin-only route's key elsewhere",
        "not JSON",
        "not a contact",
        "a body of the wrong type",
        "HTTP/1.0",
        "Expect",
        "Connection: close",
        "a request id that is not ASCII",
        "chunked",
        "a readiness check",
        "no Host",
        "two Hosts",
        "a header given twice",
        "two lengths",
        "a length and chunked",
        "a folded header",
        "a bare line feed",
        "a read-only key",
        "an old WebSocket key",
        "a body over the limit",
        "a time years before now",
    ],
)
async def test_what_is_not_plain_is_answered_by_aiohttp_as_before(served, client, all_keys, conn, case):
    """Each is answered as the aiohttp-only server answers it, and what it logs (a refused or a
    malformed attempt) it logs as before."""
    keys = all_keys
    await known(served, keys["channel"])
    await known_as_refused(served, keys["person"])
    raw = _cases(keys)[case]
    logged = await conn.fetchval("SELECT count(*) FROM contacts")
    before = served.edge.answered
    (reply,) = await served.exchange(raw)
    assert served.edge.answered == before
    ours_logged = await conn.fetchval("SELECT count(*) FROM contacts") - logged
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(_cases(keys)[case])  # the same request, with a provider id of its own
    theirs = await asyncio.wait_for(_read_reply(reader), 10)
    writer.close()
    theirs_logged = await conn.fetchval("SELECT count(*) FROM contacts") - logged - ours_logged
    assert (reply.status, ours_logged) == (theirs.status, theirs_logged)
    if reply.status >= 400:  # the same refusal, word for word
        assert reply.body == theirs.body
    else:
        assert reply.json().keys() == json.loads(theirs.body).keys()


async def test_a_call_with_a_plausible_time_of_its_own_is_answered_here_with_that_time(served, keys):
    await known(served, keys["channel"])
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    before = served.edge.answered
    (reply,) = await served.exchange(post({**call(), "received_at": at}, keys["channel"]))
    assert (reply.status, served.edge.answered) == (201, before + 1)
    assert datetime.fromisoformat(reply.json()["received_at"]) == datetime.fromisoformat(at)


async def test_a_call_answered_here_is_logged_at_debug_as_the_middleware_logs_it(served, keys, caplog):
    await known(served, keys["channel"])
    before = served.edge.answered
    with caplog.at_level(logging.DEBUG, logger="gateway.http"):
        (reply,) = await served.exchange(post(call(), keys["channel"], "X-Request-Id: debug-me"))
    assert served.edge.answered == before + 1
    (line,) = [r for r in caplog.records if r.getMessage() == "request" and getattr(r, "status", None) == 201]
    assert (line.method, line.path, reply.headers["x-request-id"]) == ("POST", "/v1/contacts", "debug-me")
    assert line.ms >= 0


async def test_a_caller_that_ends_with_a_call_part_sent_is_not_left_hanging(served, keys):
    """A plain call, then the start of another, then the end of the caller's input: the first is
    answered, and the connection then ends (aiohttp has the part-sent call), rather than staying open."""
    await known(served, keys["channel"])
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(post(call(), keys["channel"]) + post(call(), keys["channel"])[:60])
    writer.write_eof()
    reply = await asyncio.wait_for(_read_reply(reader), 10)
    assert reply.status == 201
    await asyncio.wait_for(reader.read(), 5)  # the rest (if any) and the end: not a hang
    writer.close()


async def test_a_header_a_proxy_repeats_is_still_plain(served, keys):
    """aiohttp refuses a repeat of only a few headers; a proxy's second X-Forwarded-For is not one."""
    await known(served, keys["channel"])
    before = served.edge.answered
    (reply,) = await served.exchange(
        post(call(), keys["channel"], "X-Forwarded-For: 192.0.2.1", "X-Forwarded-For: 198.51.100.7")
    )
    assert reply.status == 201
    assert served.edge.answered == before + 1


async def test_a_connection_handed_over_midway_is_answered_in_order(served, keys):
    await known(served, keys["channel"])
    key = keys["channel"]
    before = served.edge.answered
    replies = await served.exchange(
        post(call("order-1"), key) + post(b"{", key) + post(call("order-3"), key), replies=3
    )
    assert [r.status for r in replies] == [201, 400, 201]
    assert replies[1].json()["error"]["code"] == "malformed_json"
    assert served.edge.answered == before + 1  # the third was aiohttp's: the connection is its own now


async def test_a_stop_closes_idle_connections_and_answers_what_is_under_way(served, keys):
    await known(served, keys["channel"])
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(post(call(), keys["channel"]))
    await writer.drain()
    for _ in range(2000):  # until the call is being decided
        if served.edge.tasks:
            break
        await asyncio.sleep(0)
    assert served.edge.tasks, "the call was answered before the stop began"
    await served.edge.shutdown(5)
    reply = await asyncio.wait_for(_read_reply(reader), 10)
    assert reply.status == 201
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # closed, with nothing sent
    writer.close()
    idle_writer.close()


async def test_a_part_read_call_holds_the_stop_until_its_body_comes(served, keys):
    """As aiohttp lets a handler reading its body finish: the rest of the body arrives during the
    stop, and the call is answered."""
    await known(served, keys["channel"])
    raw = post(call(), keys["channel"])
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(raw[:-10])
    await writer.drain()
    await asyncio.sleep(0.05)
    stop = asyncio.create_task(served.edge.shutdown(5))
    await asyncio.sleep(0.2)
    assert not stop.done()
    writer.write(raw[-10:])
    reply = await asyncio.wait_for(_read_reply(reader), 10)
    assert reply.status == 201
    await asyncio.wait_for(stop, 5)
    writer.close()


async def test_a_caller_that_does_not_read_its_answers_is_not_answered_without_end(served, keys):
    """Write-side backpressure: while the transport says its buffer of unread replies is full
    (pause_writing), pipelined calls wait undecided; once it drains (resume_writing) they go on."""
    await known(served, keys["channel"])
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    for _ in range(200):
        ours = [c for c in served.edge.connections if not c.buffer and not c.busy and c.answered_here == 0]
        if ours:
            break
        await asyncio.sleep(0.005)
    (conn,) = ours
    conn.pause_writing()
    before = served.edge.answered
    writer.write(post(call(), keys["channel"]) + post(call(), keys["channel"]))
    await writer.drain()
    await asyncio.sleep(0.3)
    assert served.edge.answered == before and not conn.busy
    conn.resume_writing()
    replies = [await asyncio.wait_for(_read_reply(reader), 10) for _ in range(2)]
    assert [r.status for r in replies] == [201, 201]
    assert served.edge.answered == before + 2
    writer.close()


async def test_a_real_worker_on_uvloop_answers_here_and_hands_over(settings, keys):
    """`python -m gateway serve` (uvloop): the hand-over to aiohttp works on its transports too."""
    async with GatewayProcess(settings) as gw:
        served = Served(gw.port, None)  # type: ignore[arg-type]
        key = keys["channel"]
        (first,) = await served.exchange(post(call(), key))  # the process checks the key (aiohttp)
        replies = await served.exchange(post(call(), key) + post(b"{", key) + post(call(), key), replies=3)
        assert [first.status, *(r.status for r in replies)] == [201, 201, 400, 201]
        others = b"".join(
            f"GET {path} HTTP/1.1\r\nHost: g\r\n\r\n".encode() for path in ("/v1/customers/7", "/nowhere", "/agent")
        )
        assert [r.status for r in await served.exchange(others, replies=3)] == [401, 404, 303]
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        metrics = (await reader.read()).decode()
        writer.close()
        assert 'gateway_lean_edge_total{outcome="answered"} 1.0' in metrics
        # Every request is counted, by the edge or by aiohttp, under its route's template.
        assert 'gateway_http_requests_total{route="/v1/contacts",status="201"} 3.0' in metrics
        assert 'gateway_http_requests_total{route="/v1/contacts",status="400"} 1.0' in metrics
        assert 'gateway_http_requests_total{route="/v1/customers/{id}",status="401"} 1.0' in metrics
        assert 'gateway_http_requests_total{route="unmatched",status="404"} 1.0' in metrics
        assert 'gateway_http_requests_total{route="/agent",status="303"} 1.0' in metrics  # a redirect raised


def test_header_lines_read_before_are_looked_up_and_read_the_same(monkeypatch):
    """A caller's repeated lines are read once and kept; what is refused is refused again; a key,
    a cookie, a long line or a request id is never kept; and the lines kept are bounded."""
    monkeypatch.setattr(edge_module, "_LINES", edge_module._Lines())
    lines = [
        b"Host: gateway",
        b"Content-Type: application/json",
        b"Authorization: Bearer gk_secret",
        b"Cookie: gw_session=s3cret",
        b"X-Request-Id: call-1",
        b"User-Agent: " + b"x" * 300,
        b"Content-Length: 12",
    ]
    first, again = edge_module._Head.of(lines, 100), edge_module._Head.of(lines, 100)
    assert first == again
    assert again is not None
    assert (again.length, again.key, again.request_id) == (12, b"Bearer gk_secret", b"call-1")
    assert set(edge_module._LINES) == {b"Host: gateway", b"Content-Type: application/json", b"Content-Length: 12"}
    assert edge_module._Head.of([b"Host: g", b"Authorization: Bearer gk_secret\x7f"], 50) is None
    assert edge_module._Head.of([b"Host: g", b"Authorization : Bearer gk_secret"], 50) is None
    assert edge_module._Head.of([b"Host: g", b"Accept: \x01"], 50) is None
    assert b"Accept: \x01" not in edge_module._LINES  # a refused line is not kept, whatever its name
    assert not any(b"secret" in line for line in edge_module._LINES)
    monkeypatch.setattr(edge_module, "_LINES_MAX", 8)
    for n in range(20):
        assert edge_module._Head.of([b"Host: g", f"Content-Length: {n}".encode()], 40) is not None
        assert len(edge_module._LINES) <= 8
    edge_module._LINES.clear()
    for n in range(9):  # the ninth line finds the cache full: all are forgotten, then it is kept
        edge_module._Head.of([f"Content-Length: {n}".encode()], 20)
    assert list(edge_module._LINES) == [b"Content-Length: 8"]
