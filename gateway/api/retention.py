"""GET /v1/retention: what the next retention run will remove, so that nobody is surprised."""

from __future__ import annotations

from aiohttp import web

from .. import retention
from ..appkeys import POOL, SETTINGS
from ..http import add_route
from ..reviews import utc_now
from .restrictions import today


async def next_run(request: web.Request) -> web.Response:
    """What the retention settings will remove next: contact-log months, what is kept beside the log,
    excerpts, ended restrictions."""
    limits = retention.Limits.of(request.app[SETTINGS])
    return web.json_response(await retention.plan(request.app[POOL], limits, utc_now(), today(request)))


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/retention", next_run, ("caution_lead",))
