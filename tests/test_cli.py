"""The command line against the real services: keys create, list and revoke, and finding `make run`'s services."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gateway import embedded
from tests.factory import bearer
from tests.helpers import ROOT, run_cli


async def _cli(settings, *args):
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    return await run_cli(env, *args)


async def test_keys_create_list_revoke(settings, client, conn, team):
    rc, out, _ = await _cli(settings, "keys", "create", "--staff", str(team.agent.id), "--name", "Agent screens")
    assert rc == 0 and f"agent key of staff member {team.agent.id}, Agent screens" in out
    key = out.strip().splitlines()[-1]
    assert key.startswith("gwk_")
    assert (await client.get("/v1/banners?identifier=07700900001", headers=bearer(key))).status == 200
    key_id = await conn.fetchval("SELECT id FROM api_keys WHERE name = 'Agent screens'")
    rc, out, _ = await _cli(settings, "keys", "list")
    assert rc == 0 and key not in out
    (line,) = [line for line in out.splitlines() if "Agent screens" in line]
    assert f"staff {team.agent.id} (agent)" in line and line.endswith("active")
    rc, out, _ = await _cli(settings, "keys", "revoke", str(key_id))
    assert rc == 0
    assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", key_id)
    rc, out, _ = await _cli(settings, "keys", "list")
    listed = out.splitlines()
    at = next(i for i, line in enumerate(listed) if "Agent screens" in line)
    assert "revoked" in listed[at]
    # Under it, who made it and who revoked it: the account the command line ran as, on this machine.
    assert listed[at + 1].split()[0] == "created" and "by command line: " in listed[at + 1]
    assert listed[at + 2].split()[0] == "revoked" and "by command line: " in listed[at + 2]
    rc, _, err = await _cli(settings, "keys", "revoke", "99999")
    assert rc == 1 and "no key 99999" in err


async def test_a_staff_members_key_takes_their_name_and_role(settings, client, team):
    rc, out, _ = await _cli(settings, "keys", "create", "--staff", str(team.senior.id))
    assert rc == 0 and f"manager key of staff member {team.senior.id}, David Lee" in out
    key = out.strip().splitlines()[-1]
    assert (await client.get("/v1/rulesets", headers=bearer(key))).status == 200
    rc, _, err = await _cli(settings, "keys", "create", "--staff", "99999")
    assert rc == 2 and "staff member 99999 does not exist or is inactive" in err


async def test_bad_keys_are_refused_by_the_cli(settings, team):
    rc, _, err = await _cli(settings, "keys", "create", "--role", "superuser", "--name", "x")
    assert rc == 2 and "invalid choice" in err
    rc, _, err = await _cli(settings, "keys", "create", "--role", "caution_lead", "--name", "shared")
    assert rc == 2 and "invalid choice" in err  # a person's key belongs to a staff member
    rc, _, err = await _cli(settings, "keys", "create", "--role", "channel")
    assert rc == 2 and "needs --name" in err
    rc, _, err = await _cli(settings, "keys", "create", "--role", "admin", "--staff", str(team.scl.id))
    assert rc == 2 and "not allowed with argument" in err


def _embedded_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "GATEWAY_EMBEDDED_DIR": str(base), **extra}


async def test_commands_use_the_running_embedded_services_when_nothing_is_set():
    # `make test` runs the suite on the embedded services, exactly as `make run` leaves them running.
    base = ROOT / os.environ.get("GATEWAY_EMBEDDED_DIR", ".gateway")
    urls = embedded.running(base)
    if set(urls) != {"DATABASE_URL", "REDIS_URL"}:
        pytest.skip(f"no embedded services running under {base}: the suite runs on external ones")
    env = _embedded_env(base)
    rc, _, err = await run_cli(env, "migrate")
    assert rc == 0, err
    said = [line for line in err.splitlines() if "embedded services" in line]
    assert len(said) == 1 and urls["DATABASE_URL"] in said[0] and urls["REDIS_URL"] in said[0]
    rc, _, err = await run_cli(env, "keys", "list")  # read only: this is the developer's own database
    assert rc == 0, err
    assert [line for line in err.splitlines() if "embedded services" in line] == said


def _stale_port_files(base: Path) -> None:
    """What `make stop` leaves: port files naming ports nothing listens on."""
    for service in ("pg", "redis"):
        (base / service).mkdir(parents=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (base / service / "port").write_text(str(port))


@pytest.mark.parametrize("stale", [False, True], ids=["never started", "stopped"])
async def test_without_services_the_error_names_the_variables_and_make_run(tmp_path, stale):
    if stale:
        _stale_port_files(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    rc, out, err = await run_cli(_embedded_env(tmp_path), "keys", "list")
    assert rc == 2 and out == ""
    assert "DATABASE_URL and REDIS_URL are not set" in err and "`make run`" in err and str(tmp_path) in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing was started
    assert embedded.running(tmp_path) == {}


async def test_only_the_unset_variable_is_reported(settings, tmp_path):
    rc, _, err = await run_cli(_embedded_env(tmp_path, DATABASE_URL=settings.database_url), "keys", "list")
    assert rc == 2 and "REDIS_URL is not set" in err and "`make run`" in err and "DATABASE_URL" not in err
