"""Test helpers: build real rows through the API, run real gateway processes, wait for conditions."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def deciders(client: Any, headers: dict[str, str]) -> list[int]:
    """A service caution lead and two caution leads: the default activation rule."""
    ids = []
    for name, role in (("Priya", "service_caution_lead"), ("Tom", "caution_lead"), ("Grace", "caution_lead")):
        r = await client.post("/v1/staff", headers=headers, json={"name": name, "role": role})
        assert r.status == 201, await r.text()
        ids.append((await r.json())["id"])
    return ids


async def customer(client: Any, headers: dict[str, str], name: str, *identifiers: tuple[str, str], **extra: Any) -> int:
    r = await client.post(
        "/v1/customers",
        headers=headers,
        json={"name": name, "identifiers": [{"kind": k, "value": v} for k, v in identifiers], **extra},
    )
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


async def restrict(
    client: Any,
    headers: dict[str, str],
    customer_id: int,
    kind: str,
    decided_by: list[int],
    params: dict[str, Any] | None = None,
    channels: list[str] | None = None,
) -> dict[str, Any]:
    today = date.today()
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "kind": kind,
        "params": {"kind": kind, **(params or {})},
        "reason_category": "unreasonable_persistence",
        "reasons": "Repeated calls about the same matter.",
        "incidents": [{"on": str(today - timedelta(days=10)), "description": "Twelve calls in one day."}],
        "warned_on": str(today - timedelta(days=5)),
        "deciders": decided_by,
        "valid_from": str(today - timedelta(days=1)),
    }
    if channels:
        body["channels"] = channels
    r = await client.post("/v1/restrictions", headers=headers, json=body)
    assert r.status == 201, await r.text()
    out: dict[str, Any] = await r.json()
    assert out["status"] == "active", out
    return out


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 2.0) -> float:
    """Poll until `check` holds; returns the seconds it took. Fails the test after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await check():
            return loop.time() - start
        if loop.time() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """`python -m gateway serve` as a real child process on its own port."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_SPOOL_DIR": settings.spool_dir + f"-{self.port}",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> GatewayProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as s:

            async def ready() -> bool:
                try:
                    async with s.get(self.url + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)
