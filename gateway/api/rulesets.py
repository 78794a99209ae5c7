"""Manager rule sets: the versions on record and the one in force."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import POOL
from ..errors import NotFound
from ..http import add_route
from ..inputs import INT_MAX, path_id
from ..store.rulesets import get_ruleset, list_rulesets

MANAGER = ("manager",)


async def list_all(request: web.Request) -> web.Response:
    return web.json_response({"rulesets": await list_rulesets(request.app[POOL])})


async def get_one(request: web.Request) -> web.Response:
    found = await get_ruleset(request.app[POOL], path_id(request, "version", high=INT_MAX))
    if found is None:
        raise NotFound(f"rule set version {request.match_info['version']} does not exist")
    return web.json_response(found)


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/rulesets", list_all, MANAGER)
    add_route(app, "GET", "/v1/rulesets/{version}", get_one, MANAGER)
