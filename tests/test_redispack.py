"""Redis commands packed by hiredis (gateway/redispack.py): the bytes redis-py would send, on the
app's own pool, for single commands, multi-word ones, scripts with many arguments and pipelines."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from gateway.appkeys import REDIS
from gateway.redispack import packed_by_hiredis

ARGS = [
    ("SET", "k", "v"),
    ("SET", b"k", 1),
    ("SET", "k", 1.5),
    ("EXPIRE", "k", 10**12),
    ("SET", "ké", "vé€"),
    ("SET", "k", memoryview(b"abc")),
    ("CLIENT SETNAME", "gateway"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", *[b'@digest\n"id"\n"at"', 86400] * 200),
]


@pytest.mark.parametrize("args", ARGS, ids=lambda a: str(a[0]))
def test_the_bytes_are_those_redis_py_packs(args: tuple[Any, ...]) -> None:
    pool = packed_by_hiredis(aioredis.ConnectionPool())
    packed = pool.connection_class().pack_command(*args)
    assert len(packed) == 1  # one piece, made in C
    assert packed[0] == b"".join(bytes(p) for p in Connection().pack_command(*args))


def test_a_value_redis_cannot_hold_is_refused_as_redis_py_refuses_it() -> None:
    conn = packed_by_hiredis(aioredis.ConnectionPool()).connection_class()
    for value in (None, True):
        with pytest.raises(DataError):
            conn.pack_command("SET", "k", value)


@pytest.mark.asyncio
async def test_the_app_s_redis_packs_with_hiredis_and_answers(client: TestClient[Any, Any]) -> None:
    redis: aioredis.Redis = client.server.app[REDIS]
    assert redis.connection_pool.connection_class.__name__.startswith("HiredisPacking")
    await redis.set("redispack:k", "vé€", ex=60)
    assert await redis.get("redispack:k") == "vé€".encode()
    await redis.client_setname("gateway-test")  # a command of two words
    assert await redis.client_getname() in ("gateway-test", b"gateway-test")
    many = [f"redispack:{i}" for i in range(300)]
    script = redis.register_script(
        "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[i], 'EX', 60) end return #KEYS"
    )
    assert await script(keys=many, args=[f"v{i}" for i in range(300)]) == 300
    async with redis.pipeline(transaction=False) as pipe:
        for k in many[:50]:
            pipe.get(k)
        assert await pipe.execute() == [f"v{i}".encode() for i in range(50)]


def test_a_pool_told_to_encode_otherwise_keeps_redis_py_s_packer() -> None:
    """hiredis knows only strict UTF-8: a pool given another encoding (REDIS_URL's `encoding`) is
    left as it was, and packs text as it was told to."""
    plain = aioredis.ConnectionPool().connection_class
    for kwargs in ({"encoding": "latin-1"}, {"encoding_errors": "replace"}):
        pool = packed_by_hiredis(aioredis.ConnectionPool(**kwargs))
        assert pool.connection_class is plain, kwargs
    latin = packed_by_hiredis(aioredis.ConnectionPool.from_url("redis://127.0.0.1/0?encoding=latin-1"))
    assert b"".join(latin.make_connection().pack_command("SET", "k", "é")).endswith(b"\xe9\r\n")
