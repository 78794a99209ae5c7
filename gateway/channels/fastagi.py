"""Asterisk / FreePBX FastAGI: read the agi_* environment, decide, answer with SET VARIABLE lines.

Asterisk waits for ever on an AGI script, so every read here has its own deadline; a caller who
hangs up (HANGUP, a 511 reply, or EOF) ends the exchange quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from ipaddress import IPv4Network, IPv6Network, ip_address

import pydantic
from aiohttp import web

from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..runtime import RUNTIME, Runtime
from .base import drive
from .render import flat_fields

log = logging.getLogger(__name__)
_LINE_LIMIT = 8192
_MAX_ENV_LINES = 256
_MAX_VALUE = 1000
_KEPT_END = 300  # of a value cut to _MAX_VALUE, this much of its end is kept
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
    """One AGI argument: control characters flattened to spaces, quotes and backslashes escaped. A
    value over _MAX_VALUE loses its middle, not its end: a deflection's message ends with how to
    report an emergency, which a caller turned away must still hear."""
    flat = _CONTROL.sub(" ", value)
    if len(flat) > _MAX_VALUE:
        flat = flat[: _MAX_VALUE - _KEPT_END - 3] + " … " + flat[-_KEPT_END:]
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def allowed(host: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


class FastAGIChannel:
    """The channel half: the agi_* environment in, SET VARIABLE values out."""

    name = "fastagi"
    description = "Asterisk / FreePBX FastAGI server"

    async def parse(self, raw: dict[str, str], rt: Runtime) -> InboundContact | Rejected:
        dnid = raw.get("agi_dnid", "")
        caller, call_id = raw.get("agi_callerid", ""), raw.get("agi_uniqueid") or None
        to = dnid if dnid and dnid != "unknown" else None
        try:
            return InboundContact.model_validate({"channel": "phone", "from": caller, "to": to, "provider_id": call_id})
        except pydantic.ValidationError as exc:  # the call is waiting: logged, then the safe answer
            return Rejected("malformed", str(exc), "phone", caller, call_id)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> dict[str, str]:
        return flat_fields(decision, rt.index.staff)


class FastAGIServer:
    """The transport half: a TCP server for Asterisk, each connection bounded by its own deadlines."""

    def __init__(self, rt: Runtime, channel: FastAGIChannel) -> None:
        self.rt, self.settings, self.channel = rt, rt.settings, channel
        self.timeout = self.settings.fastagi_timeout_ms / 1000
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
        if not allowed(host, self.settings.fastagi_allow):  # FastAGI authenticates by source address
            writer.close()
            log.warning("FastAGI: refused a connection from %s (not in FASTAGI_ALLOW)", host)
            why = f"FastAGI connection from {host} refused: not in FASTAGI_ALLOW"
            await self.rt.decide.log_rejected(Rejected("rejected", why, "phone", address=host))
            return
        env, problem = await self._read_env(reader)
        if problem:  # nobody is left to answer: logged, and the dialplan routes on an empty result
            error = f"FastAGI from {host}: {problem}"
            caller, call_id = env.get("agi_callerid", ""), env.get("agi_uniqueid")
            await self.rt.decide.log_rejected(Rejected("malformed", error, "phone", caller, call_id))
            return
        await self._answer(reader, writer, await drive(self.channel, env, self.rt))

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


async def serve_fastagi(app: web.Application) -> AsyncIterator[None]:
    """Started with the app when FASTAGI_PORT is set."""
    rt = app[RUNTIME]
    if rt.settings.fastagi_port is None:
        yield
        return
    server = FastAGIServer(rt, FastAGIChannel())
    await server.start()
    app[FASTAGI] = server
    yield
    await server.close()


FASTAGI: web.AppKey[FastAGIServer] = web.AppKey("fastagi", FastAGIServer)
