"""What a worker's first contacts load is frozen with its index, so the cyclic collector's full
collections stay short under load (gateway/runtime.py, gateway/identifiers.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from gateway.settings import Settings
from tests.factory import insert_customer, insert_restriction

# Run in a process of its own: the test process holds far too much else to count a worker's objects.
FIRST_CONTACTS = """
import asyncio, collections, gc, json, sys
import redis.asyncio as aioredis
from gateway import db
from gateway.contact import InboundContact
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.factory import insert_customer, insert_restriction

async def main():
    settings = Settings.from_env()
    pool = await db.create_pool(settings.database_url)
    redis = aioredis.from_url(settings.redis_url)
    runtime = await Runtime.open(settings, pool, redis)
    assert runtime.index.loaded
    modules = set(sys.modules)
    for n in range(200):
        channel, sender = ("phone", f"07700 9{n:05d}") if n % 2 else ("email", f"tenant{n}@example.org")
        channel, sender = ("phone", "07700 900001") if n == 0 else (channel, sender)
        body = {"channel": channel, "from": sender, "provider_id": f"heap-{n}", "subject": "Repair"}
        await runtime.decide.decide(InboundContact.model_validate(body))
    gc.collect()
    tracked = gc.get_objects()  # what a full collection walks: frozen objects are not among them
    kinds = collections.Counter(type(o).__name__ for o in tracked)
    holidays = [o for o in tracked if isinstance(o, type) and o.__module__.startswith("holidays")]
    print(json.dumps({
        "modules": sorted(set(sys.modules) - modules), "handles": kinds["SenderHandle"], "holidays": len(holidays)
    }))
    await runtime.close()
    await pool.close()
    await redis.aclose()

asyncio.run(main())
"""


async def test_the_first_contacts_leave_little_for_full_collections_to_walk(settings: Settings, conn):
    """The bank holidays' library (every country's calendar, ~10,000 objects) is loaded before the
    index load freezes the process's objects, not by the first contact; and the senders kept are
    tuples the collector stops tracking, not 200 objects it walks on every full collection."""
    # A caller allowed at set times: deciding on them reads the calendar (and the bank holidays).
    cid = await insert_customer(conn, "Set Times", ("phone", "07700 900001"))
    windows = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "10:00"}]
    await insert_restriction(conn, cid, {"kind": "set_times", "windows": windows})
    env = {**os.environ, "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_CONTACTS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert not [m for m in seen["modules"] if m.startswith("holidays")], seen["modules"]
    assert seen["holidays"] == 0  # loaded before the index froze the process, so never walked
    assert seen["handles"] == 0
