"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..appkeys import POOL, REDIS
from ..http import add_route
from ..metrics import REGISTRY
from ..runtime import RUNTIME
from ..store.health import database_answers


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(coro: Any) -> str:
    try:
        await asyncio.wait_for(coro, timeout=1.0)
        return "ok"
    except Exception as exc:  # readiness reports any failure as a state, never raises
        return f"down: {type(exc).__name__}"


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    checks = {
        "database": await _check(database_answers(app[POOL])),
        "cache": await _check(app[REDIS].ping()),
    }
    rt = app[RUNTIME]
    checks["index"] = "ok" if rt.index.loaded else "loading"
    if rt.contact_log.spool_failed:
        checks["spool"] = "down: cannot write the local spool"
    ready = all(v == "ok" for v in checks.values())
    # Said plainly, but not a reason to take the gateway out of service: it still decides.
    warnings = [w for w in (rt.ways_to_write(),) if w]
    return web.json_response({"ready": ready, "checks": checks, "warnings": warnings}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/healthz", healthz, None)
    add_route(app, "GET", "/readyz", readyz, None)
    add_route(app, "GET", "/metrics", metrics, None)
