"""Typed keys for what the application holds: settings, pools and long-lived services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from .auth import KeyRing
from .settings import Settings

if TYPE_CHECKING:
    from .decide import DecideService
    from .index import RestrictionIndex

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
KEYRING: web.AppKey[KeyRing] = web.AppKey("keyring", KeyRing)
# Services added by later parts of the app (index, contact log, decide service) register here.
SERVICES: web.AppKey[dict[str, Any]] = web.AppKey("services", dict)
INDEX: web.AppKey[RestrictionIndex] = web.AppKey("index")
DECIDER: web.AppKey[DecideService] = web.AppKey("decider")
