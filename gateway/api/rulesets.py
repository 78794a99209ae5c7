"""Manager rule sets: the versions on record, drafts and their edits (JSON or YAML), validation with
the guardrail report, tests, what-if simulations, publish, roll back, diff. Every change is made by
the signed-in manager and recorded with who, when and why."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import authoring
from ..appkeys import POOL, SETTINGS
from ..decide.simulate import SimulationParams
from ..errors import NotFound, field_error
from ..http import add_route, principal
from ..inputs import INT_MAX, path_id, query_int, read_json_or_yaml, read_model
from ..models.rulesets import DraftIn, ReasonIn, RollbackIn
from ..rules.compiled import compile_ruleset
from ..store import rulesets as store

MANAGER = ("manager",)


def _version(request: web.Request) -> int:
    return path_id(request, "version", high=INT_MAX)


def _actor(request: web.Request) -> str:
    return principal(request).actor.label


async def list_all(request: web.Request) -> web.Response:
    return web.json_response({"rulesets": await store.list_rulesets(request.app[POOL])})


async def get_one(request: web.Request) -> web.Response:
    found = await store.get_ruleset(request.app[POOL], _version(request))
    if found is None:
        raise NotFound(f"rule set version {request.match_info['version']} does not exist")
    wanted = request.query.get("format", "json")
    if wanted not in ("json", "yaml"):
        raise field_error("format", "json or yaml")
    if wanted == "yaml":
        return web.Response(text=authoring.as_yaml(found), content_type="application/yaml")
    return web.json_response(found)


async def create_draft(request: web.Request) -> web.Response:
    body = await read_model(request, DraftIn)
    async with request.app[POOL].acquire() as conn:
        version = await store.create_draft(conn, body.from_version, body.note, _actor(request))
    return web.json_response(await store.get_ruleset(request.app[POOL], version), status=201)


async def edit(request: web.Request) -> web.Response:
    version = _version(request)
    ruleset, note = authoring.parse_edit(version, await read_json_or_yaml(request))
    data = authoring.stored_form(ruleset)
    async with request.app[POOL].acquire() as conn:
        await store.update_draft(conn, version, data["rules"], data["tests"], note, _actor(request))
    return web.json_response(await store.get_ruleset(request.app[POOL], version))


async def _given_or_stored(request: web.Request, version: int) -> Any:
    """The body's rule set if one was sent (validated without saving), else the stored version."""
    if request.can_read_body:
        return authoring.parse_edit(version, await read_json_or_yaml(request))[0]
    return await authoring.load_version(request.app[POOL], version)


async def validate(request: web.Request) -> web.Response:
    version = _version(request)
    return web.json_response(authoring.validation_report(await _given_or_stored(request, version)))


async def test(request: web.Request) -> web.Response:
    version = _version(request)
    compiled = compile_ruleset(await _given_or_stored(request, version))
    return web.json_response(authoring.test_report(compiled, request.app[SETTINGS].calendar()))


async def simulate(request: web.Request) -> web.Response:
    version = _version(request)
    params = await read_model(request, SimulationParams) if request.can_read_body else SimulationParams()
    job = await authoring.start_simulation(request.app[POOL], request.app[SETTINGS], version, params, _actor(request))
    return web.json_response(
        {"job_id": job, "status": "running", "poll": f"/v1/rulesets/simulations/{job}"}, status=202
    )


async def simulation(request: web.Request) -> web.Response:
    found = await store.get_simulation(request.app[POOL], path_id(request, "job"))
    if found is None:
        raise NotFound(f"simulation {request.match_info['job']} does not exist")
    return web.json_response(found)


async def publish(request: web.Request) -> web.Response:
    body = await read_model(request, ReasonIn)
    version, actor = _version(request), _actor(request)
    return web.json_response(await authoring.put_in_force(request.app, version, body.reason, actor, rollback=False))


async def rollback(request: web.Request) -> web.Response:
    body = await read_model(request, RollbackIn)
    actor = _actor(request)
    return web.json_response(await authoring.put_in_force(request.app, body.version, body.reason, actor, rollback=True))


async def diff(request: web.Request) -> web.Response:
    old = query_int(request, "from", low=1, high=INT_MAX)
    new = query_int(request, "to", low=1, high=INT_MAX)
    if old is None or new is None:
        raise field_error("from" if old is None else "to", "give two versions: /v1/rulesets/diff?from=A&to=B")
    return web.json_response(await authoring.diff(request.app[POOL], old, new))


def setup(app: web.Application) -> None:
    # Fixed paths first: /v1/rulesets/{version} would otherwise claim them.
    add_route(app, "GET", "/v1/rulesets", list_all, MANAGER)
    add_route(app, "POST", "/v1/rulesets", create_draft, MANAGER, person=True)
    add_route(app, "POST", "/v1/rulesets/rollback", rollback, MANAGER, person=True)
    add_route(app, "GET", "/v1/rulesets/diff", diff, MANAGER)
    add_route(app, "GET", "/v1/rulesets/simulations/{job}", simulation, MANAGER)
    add_route(app, "GET", "/v1/rulesets/{version}", get_one, MANAGER)
    add_route(app, "PUT", "/v1/rulesets/{version}", edit, MANAGER, person=True)
    add_route(app, "POST", "/v1/rulesets/{version}/validate", validate, MANAGER)
    add_route(app, "POST", "/v1/rulesets/{version}/test", test, MANAGER)
    add_route(app, "POST", "/v1/rulesets/{version}/simulate", simulate, MANAGER)
    add_route(app, "POST", "/v1/rulesets/{version}/publish", publish, MANAGER, person=True)
