"""The command line against the real services: keys create, list and revoke."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.helpers import ROOT, bearer


async def _cli(settings, *args):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_keys_create_list_revoke(settings, client, conn):
    rc, out, _ = await _cli(settings, "keys", "create", "--role", "agent", "--name", "Agent screens")
    assert rc == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("gwk_")
    assert (await client.get("/v1/banners?identifier=07700900001", headers=bearer(key))).status == 200
    key_id = await conn.fetchval("SELECT id FROM api_keys WHERE name = 'Agent screens'")
    rc, out, _ = await _cli(settings, "keys", "list")
    assert rc == 0 and "Agent screens" in out and "active" in out and key not in out
    rc, out, _ = await _cli(settings, "keys", "revoke", str(key_id))
    assert rc == 0
    assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", key_id)
    rc, _, err = await _cli(settings, "keys", "revoke", "99999")
    assert rc == 1 and "no key 99999" in err


async def test_bad_role_is_refused_by_the_cli(settings):
    rc, _, err = await _cli(settings, "keys", "create", "--role", "superuser", "--name", "x")
    assert rc == 2 and "invalid choice" in err
