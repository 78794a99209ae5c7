"""`POST /v1/incidents`: an agent refers an incident to the caution leads, as themselves."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import POOL
from ..http import add_route, dump, principal
from ..incidents import refer
from ..inputs import read_model
from ..models.incidents import IncidentIn


async def create_incident(request: web.Request) -> web.Response:
    body = await read_model(request, IncidentIn)
    return dump(await refer(request.app[POOL], body, principal(request).actor), 201)


def setup(app: web.Application) -> None:
    add_route(app, "POST", "/v1/incidents", create_incident, ("agent",), person=True)
