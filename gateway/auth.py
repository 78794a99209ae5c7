"""API keys: generation, hashing, and lookup (with a short in-process cache) of who is calling: a system
(channel, admin) or a staff member, whose key role follows their staff role."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import hashlib
import json
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import Invalid
from .lifecycle import Actor, staff_actor
from .rediskeys import API_KEY
from .store import keys as store
from .store.keys import list_keys as list_keys  # re-exported: the command line and tests use them from here
from .store.keys import revoke_key as revoke_key

ROLES = ("channel", "agent", "manager", "caution_lead", "admin")
# Keys for calling systems; they belong to no one.
SYSTEM_ROLES = ("channel", "admin")
# A person's key takes its role from their staff role (DESIGN §2, §7): a service caution lead calls
# what a caution lead calls, a senior manager what a manager calls; the lifecycle then checks the
# staff role itself (who fills which decider slot, who is senior enough for an appeal).
KEY_ROLE_OF_STAFF = {
    "agent": "agent",
    "caution_lead": "caution_lead",
    "service_caution_lead": "caution_lead",
    "manager": "manager",
    "senior_manager": "manager",
}
KEY_PREFIX = "gwk_"
_CACHE_SECONDS = 30.0
# Keys refused (unknown or revoked) are remembered apart, the oldest forgotten first beyond this many:
# a caller sending made-up keys can push out only its own, never the keys of the integrations at work.
REFUSED_KEPT = 10_000
LOOKUP_SECONDS = 0.5
# The database cannot answer now (not: the key is bad): away, still starting (CannotConnectNow),
# shutting down, cancelled or out of connections. A key lookup raises nothing else of its own.
DATABASE_AWAY = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_SHARED_SECONDS = 3_600  # how long another process's answer may stand in for the database


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str
    staff_id: int | None = None
    staff_role: str | None = None
    staff_name: str | None = None

    @property
    def reads_only(self) -> bool:
        """A person's key made before keys belonged to staff members: it may read, and nothing more."""
        return self.staff_id is None and self.role not in SYSTEM_ROLES

    @property
    def actor(self) -> Actor:
        """How this caller is named in audit records: the staff member when a person signed in."""
        if self.staff_id is not None:
            return staff_actor(self.staff_id, self.staff_name or "")
        return Actor(f"key:{self.key_id}:{self.name}")


def _principal(row: Mapping[str, Any]) -> Principal:
    if row["staff_id"] is None:
        return Principal(row["id"], row["name"], row["role"])
    staff_role = row["staff_role"]
    return Principal(
        row["id"], row["name"], KEY_ROLE_OF_STAFF[staff_role], row["staff_id"], staff_role, row["staff_name"]
    )


def hash_key(key: str) -> bytes:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is enough: no dictionary to attack.
    return hashlib.sha256(key.encode()).digest()


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("name must be 1 to 100 characters", [{"field": "name"}])
    return name


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, role: str, name: str, *, actor: Actor) -> tuple[int, str]:
    """A system key (channel or admin), made by `actor` (recorded); the key itself is returned once
    and never stored."""
    if role not in SYSTEM_ROLES:
        if role in ROLES:
            raise Invalid(
                f"a {role} key is a person's: it belongs to a staff member and takes their role "
                "(keys create --staff ID, or staff_id in POST /v1/keys)",
                [{"field": "role"}],
            )
        raise Invalid(f"role must be one of {', '.join(SYSTEM_ROLES)}", [{"field": "role"}])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return await store.insert_key(conn, _name(name), role, hash_key(key), actor), key


@dataclass(frozen=True)
class StaffKey:
    """A key just made for a staff member; `key` is shown once and never stored."""

    id: int
    key: str
    role: str
    name: str
    staff_id: int


async def create_staff_key(
    conn: asyncpg.Connection | asyncpg.Pool, staff_id: int, name: str | None = None, *, actor: Actor
) -> StaffKey:
    """A key for one staff member, named after them unless `name` is given; its role follows theirs.
    Made by `actor` (recorded)."""
    member = await store.staff_member(conn, staff_id)
    if member is None or not member["active"]:
        raise Invalid(f"staff member {staff_id} does not exist or is inactive", [{"field": "staff_id"}])
    role = KEY_ROLE_OF_STAFF[member["role"]]
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    name = _name(name or member["name"][:100])  # staff names may be longer than key names
    key_id = await store.insert_key(conn, name, role, hash_key(key), actor, staff_id)
    return StaffKey(key_id, key, role, name, staff_id)


