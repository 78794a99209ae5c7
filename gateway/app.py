"""The application factory. It reads in the order the app is built: settings → pools → the Runtime
(index, contact log, decide service) → channels → API routes → background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from aiohttp import web

from . import channels, db
from . import web as pages
from .api import (
    admin,
    banners,
    contacts,
    incidents,
    openapi,
    ops,
    readthrough,
    reports,
    restrictions,
    retention,
    rulesets,
)
from .appkeys import KEYRING, POOL, REDIS, SETTINGS
from .auth import KeyRing
from .http import MAX_BODY, ROUTE_ROLES, auth_middleware_factory, error_middleware
from .redispack import packed_by_hiredis
from .runtime import RUNTIME, Runtime
from .settings import Settings
from .tasks import periodic_tasks
from .web.sessions import session_principal

log = logging.getLogger(__name__)
# At a stop, how long the pool may wait for its connections to come back before it closes them.
POOL_CLOSE_WITHIN = 10.0

# Each area of the API registers its own routes; listed once here so the whole surface is visible.
ROUTE_MODULES: list[Callable[[web.Application], None]] = [
    ops.setup,
    admin.setup,
    contacts.setup,
    banners.setup,
    incidents.setup,
    restrictions.setup,
    reports.setup,
    readthrough.setup,
    retention.setup,
    rulesets.setup,
    openapi.setup,
]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    assert settings.database_url
    # min_size 0: start-up does not need the database; a worker can answer degraded without it.
    app[POOL] = await db.create_pool(settings.database_url, min_size=0, max_size=32)
    yield
    try:  # asyncpg waits for every connection to come back, without end: a stop must end
        await asyncio.wait_for(app[POOL].close(), POOL_CLOSE_WITHIN)
    except TimeoutError:
        log.error("PostgreSQL pool: connections still in use %g s into the stop; closed at once", POOL_CLOSE_WITHIN)
        app[POOL].terminate()


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
    packed_by_hiredis(pool)
    client = aioredis.Redis(connection_pool=pool)
    app[REDIS] = client
    app[KEYRING] = KeyRing(app[POOL], client)
    yield
    await client.aclose(close_connection_pool=True)  # a pool we made: the client does not close it by itself


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    app[RUNTIME] = await Runtime.open(app[SETTINGS], app[POOL], app[REDIS])
    yield
    await app[RUNTIME].close()


def create_app(settings: Settings, *, extra_cleanup: list[CleanupContext] | None = None) -> web.Application:
    settings.require_services()

    async def resolve(key: str) -> object:
        return await app[KEYRING].resolve(key)

    app = web.Application(
        middlewares=[error_middleware, auth_middleware_factory(resolve, session_principal)],  # type: ignore[arg-type]
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[MAX_BODY] = settings.max_body_bytes
    app[ROUTE_ROLES] = {}
    app.cleanup_ctx.extend([_postgres, _redis, _runtime])
    pages.setup(app)
    channels.register(app)
    for setup in ROUTE_MODULES:
        setup(app)
    app.cleanup_ctx.append(periodic_tasks)
    app.cleanup_ctx.extend(extra_cleanup or [])
    return app
