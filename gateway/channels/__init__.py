"""Inbound channels, registered explicitly in one place; a duplicate name stops start-up.

A new channel is one module implementing the Channel protocol (channels/base.py) and one line here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..decide import Rejected
from ..http import LOG_REFUSED, OnRefused, add_route
from ..inputs import client_address
from ..runtime import RUNTIME
from .base import HttpChannel, http_handler
from .email import EmailChannel, MailgunChannel
from .fastagi import FastAGIChannel, serve_fastagi
from .flat import FlatChannel
from .generic import GenericChannel
from .mailfilter import MailFilterChannel, serve_mailfilter
from .twilio import TwilioVoice, add_fallback
from .webform import WebFormChannel

HTTP_CHANNELS: tuple[HttpChannel, ...] = (
    GenericChannel(),
    TwilioVoice(),
    FlatChannel(),
    EmailChannel(),
    MailgunChannel(),
    WebFormChannel(),
)
# Channels with a listener of their own (not HTTP), each with the cleanup context that runs it.
Serve = Callable[[web.Application], AsyncIterator[None]]
LISTENERS: tuple[tuple[FastAGIChannel | MailFilterChannel, Serve], ...] = (
    (FastAGIChannel(), serve_fastagi),
    (MailFilterChannel(), serve_mailfilter),
)


class DuplicateChannel(RuntimeError):
    """Two channels claim the same name: a programming error, caught at start-up."""


def register(app: web.Application, http: tuple[HttpChannel, ...] = HTTP_CHANNELS) -> None:
    """Mount every HTTP channel on its path and start the listeners with the app."""
    names = [c.name for c in http] + [c.name for c, _ in LISTENERS]
    for name in names:
        if names.count(name) > 1:
            raise DuplicateChannel(f"channel {name!r} is registered twice")
    refused: dict[web.AbstractRoute, OnRefused] = {}
    for channel in http:
        route = add_route(app, "POST", channel.mount.path, http_handler(channel), channel.mount.roles)
        if channel.mount.roles is not None:
            refused[route] = _log_refused(channel.mount.refused_as)
    app[LOG_REFUSED] = refused
    add_fallback(app)
    app.cleanup_ctx.extend(serve for _, serve in LISTENERS)


def _log_refused(channel: str) -> OnRefused:
    """A contact refused for its API key (none, unknown, revoked, not a channel's) is logged as
    rejected, as a bad Twilio or Mailgun signature is: a platform left on a rotated key would
    otherwise lose every contact from the log. Its body is not read: the caller is not known."""

    async def log_refused(request: web.Request, why: str) -> None:
        address = client_address(request)
        note = f"{why} (from {address or 'unknown'})"
        await request.app[RUNTIME].decide.log_rejected(Rejected("rejected", note[:2000], channel, address=address))

    return log_refused
