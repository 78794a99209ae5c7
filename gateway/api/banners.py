"""Restriction banners for agents: on demand for a caller, and pushed live to agent screens (SSE).

Least disclosure: the banner says how to handle the contact and when the restriction is reviewed;
never the incidents or reasons behind it, which are for caution leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from ..appkeys import POOL, REDIS
from ..auth import Principal, key_now
from ..contact import InboundContact
from ..errors import field_error
from ..http import add_route, principal
from ..identifiers import sender_handle
from ..inputs import query_int
from ..rediskeys import BANNER_CHANNEL
from ..rules.context import Match
from ..rules.engine import Verdict
from ..rules.engine import decide as rules_decide
from ..rules.outcome import ENFORCED_STATUSES
from ..rules.params import CHANNELS
from ..runtime import RUNTIME, Runtime
from ..store.incidents import staff_queue
from ..store.people import ensure_customer
from ..web.sessions import session_now

AGENT = ("agent",)
# An open stream asks again this often whether the key or session that opened it still stands.
RECHECK_SECONDS = 15.0
KEEP_ALIVE_SECONDS = 15.0


def _match_for(request: web.Request) -> Match:
    index = request.app[RUNTIME].index
    customer_id = query_int(request, "customer_id", low=1)
    if customer_id is not None:
        bundle = index.bundles.get(customer_id)
        return Match(bundles=(bundle,) if bundle else (), sender_kind="customer")
    raw = request.query.get("identifier", "").strip()
    if not raw:
        raise field_error("identifier", "give ?identifier=<phone, email or web id> or ?customer_id=")
    return match_identifier(request.app[RUNTIME], raw)


def match_identifier(rt: Runtime, raw: str) -> Match:
    """Who a phone number, email address or web account id reaches, from the restriction index."""
    handle = sender_handle("phone" if "@" not in raw and any(c.isdigit() for c in raw) else "email", raw[:320])
    if handle.kind is None:
        raise field_error("identifier", "not a phone number, email address or web account id")
    return rt.index.match(handle.kind, handle.value)


def banner_now(rt: Runtime, match: Match, channel: str = "phone") -> Verdict:
    """What the rules say now for a contact from `match` on `channel`: its banner and target."""
    ctx = rt.contexts.build(match)
    return rules_decide(InboundContact.model_validate({"channel": channel}), ctx, datetime.now(UTC))


async def get_banners(request: web.Request) -> web.Response:
    channel = request.query.get("channel", "phone")
    if channel not in CHANNELS:
        raise field_error("channel", f"one of {', '.join(CHANNELS)}")
    match = _match_for(request)
    verdict = banner_now(request.app[RUNTIME], match, channel)
    restrictions = [
        {
            "id": r.id,
            "customer_id": b.customer.id,
            "kind": r.kind,
            "channels": sorted(r.channels),
            "status": r.status,
            "review_due": r.review_due.isoformat() if r.review_due else None,
        }
        for b in match.bundles
        for r in b.restrictions
        if r.status in ENFORCED_STATUSES
    ]
    if request.query.get("customer_id") and not match.bundles:
        await ensure_customer(request.app[POOL], int(request.query["customer_id"]))
    return web.json_response(
        {
            "customer_ids": list(match.customer_ids),
            "banner": verdict.banner.model_dump(mode="json") if verdict.banner else None,
            "restrictions": restrictions,
        }
    )


def _wanted(event: dict[str, Any], queue: str | None, staff: str | None, mine: tuple[str, str | None] | None) -> bool:
    target = event.get("target") or {}
    to_queue = target.get("type") == "queue"
    to_person = target.get("type") in ("staff", "voicemail")
    if mine is not None:
        staff_id, own_queue = mine
        return (to_person and target.get("id") == staff_id) or (
            to_queue and own_queue is not None and target.get("id") == own_queue
        )
    if queue and not (to_queue and target.get("id") == queue):
        return False
    return not (staff and not (to_person and target.get("id") == staff))


async def _mine(request: web.Request) -> tuple[str, str | None] | None:
    """?mine=true: contacts routed to the signed-in staff member (line, voicemail, mailbox) or their queue."""
    if request.query.get("mine", "").lower() not in ("1", "true"):
        return None
    who = principal(request)
    if who.staff_id is None:
        raise field_error("mine", "only a staff member's own key or session has contacts of their own")
    return str(who.staff_id), await staff_queue(request.app[POOL], who.staff_id)


async def stream_banners(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one `banner` event per contact that carries a banner, as it is decided."""
    streams = request.app[_STREAMS]
    task = asyncio.current_task()
    assert task is not None  # a handler runs in a task of its own
    streams.open.add(task)  # before any wait: a shutdown meanwhile still ends it
    try:
        return await _stream(request, streams)
    finally:
        streams.open.discard(task)


async def _stream(request: web.Request, streams: _Streams) -> web.StreamResponse:
    queue, staff = request.query.get("queue"), request.query.get("staff_id")
    mine = await _mine(request)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    await resp.write(b": connected\n\n")
    opened, loop = principal(request), asyncio.get_running_loop()
    recheck_at = loop.time() + RECHECK_SECONDS
    pubsub = request.app[REDIS].pubsub()
    try:
        await pubsub.subscribe(BANNER_CHANNEL)
        while not streams.stopping:
            wait = min(KEEP_ALIVE_SECONDS, RECHECK_SECONDS)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if loop.time() >= recheck_at:
                if not await _still_stands(request, opened):
                    await resp.write(b"event: signed-out\ndata: {}\n\n")
                    break
                recheck_at = loop.time() + RECHECK_SECONDS
            if message is None:
                await resp.write(b": keep-alive\n\n")
                continue
            event = json.loads(message["data"])
            if _wanted(event, queue, staff, mine):
                await resp.write(f"event: banner\ndata: {json.dumps(event)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError, RedisError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
    return resp


async def _still_stands(request: web.Request, opened: Principal) -> bool:
    """Whether the key or session that opened this stream still stands, as the same person in the
    same role: a revoked key, a signed-out or ended session, a deactivated staff member end it. If
    the database cannot say, the stream goes on (banners are safety information)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    try:
        async with asyncio.timeout(2.0):
            now = await key_now(request.app[POOL], key.strip()) if scheme else await session_now(request)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return True
    return now is not None and (now.role, now.staff_id) == (opened.role, opened.staff_id)


class _Streams:
    """The banner streams open now, ended when the gateway stops. A stream would otherwise notice a
    gone client only when a keep-alive write fails (15 s apart, and the first write after the browser
    closed its side still succeeds), and hold a stopping gateway until the server's shutdown timeout
    (5 s as `serve` runs it, 60 s in aiohttp's test server). A stream's wait for Redis may swallow
    the cancellation: `stopping` then ends it at its next turn."""

    def __init__(self) -> None:
        self.open: set[asyncio.Task[Any]] = set()
        self.stopping = False

    def end(self) -> None:
        self.stopping = True
        for task in list(self.open):
            task.cancel()


_STREAMS: web.AppKey[_Streams] = web.AppKey("banner_streams", _Streams)


async def _end_streams(app: web.Application) -> None:
    app[_STREAMS].end()


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/banners", get_banners, AGENT)
    add_route(app, "GET", "/v1/banners/stream", stream_banners, AGENT)
    app[_STREAMS] = _Streams()
    app.on_shutdown.append(_end_streams)
