"""Channel adapters, registered explicitly in one place; a duplicate name stops start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .fastagi import setup as fastagi_setup
from .flat import setup as flat_setup
from .twilio import setup as twilio_setup


@dataclass(frozen=True)
class ChannelAdapter:
    name: str
    description: str
    setup: Callable[[web.Application], None]


CHANNELS: tuple[ChannelAdapter, ...] = (
    ChannelAdapter("twilio", "Twilio voice webhooks answered with TwiML", twilio_setup),
    ChannelAdapter("flat", "Amazon Connect / Genesys: a flat map of strings", flat_setup),
    ChannelAdapter("fastagi", "Asterisk / FreePBX FastAGI server", fastagi_setup),
)


class DuplicateChannel(RuntimeError):
    """Two adapters claim the same name: a programming error, caught at start-up."""


def register(app: web.Application, channels: tuple[ChannelAdapter, ...] = CHANNELS) -> None:
    """Set up every channel adapter on the app; refuses two adapters with the same name."""
    seen: set[str] = set()
    for channel in channels:
        if channel.name in seen:
            raise DuplicateChannel(f"channel {channel.name!r} is registered twice")
        seen.add(channel.name)
    for channel in channels:
        channel.setup(app)
