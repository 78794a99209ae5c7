"""Asterisk / FreePBX FastAGI: read the agi_* environment, decide, answer with SET VARIABLE lines.

Asterisk waits for ever on an AGI script, so every read here has its own deadline; a caller who
hangs up (HANGUP, a 511 reply, or EOF) ends the exchange quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_address

import pydantic
from aiohttp import web

from ..contact import InboundContact, degraded_decision
from ..decide import DecideService, log_rejected
from ..rules.context import StaffView
from ..settings import Settings
from ..state import DECIDER, INDEX, SETTINGS
from .render import flat_fields

log = logging.getLogger(__name__)
_LINE_LIMIT = 8192
_MAX_ENV_LINES = 256
_MAX_VALUE = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# CONTACT_ACTION goes last: if it is empty, the exchange did not finish and the dialplan routes.
VARIABLES = (
    ("CONTACT_ID", "contact_id"),
    ("CONTACT_TARGET_TYPE", "target_type"),
    ("CONTACT_TARGET", "target_id"),
    ("CONTACT_TARGET_NUMBER", "target_number"),
    ("CONTACT_MESSAGE", "message"),
    ("CONTACT_BANNER", "banner"),
    ("CONTACT_FLAGGED", "flagged"),
    ("CONTACT_DEGRADED", "degraded"),
    ("CONTACT_ACTION", "action"),
)


class PeerGone(Exception):
    """The caller hung up or Asterisk went away: stop talking, nothing to report."""


def agi_quote(value: str) -> str:
    """One AGI argument: control characters flattened to spaces, quotes and backslashes escaped."""
    flat = _CONTROL.sub(" ", value)[:_MAX_VALUE]
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def allowed(host: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


class FastAGIServer:
    def __init__(
        self, settings: Settings, service: DecideService, staff: Callable[[], Mapping[int, StaffView]]
    ) -> None:
        self.settings, self.service, self.staff = settings, service, staff
        self.timeout = settings.fastagi_timeout_ms / 1000
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        port = self.settings.fastagi_port or 0
        self._server = await asyncio.start_server(
            self._connected,
            self.settings.fastagi_host,
            port,
            limit=_LINE_LIMIT,
            reuse_port=self.settings.workers > 1 and port != 0,
        )
        log.info("FastAGI listening on %s:%s", self.settings.fastagi_host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._session(reader, writer)
        except PeerGone:
            log.info("FastAGI: the caller hung up or Asterisk closed the connection")
        except Exception:  # one bad connection must never take the server down
            log.exception("FastAGI session failed")
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        if not allowed(host, self.settings.fastagi_allow):
            writer.close()
            log.warning("FastAGI: refused a connection from %s (not in FASTAGI_ALLOW)", host)
            await log_rejected(
                self.service,
                channel="phone",
                sender="",
                provider_id=None,
                status="rejected",
                error=f"FastAGI connection from {host} refused: not in FASTAGI_ALLOW",
            )
            return
        env, problem = await self._read_env(reader)
        if problem:
            await log_rejected(
                self.service,
                channel="phone",
                sender=env.get("agi_callerid", ""),
                provider_id=env.get("agi_uniqueid"),
                status="malformed",
                error=f"FastAGI from {host}: {problem}",
            )
            return
        fields = await self._decide(env)
        await self._answer(reader, writer, fields)

    async def _read_env(self, reader: asyncio.StreamReader) -> tuple[dict[str, str], str | None]:
        """The agi_* block up to its blank line, within the deadline; garbage lines are skipped."""
        env: dict[str, str] = {}
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(_MAX_ENV_LINES):
                    line = await _readline(reader)
                    if line is None:
                        return env, "connection closed before the end of the AGI environment"
                    if not line:
                        break
                    name, sep, value = line.partition(":")
                    if sep and name.startswith("agi_"):
                        env[name.strip()] = value.strip()
                    else:
                        log.info("FastAGI: skipped a line that is not agi_*: %.80r", line)
                else:
                    return env, f"more than {_MAX_ENV_LINES} lines of AGI environment"
        except TimeoutError:
            return env, f"no complete AGI environment within {self.timeout:g} s"
        return env, None if env else "an empty AGI environment"

    async def _decide(self, env: dict[str, str]) -> dict[str, str]:
        dnid = env.get("agi_dnid", "")
        raw = {
            "channel": "phone",
            "from": env.get("agi_callerid", ""),
            "to": dnid if dnid and dnid != "unknown" else None,
            "provider_id": env.get("agi_uniqueid") or None,
        }
        try:
            contact = InboundContact.model_validate(raw)
        except pydantic.ValidationError as exc:  # the call is waiting: log it, give the safe answer
            await log_rejected(
                self.service,
                channel="phone",
                sender=str(raw["from"])[:320],
                provider_id=raw["provider_id"],
                status="malformed",
                error=str(exc),
            )
            return flat_fields(degraded_decision("", "malformed AGI environment"), {})
        decision, _ = await self.service.decide(contact)
        return flat_fields(decision, self.staff())

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fields: dict[str, str]) -> None:
        for name, key in VARIABLES:
            writer.write(f"SET VARIABLE {name} {agi_quote(fields[key])}\n".encode())
            try:
                async with asyncio.timeout(self.timeout):
                    await writer.drain()
                    reply = await _reply(reader)
            except TimeoutError:
                log.warning("FastAGI: no reply to SET VARIABLE %s within %g s", name, self.timeout)
                return
            if not reply.startswith("200 result=1"):
                log.warning("FastAGI: SET VARIABLE %s answered %.120r; stopping", name, reply)
                return


async def _readline(reader: asyncio.StreamReader) -> str | None:
    """One line without its line ending; None at EOF. An over-long line comes back as garbage."""
    try:
        raw = await reader.readline()
    except ValueError:  # longer than the stream limit; the reader has discarded it
        return "<over-long line>"
    if not raw:
        return None
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def _reply(reader: asyncio.StreamReader) -> str:
    """The reply to one command; PeerGone if the caller hung up (HANGUP, 511, EOF)."""
    line = await _readline(reader)
    if line is None or line == "HANGUP" or line.startswith("511"):
        raise PeerGone
    if line.startswith("520-"):  # multi-line usage text, ends with "520 End of proper usage."
        while line is not None and not line.startswith("520 "):
            line = await _readline(reader)
    return line or ""


def setup(app: web.Application) -> None:
    if app[SETTINGS].fastagi_port is not None:
        app.cleanup_ctx.append(_serve)


async def _serve(app: web.Application) -> AsyncIterator[None]:
    index = app[INDEX]
    server = FastAGIServer(app[SETTINGS], app[DECIDER], lambda: index.staff)
    await server.start()
    app[FASTAGI] = server
    yield
    await server.close()


FASTAGI: web.AppKey[FastAGIServer] = web.AppKey("fastagi", FastAGIServer)
