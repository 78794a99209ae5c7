"""The application factory: middlewares, routes, and the pools opened in cleanup contexts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from aiohttp import web

from . import channels, db
from .api import admin, banners, contacts, openapi, ops, reports, restrictions, rulesets
from .auth import KeyRing
from .http import MAX_BODY, ROUTE_ROLES, auth_middleware_factory, error_middleware
from .runtime import decide_path
from .settings import Settings
from .state import KEYRING, POOL, REDIS, SERVICES, SETTINGS

log = logging.getLogger(__name__)

# Each area of the API registers its own routes; listed once here so the whole surface is visible.
ROUTE_MODULES: list[Callable[[web.Application], None]] = [
    ops.setup,
    admin.setup,
    contacts.setup,
    banners.setup,
    restrictions.setup,
    reports.setup,
    rulesets.setup,
    openapi.setup,
    channels.register,
]


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url
    # min_size 0: start-up does not need the database; a worker can answer degraded without it.
    app[POOL] = await db.create_pool(settings.database_url, min_size=0, max_size=32)
    yield
    await app[POOL].close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.redis_url
    # A bounded pool that makes a burst wait for a connection instead of failing it.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=64,
        timeout=1.0,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=10,
    )
    client = aioredis.Redis(connection_pool=pool)
    app[REDIS] = client
    app[KEYRING] = KeyRing(app[POOL], client)
    yield
    await client.aclose()


def create_app(
    settings: Settings, *, extra_cleanup: list[Callable[..., AsyncIterator[None]]] | None = None
) -> web.Application:
    settings.require_services()

    async def resolve(key: str) -> object:
        return await app[KEYRING].resolve(key)

    app = web.Application(
        middlewares=[error_middleware, auth_middleware_factory(resolve)],  # type: ignore[arg-type]
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[MAX_BODY] = settings.max_body_bytes
    app[ROUTE_ROLES] = {}
    app[SERVICES] = {}
    app.cleanup_ctx.append(_postgres)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(decide_path)
    for extra in extra_cleanup or []:
        app.cleanup_ctx.append(extra)
    for setup in ROUTE_MODULES:
        setup(app)
    return app