def command_line_actor() -> Actor:
    """Who acts from `python -m gateway keys ...`: the account on the machine it runs on."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # an account with no name (a container's numeric user)
        user = f"uid {os.getuid()}"
    return Actor(f"command line: {user}@{socket.gethostname()}")


async def active_key_id(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> int | None:
    """The id of `key` if it is a stored key that has not been revoked."""
    row = await store.active_key(conn, hash_key(key))
    return None if row is None else int(row["id"])


async def key_now(pool: asyncpg.Pool, key: str) -> Principal | None:
    """Who `key` is now, asked of the database itself (not a KeyRing's memory): None once it is
    revoked or its staff member is inactive. For a request that stays open (a banner stream)."""
    row = await store.active_key(pool, hash_key(key))
    return None if row is None else _principal(row)


class KeyRing:
    """Resolves bearer keys to principals without ever making a caller wait on a slow database.

    A key seen in the last 30 s is answered from memory. An older answer is still given at once
    while it is checked again in the background (one check per key at a time), so a revoked key
    works for at most one more request. A key not seen yet is looked up within LOOKUP_SECONDS; if
    the database does not answer in time (hung, restarting, away), the answer another process left
    in Redis serves, and without one the caller gets 503.
    """

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis | None = None, ttl: float = _CACHE_SECONDS) -> None:
        self._pool = pool
        self._redis = redis
        self._ttl = ttl
        self._cache: dict[bytes, tuple[float, Principal]] = {}  # keys that are good, by digest
        self._refused: OrderedDict[bytes, float] = OrderedDict()  # refused keys: when to check again
        self._checking: dict[bytes, asyncio.Task[Principal | None]] = {}

    async def resolve(self, key: str) -> Principal | None:
        digest = hash_key(key)
        hit = self._remembered(digest)
        if hit is None:
            return await self._lookup(digest)
        if hit[0] <= time.monotonic():
            self._check(digest)  # stale: answered now, checked again behind it
        return hit[1]

    def known(self, key: str) -> Principal | None:
        """Who `key` is, if this process holds a recognised, unrevoked answer for it (checked again
        behind it when stale, as `resolve` does); None for anything `resolve` has to ask about or
        would refuse. For the lean edge (gateway.edge), which never waits and never refuses."""
        digest = hash_key(key)
        hit = self._remembered(digest)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._check(digest)
        return hit[1]

    def _remembered(self, digest: bytes) -> tuple[float, Principal | None] | None:
        """(when to check again, who) as this process last heard; None if it has not heard."""
        hit = self._cache.get(digest)
        if hit is not None:
            return hit
        until = self._refused.get(digest)
        return None if until is None else (until, None)

    async def _lookup(self, digest: bytes) -> Principal | None:
        """A key not seen yet: the database's answer if it comes in time, else what Redis holds.
        A check that did not finish in time is left to finish on its own: waiting for a hung
        connection to be cancelled would hold the caller as long as the hang."""
        check = self._check(digest)
        done, _ = await asyncio.wait({check}, timeout=LOOKUP_SECONDS)
        if done and check.exception() is None:
            return check.result()
        if done and not isinstance(check.exception(), DATABASE_AWAY):
            return check.result()  # raises what the database said
        return await self._shared(digest)

    def _check(self, digest: bytes) -> asyncio.Task[Principal | None]:
        """One check per key at a time, whoever asks."""
        task = self._checking.get(digest)
        if task is None:
            task = asyncio.create_task(self._fetch(digest))
            self._checking[digest] = task
            task.add_done_callback(lambda t: (self._checking.pop(digest, None), t.cancelled() or t.exception()))
        return task

    async def _fetch(self, digest: bytes) -> Principal | None:
        row = await store.active_key(self._pool, digest)
        principal = _principal(row) if row else None
        until = time.monotonic() + self._ttl
        if principal is None:
            self._cache.pop(digest, None)
            self._refused[digest] = until
            self._refused.move_to_end(digest)
            while len(self._refused) > REFUSED_KEPT:
                self._refused.popitem(last=False)
        else:
            self._refused.pop(digest, None)
            self._cache[digest] = (until, principal)
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


async def forget_shared(redis_url: str, digest: bytes) -> None:
    """Remove a revoked key's answer that processes share through Redis, so no process that has not
    seen the key can accept it from there while the database is slow. Best effort: it expires anyway."""
    client = aioredis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await client.delete(API_KEY + digest.hex())
    finally:
        await client.aclose()
