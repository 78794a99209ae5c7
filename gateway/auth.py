"""API keys: generation, hashing, lookup with a short in-process cache, and the route-to-role table."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import Invalid
from .rediskeys import API_KEY
from .store import keys as store
from .store.keys import list_keys as list_keys  # re-exported: the command line and tests use them from here
from .store.keys import revoke_key as revoke_key

ROLES = ("channel", "agent", "manager", "caution_lead", "admin")
KEY_PREFIX = "gwk_"
_CACHE_SECONDS = 30.0
_SHARED_SECONDS = 86_400


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How this caller is named in audit records."""
        return f"key:{self.key_id}:{self.name}"


def hash_key(key: str) -> bytes:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is enough: no dictionary to attack.
    return hashlib.sha256(key.encode()).digest()


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, role: str, name: str) -> tuple[int, str]:
    """Store a new key's hash; the key itself is returned once and never stored."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", [{"field": "role"}])
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("name must be 1 to 100 characters", [{"field": "name"}])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return await store.insert_key(conn, name, role, hash_key(key)), key


async def active_key_id(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> int | None:
    """The id of `key` if it is a stored key that has not been revoked."""
    row = await store.active_key(conn, hash_key(key))
    return None if row is None else int(row["id"])


class KeyRing:
    """Resolves bearer keys to principals. Hits are cached briefly so the decide path avoids a query.
    While the database is unreachable, a cached answer keeps serving, and a process that has not seen
    a key yet (just started) asks Redis, where every process leaves the keys it has resolved."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis | None = None, ttl: float = _CACHE_SECONDS) -> None:
        self._pool = pool
        self._redis = redis
        self._ttl = ttl
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def resolve(self, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            row = await store.active_key(self._pool, digest)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError):
            if hit is not None:
                return hit[1]
            return await self._shared(digest)
        principal = Principal(row["id"], row["name"], row["role"]) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        await self._share(digest, principal)
        return principal

    async def _share(self, digest: bytes, principal: Principal | None) -> None:
        if self._redis is None:
            return
        name = API_KEY + digest.hex()
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(0.1):
                if principal is None:  # unknown or revoked: no process may keep serving it
                    await self._redis.delete(name)
                else:
                    await self._redis.set(name, json.dumps(dataclasses.asdict(principal)), ex=_SHARED_SECONDS)

    async def _shared(self, digest: bytes) -> Principal | None:
        """The database is away and this process has not seen the key: what other processes saw."""
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(0.1):
                    raw = await self._redis.get(API_KEY + digest.hex())
                if raw:
                    return Principal(**json.loads(raw))
        raise ConnectionError("API keys cannot be checked: the database is unreachable")
