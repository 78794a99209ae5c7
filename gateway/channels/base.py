"""The Channel protocol every inbound channel implements, and the one driver that runs them all.

A channel only reads its caller system's format and writes its reply format:
`parse(raw, runtime) -> InboundContact | Rejected` and `render(decision, created, runtime) -> reply`.
The driver does the rest in the same order for every channel: parse → log what was rejected →
decide → render. A new channel is one module and one line in the registry (`channels/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from aiohttp import web

from ..contact import Decision, InboundContact, degraded_decision, implausible_received_at
from ..decide import Rejected
from ..errors import field_error
from ..runtime import RUNTIME, Runtime

Raw = TypeVar("Raw", contravariant=True)
Reply = TypeVar("Reply", covariant=True)


class Channel(Protocol[Raw, Reply]):
    name: str
    description: str

    async def parse(self, raw: Raw, rt: Runtime) -> InboundContact | Rejected: ...

    def render(self, decision: Decision, created: bool, rt: Runtime) -> Reply: ...


@dataclass(frozen=True)
class HttpMount:
    """How an HTTP channel is reached: its path and the API-key roles allowed (None: the channel
    authenticates the caller itself, e.g. by a request signature, in `parse`)."""

    path: str
    roles: tuple[str, ...] | None
    refused_as: str = "unknown"  # the channel an attempt refused for its key is logged under


class HttpChannel(Channel[web.Request, web.StreamResponse], Protocol):
    mount: HttpMount


async def drive(channel: Channel[Raw, Reply], raw: Raw, rt: Runtime) -> Reply:
    """The one sequence every channel runs. A rejected attempt is logged first; then the caller is
    refused (its `refusal`), or, when a caller is waiting on the line, given the safe answer."""
    parsed = checked(await channel.parse(raw, rt))
    if isinstance(parsed, Rejected):
        await rt.decide.log_rejected(parsed)
        if parsed.refusal is not None:
            raise parsed.refusal
        return channel.render(degraded_decision("", f"not decided: {parsed.error[:200]}"), False, rt)
    decision, created = await rt.decide.decide(parsed)
    return channel.render(decision, created, rt)


def checked(parsed: InboundContact | Rejected, now: datetime | None = None) -> InboundContact | Rejected:
    """What needs the clock: a received_at that cannot be right is refused (and logged) here. The
    clock (`now`, else the time of the call) is read only for a contact that gives a time."""
    if isinstance(parsed, Rejected) or parsed.received_at is None:
        return parsed
    problem = implausible_received_at(parsed, now or datetime.now(UTC))
    if problem is None:
        return parsed
    return Rejected(
        "malformed",
        f"received_at: {problem}",
        parsed.channel,
        parsed.sender,
        parsed.provider_id,
        refusal=field_error("received_at", problem),
    )


def reply_body(decision: Decision) -> bytes:
    """The decide contract's reply body: the decision's JSON, serialised once for the reply, the
    log row and the remembered answer."""
    return decision.answered_json()


def json_reply(decision: Decision, created: bool) -> web.StreamResponse:
    """The decide contract's reply: 201 for a new contact, 200 for a repeat of a provider id."""
    return web.Response(
        body=reply_body(decision), status=201 if created else 200, content_type="application/json", charset="utf-8"
    )


def http_handler(channel: HttpChannel) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await drive(channel, request, request.app[RUNTIME])

    handle.__name__ = f"{channel.name}_channel"
    handle.__doc__ = channel.description
    return handle
