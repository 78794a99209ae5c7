"""`make run`'s admin key: kept between starts, replaced when revoked or lost, never piling up."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys

from gateway.auth import active_key_id, create_key, revoke_key
from gateway.devrun import KEY_NAME, admin_key
from tests.factory import SET_UP, bearer
from tests.helpers import ROOT


async def _active_run_keys(conn) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM api_keys WHERE role = 'admin' AND name = $1 AND revoked_at IS NULL", KEY_NAME
    )
    return [r["id"] for r in rows]


async def test_a_second_start_reuses_the_key(conn, client, tmp_path):
    path = tmp_path / "admin-key"
    first = await admin_key(conn, path)
    second = await admin_key(conn, path)
    assert first == second
    assert await _active_run_keys(conn) == [await active_key_id(conn, first)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (await client.get("/v1/rulesets", headers=bearer(first))).status == 200


async def test_a_revoked_or_lost_key_is_replaced_and_earlier_ones_revoked(conn, tmp_path):
    piled_up = [
        await create_key(conn, "admin", KEY_NAME, actor=SET_UP) for _ in range(3)
    ]  # one per start, before keys were kept
    other_id, _ = await create_key(conn, "admin", "operations", actor=SET_UP)
    path = tmp_path / "admin-key"
    first = await admin_key(conn, path)
    assert first not in {key for _, key in piled_up}
    assert await _active_run_keys(conn) == [await active_key_id(conn, first)]
    first_id = await active_key_id(conn, first)
    assert first_id is not None and await revoke_key(conn, first_id, SET_UP)
    second = await admin_key(conn, path)
    assert second != first and path.read_text().strip() == second
    assert await _active_run_keys(conn) == [await active_key_id(conn, second)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await active_key_id(conn, "not a key") is None
    assert await conn.fetchval("SELECT revoked_at IS NULL FROM api_keys WHERE id = $1", other_id)


async def _make_run(settings, base) -> asyncio.subprocess.Process:
    """`make run` started against the test services, its output (stderr) piped to the test."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "GATEWAY_EMBEDDED_DIR": str(base),
        "GATEWAY_SPOOL_DIR": settings.spool_dir,
        "GATEWAY_PORT": "0",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.devrun", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )


async def _start_and_read_key(settings, base) -> str:
    """One `make run` start against the test services, up to its banner; then stopped with a plain kill."""
    proc = await _make_run(settings, base)
    assert proc.stderr is not None
    key = None
    try:
        async with asyncio.timeout(30):
            while key is None and (line := (await proc.stderr.readline()).decode()):
                if line.startswith("Admin key"):
                    key = line.split()[-1]
    finally:
        proc.terminate()
        async with asyncio.timeout(30):
            await proc.communicate()  # its output ends when the server it started has stopped too
    assert key is not None, "`make run` ended without printing a key"
    return key


async def test_two_starts_print_the_same_key_and_leave_one(settings, conn, tmp_path):
    first = await _start_and_read_key(settings, tmp_path)
    second = await _start_and_read_key(settings, tmp_path)
    assert first == second and first.startswith("gwk_")
    assert await _active_run_keys(conn) == [await active_key_id(conn, first)]


async def test_a_stop_signalled_again_and_again_stops_make_run_once_and_cleanly(settings, tmp_path):
    """Ctrl-C in a terminal signals `make run` and its server; an impatient operator presses it again.
    Each stop after the first is neither passed on again nor a traceback, and the output ends (so the
    server has stopped too) well inside the server's own stop budget."""
    proc = await _make_run(settings, tmp_path)
    assert proc.stderr is not None
    said = b""
    async with asyncio.timeout(30):
        while b"contact gateway serving" not in said and (line := await proc.stderr.readline()):
            said += line  # the banner, then the server's line once it is past its migrations
    assert b"Admin key" in said
    await asyncio.sleep(0.3)  # its worker starting up
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        proc.send_signal(signum)
        await asyncio.sleep(0.01)
    async with asyncio.timeout(15):
        rest, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"Traceback" not in said + (rest or b"")


async def test_a_malformed_setting_stops_make_run_with_one_line_naming_it(settings, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "GATEWAY_EMBEDDED_DIR": str(tmp_path),
        "GATEWAY_WORKERS": "0",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.devrun", env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    said = err.decode()
    assert said.startswith("configuration error: GATEWAY_WORKERS") and "Traceback" not in said
    assert said.count("\n") == 1
