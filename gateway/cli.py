"""The command line: serve, migrate, demo, keys create, import FILE, replay, retention [--dry-run],
simulate JOB."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import asyncpg

from . import db, logs
from .settings import Settings, SettingsError

log = logging.getLogger("gateway")
SERVICE_VARS = {"DATABASE_URL": "postgresql://user@host:port/db", "REDIS_URL": "redis://host:port/0"}


def _progress(total: int) -> object:
    def show(n: int) -> None:
        if n % 500 == 0 or n == total:
            width = 30
            done = int(width * n / max(total, 1))
            sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {n}/{total} rows")
            sys.stderr.flush()

    return show


async def _migrate(settings: Settings) -> int:
    from .migrate import migrate

    conn = await db.connect(settings.require_services().database_url or "")
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema up to date")
    return 0


async def _keys_create(settings: Settings, role: str | None, staff_id: int | None, name: str | None) -> int:
    from .auth import command_line_actor, create_key, create_staff_key
    from .errors import Invalid

    if staff_id is None and not name:
        print("keys create: a system key (--role) needs --name", file=sys.stderr)
        return 2
    conn = await db.connect(settings.require_services().database_url or "")
    try:
        if staff_id is not None:
            made = await create_staff_key(conn, staff_id, name, actor=command_line_actor())
            key_id, key, whose = made.id, made.key, f"{made.role} key of staff member {staff_id}, {made.name}"
        else:
            key_id, key = await create_key(conn, role or "", name or "", actor=command_line_actor())
            whose = f"{role}, {name}"
    except Invalid as exc:
        print(f"keys create: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(f"key {key_id} ({whose}) — shown once, store it now:\n{key}")
    return 0


async def _keys_list(settings: Settings) -> int:
    from .auth import list_keys
    from .store.keys import key_events

    conn = await db.connect(settings.require_services().database_url or "")
    try:
        events = await key_events(conn)
        for k in await list_keys(conn):
            print(_key_line(k))
            for e in events.get(k["id"], []):
                print(f"{'':>7}{e['kind']} {e['at']:%Y-%m-%d %H:%M} by {e['actor']}")
    finally:
        await conn.close()
    return 0


def _key_line(k: Mapping[str, Any]) -> str:
    """One key: its id, role, name, whose it is (a staff member's key has the role they have now);
    below it, who made it and who revoked it, and when."""
    from .auth import KEY_ROLE_OF_STAFF

    state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
    role = k["role"] if k["staff_id"] is None else KEY_ROLE_OF_STAFF[k["staff_role"]]
    if k["staff_id"] is None:
        whose = "system key" if k["role"] in ("channel", "admin") else "no staff member: may only read"
    else:
        whose = f"staff {k['staff_id']} ({k['staff_role']}{'' if k['staff_active'] else ', inactive'})"
        if not k["staff_active"] and not k["revoked_at"]:
            state = "refused: staff member inactive"
    return f"{k['id']:>5}  {role:<12}  {k['name']:<30}  {whose:<40}  created {k['created_at']:%Y-%m-%d}  {state}"


async def _keys_revoke(settings: Settings, key_id: int) -> int:
    from .auth import command_line_actor, forget_shared, revoke_key

    conn = await db.connect(settings.require_services().database_url or "")
    try:
        digest = await revoke_key(conn, key_id, command_line_actor())
        if digest is None:
            print(f"keys revoke: there is no key {key_id}", file=sys.stderr)
            return 1
    finally:
        await conn.close()
    await forget_shared(settings.redis_url or "", digest)
    print(f"key {key_id} revoked; every gateway process refuses it within 30 s")
    return 0


async def _import(settings: Settings, path: Path, dry_run: bool = False) -> int:
    from .importer import CsvFormatError, describe_change, import_csv

    text = path.read_text(encoding="utf-8-sig")
    total = max(text.count("\n") - 1, 0)
    conn = await db.connect(settings.require_services().database_url or "")
    try:
        report = await import_csv(conn, text, progress=_progress(total), dry_run=dry_run)  # type: ignore[arg-type]
    except CsvFormatError as exc:
        print(f"\n{path}: {exc}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    sys.stderr.write("\n")
    for err in report.errors[:200]:
        print(f"{path}:{err['line']}: {err['field']}: {err['message']}", file=sys.stderr)
    for change in report.changes[:1000]:
        print(f"{path}:{change['line']}: {describe_change(change)}")
    would = "dry run, nothing written: " if dry_run else ""
    print(f"{would}{report.created} created, {report.updated} updated, {len(report.errors)} rejected")
    return 1 if report.errors else 0


async def _demo(settings: Settings, only_if_empty: bool) -> int:
    from .demo import load_demo

    conn = await db.connect(settings.require_services().database_url or "")
    try:
        print(await load_demo(conn, only_if_empty=only_if_empty))
    finally:
        await conn.close()
    return 0


async def _retention(settings: Settings, dry_run: bool) -> int:
    from zoneinfo import ZoneInfo

    from . import retention
    from .reviews import local_today, utc_now

    limits = retention.Limits.of(settings)
    now = utc_now()
    today = local_today(now, ZoneInfo(settings.tz))
    pool = await db.create_pool(settings.require_services().database_url or "", min_size=1, max_size=2)
    try:
        if dry_run:
            for line in retention.describe(await retention.plan(pool, limits, now, today)):
                print(line)
            return 0

        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        removed = await retention.run(pool, limits, now, today, actor="command line", progress=say)
    finally:
        await pool.close()
    return 1 if removed is None else 0


async def _simulate(settings: Settings, job: int) -> int:
    from .simjob import run_job

    return await run_job(settings.require_services().database_url or "", job, settings.calendar())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="migrate, then serve the API (GATEWAY_HOST:GATEWAY_PORT)")
    sub.add_parser("migrate", help="apply pending migrations")
    demo = sub.add_parser("demo", help="load the demo data set")
    demo.add_argument("--if-empty", action="store_true", help="only when there are no customers yet")
    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser(
        "create",
        help="create a key and print it once: a staff member's (--staff ID) or a system's (--role R --name N)",
    )
    whose = kc.add_mutually_exclusive_group(required=True)
    whose.add_argument("--staff", type=int, metavar="ID", help="the staff member it belongs to; it takes their role")
    whose.add_argument("--role", choices=["channel", "admin"], help="a system key, belonging to no one")
    kc.add_argument("--name", help="required with --role; a staff member's key is named after them by default")
    ksub.add_parser("list", help="list keys (never the keys themselves)")
    kr = ksub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("id", type=int)
    imp = sub.add_parser("import", help="import customers from a housing-system CSV export")
    imp.add_argument("file", type=Path)
    imp.add_argument("--dry-run", action="store_true", help="report what would change without writing")
    sub.add_parser("replay", help="replay spooled contacts into the contact log")
    sim = sub.add_parser("simulate", help="run a recorded rule-set simulation job (the API starts these)")
    sim.add_argument("job", type=int)
    ret = sub.add_parser("retention", help="enforce the retention settings now, with progress")
    ret.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    return p


def _environment(command: str, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The environment a command runs with, with what is unset taken from `make run`'s embedded services,
    and the line that says so. `serve` is left alone: a server takes its services from its configuration."""
    env = dict(environ)
    missing = [name for name in SERVICE_VARS if not env.get(name)]
    if command == "serve" or not missing:
        return env, None
    from . import embedded  # found only, never started: starting services is `make run`'s job

    base = Path(env.get("GATEWAY_EMBEDDED_DIR") or ".gateway")
    found = {name: url for name, url in embedded.running(base).items() if name in missing}
    unfound = [name for name in missing if name not in found]
    if unfound:
        are = "is" if len(unfound) == 1 else "are"
        raise SettingsError(
            f"{' and '.join(unfound)} {are} not set and no embedded service is running under {base.resolve()}/: "
            "start the services with `make run` (in another terminal), or set "
            + " and ".join(f"{name}={SERVICE_VARS[name]}" for name in unfound)
        )
    env.update(found)
    shown = " ".join(f"{name}={url}" for name, url in found.items())
    return env, f"using the embedded services of `make run` under {base}/: {shown}"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """One command; async ones run to completion on a fresh event loop."""
    if args.command == "serve":
        from .serve import serve

        return serve(settings)
    if args.command == "import" and not args.file.is_file():
        print(f"import: {args.file} is not a readable file", file=sys.stderr)
        return 2
    if args.command == "replay":
        from .serve import replay

        return asyncio.run(replay(settings))
    commands: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "migrate": lambda: _migrate(settings),
        "demo": lambda: _demo(settings, args.if_empty),
        "import": lambda: _import(settings, args.file, args.dry_run),
        "retention": lambda: _retention(settings, args.dry_run),
        "simulate": lambda: _simulate(settings, args.job),
        "keys": lambda: (
            _keys_list(settings)
            if args.keys_command == "list"
            else _keys_revoke(settings, args.id)
            if args.keys_command == "revoke"
            else _keys_create(settings, args.role, args.staff, args.name)
        ),
    }
    return asyncio.run(commands[args.command]())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        env, note = _environment(args.command, os.environ)
        settings = Settings.from_env(env)
        if note:
            print(note, file=sys.stderr)
        logs.setup(settings.log_level)
        return _run(args, settings)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ConnectionError) as exc:
        print(f"cannot reach a backing service: {exc}", file=sys.stderr)
        return 3
    except asyncpg.PostgresError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return 3
