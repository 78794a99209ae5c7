"""Typed app keys for what the app factory opens before the Runtime: settings, pools, the key ring."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from .auth import KeyRing
from .settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
KEYRING: web.AppKey[KeyRing] = web.AppKey("keyring", KeyRing)
