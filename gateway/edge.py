"""The lean edge: the plain calls of the busiest routes answered without aiohttp's per-request machinery.

Every connection a worker accepts starts here. Two routes have a plain case, answered here:
- `POST /v1/contacts` with a JSON body and a key this process already knows for a role the route
  allows, the body describing a contact (the generic channel's `contact_of`, the driver's `checked`);
- `POST /v1/channels/twilio/voice` (and its query, as Twilio signed it) with a URL-encoded UTF-8
  form that Twilio signed and that describes a call (the Twilio channel's `plain_call`): phone calls,
  most of a provider's traffic, come this way.
Both over HTTP/1.1 with a Content-Length. Each is decided by the same decide service and answered
with the same reply as through aiohttp: the channel's reply body and type, the security headers and
X-Request-Id. On a 2-core Xeon aiohttp spends 143–162 µs of CPU on a request and a bare protocol
20–22; in the gateway the edge took 234–282 µs off a decision at saturation (bench/RESULTS.md,
2026-11-27).

Anything else — another path or method, a key not seen yet or refused, a body that is not a contact,
a signature that is not Twilio's, chunked or `Expect`, `Connection: close`, HTTP/1.0, a header given
twice or a head that is not plain printable text — is
handed over, with every byte not yet answered, to aiohttp's own protocol for the connection, which
serves it from then on exactly as before. So every refusal, every error reply and the logging of
rejected attempts stay where they were (gateway.http, the channel driver); the edge only ever
answers what aiohttp would have answered 201 or 200. `GATEWAY_LEAN_EDGE=0` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive

from . import logs, metrics
from .appkeys import KEYRING
from .channels import twilio
from .channels.base import checked, reply_body
from .channels.generic import GenericChannel
from .contact import Decision, InboundContact
from .decide import Rejected
from .errors import GatewayError
from .http import MAX_BODY, ROUTE_ROLES, error_reply, log_request
from .inputs import is_json_type, json_of
from .randomid import new_hex
from .runtime import RUNTIME
from .web.security import NOT_FRAMED_HEADERS

log = logging.getLogger(__name__)

PATH = GenericChannel.mount.path
VOICE = twilio.VOICE_PATH
_REQUEST_LINE = b"POST " + PATH.encode() + b" HTTP/1.1"
# A voice webhook's request line: its path, and any query Twilio was given with the URL (signed with it).
_VOICE_LINE = re.compile(
    rb"POST (" + re.escape(VOICE.encode()) + rb"(?:\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?) HTTP/1\.1"
)
_LINE_STARTS = (_REQUEST_LINE + b"\r\n", b"POST " + VOICE.encode())
_HEAD_MAX = 16 * 1024  # a longer head goes to aiohttp, whose limits and refusals apply
_HEADERS_MAX, _FIELD_MAX = 128, 8190  # more headers, or a longer line, go to aiohttp (its own limits)
KEEP_ALIVE = 75.0  # seconds an idle connection is kept, as aiohttp keeps one
_SWEEP_EVERY = 10.0
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
# Headers that change how the request is read or answered: aiohttp handles those.
_HANDED = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"content-encoding", b"sec-websocket-key1"})
# Headers aiohttp refuses to see twice, and those the edge reads: given twice, aiohttp serves it.
_SINGLE = frozenset(
    {
        b"content-length",
        b"content-type",
        b"host",
        b"transfer-encoding",
        b"user-agent",
        b"content-location",
        b"content-range",
        b"etag",
        b"max-forwards",
        b"server",
        b"authorization",
        b"x-request-id",
        b"connection",
        b"x-twilio-signature",
    }
)
_FIXED = b"".join(b"\r\n%s: %s" % (n.encode(), v.encode()) for n, v in NOT_FRAMED_HEADERS) + b"\r\n\r\n"
_SERVER = SERVER_SOFTWARE.encode()
_WAIT = object()  # the request is not complete yet
_ANSWERED, _HANDED_OVER = metrics.LEAN_EDGE.labels("answered"), metrics.LEAN_EDGE.labels("handed_over")


class Edge:
    """The lean edge of one worker: its connections, and aiohttp's protocol to hand them to."""

    def __init__(self, app: web.Application, fallback: Callable[[], asyncio.Protocol]) -> None:
        self.app, self.fallback = app, fallback
        self.keys, self.runtime, self.max_body = app[KEYRING], app[RUNTIME], app[MAX_BODY]
        self.roles = _roles(app)
        self.voice = _mounted(app, VOICE)  # the Twilio channel is registered
        self.connections: set[EdgeConnection] = set()
        self.answered = 0  # requests answered here; the others were handed to aiohttp
        self.handed = 0  # connections handed to aiohttp
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()  # the answers under way (held: a task is only weakly held)
        self._sweeper: asyncio.Task[None] | None = None
        # The worker's loop, once serving: its create_task, unlike asyncio's, does not ask which
        # loop is running (a system call on Python 3.11), once a request.
        self.loop: asyncio.AbstractEventLoop | None = None

    def protocol(self) -> asyncio.Protocol:
        if self._sweeper is None:
            self.loop = asyncio.get_running_loop()
            self._sweeper = self.loop.create_task(self._sweep(), name="lean-edge-keep-alive")
        return EdgeConnection(self)

    async def _sweep(self) -> None:
        """Close connections idle longer than KEEP_ALIVE (one timer for all, not one per request)."""
        while True:
            await asyncio.sleep(_SWEEP_EVERY)
            cutoff = time.monotonic() - KEEP_ALIVE
            for conn in [c for c in self.connections if not c.busy and c.idle_since < cutoff]:
                conn.close()

    async def shutdown(self, timeout: float) -> None:
        """Stop: an idle connection closes now; a request under way, or part-read, is answered first
        (its rest may still come), all within `timeout`, as aiohttp lets its handlers finish."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.stop()
        deadline = time.monotonic() + timeout
        while (self.tasks or self.connections) and time.monotonic() < deadline:
            if self.tasks:
                await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - time.monotonic()))
            else:
                await asyncio.sleep(0.02)
        for task in list(self.tasks):  # past the deadline, as aiohttp cancels its handlers
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        for conn in list(self.connections):
            conn.abort()


def _roles(app: web.Application) -> frozenset[str]:
    for route, roles in app[ROUTE_ROLES].items():
        if route.method == "POST" and route.resource is not None and route.resource.canonical == PATH:
            return roles or frozenset()
    return frozenset()  # the route is not mounted: every request goes to aiohttp


def _mounted(app: web.Application, path: str) -> bool:
    return any(r.method == "POST" and r.resource is not None and r.resource.canonical == path for r in app[ROUTE_ROLES])


class EdgeConnection(asyncio.Protocol):
    """One connection: requests answered here one at a time, in order, until one is not plain."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.head: _Head | None = None  # the head of the request being read, once read (read once)
        self.scanned = 0  # how far the buffer has been searched for the end of the head
        self.finishing = False  # a request part-read when the stop began: answered, then closed
        self.busy = False  # a request is being decided
        self.eof = False
        self.closed = False
        self.writing_paused = False
        self.idle_since = time.monotonic()
        self.answered_here = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        tcp_keepalive(self.transport)  # as aiohttp's own connections have it
        self.edge.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.edge.connections.discard(self)

    def pause_writing(self) -> None:
        self.writing_paused = True  # the caller does not read its answers: answer no more until it does

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._next()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.idle_since = time.monotonic()
        if self.busy or self.writing_paused:
            if len(self.buffer) > _HEAD_MAX and self.transport is not None:
                self.transport.pause_reading()  # the caller sends faster than we answer: wait for us
            return
        self._next()

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.busy:
            return True  # keep the transport open for the answer under way (and what follows it)
        if self.buffer:
            return self._hand_over()
        return None

    def stop(self) -> None:
        """The stop has begun: idle, close now; part-read, finish that request; busy, close after it."""
        if self.busy:
            return
        if self.buffer:
            self.finishing = True
        else:
            self.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _next(self) -> None:
        """Answer the next complete request here, or hand the connection to aiohttp."""
        if self.closed or self.busy or self.writing_paused:
            return
        if not self.buffer or (self.edge.stopping and not self.finishing):
            if self.eof or self.edge.stopping:
                self.close()
            return
        try:
            request = self._plain_request()
        except Exception:  # whatever it is, aiohttp answers it as it always has
            log.exception("lean edge: a request could not be read; aiohttp serves it")
            request = None
        if request is _WAIT and not self.eof:
            if self.transport is not None:
                self.transport.resume_reading()  # its rest may be behind a pause
            return
        if request is None or request is _WAIT:  # _WAIT here: the caller ended with it part-sent
            result = self._hand_over()
            if self.eof and not result and self.transport is not None:
                self.transport.close()
            return
        assert isinstance(request, tuple)
        self.busy = True
        task = (self.edge.loop or asyncio.get_running_loop()).create_task(self._answer(*request))
        self.edge.tasks.add(task)
        task.add_done_callback(self.edge.tasks.discard)

    def _plain_request(self) -> Any:
        """(route, contact, request id) of a complete plain request, consumed from the buffer; _WAIT
        when more bytes are needed; None when aiohttp is to serve it (nothing is consumed then). The
        head is read once, however many pieces its body comes in."""
        buf, head = self.buffer, self.head
        if head is None:
            head = self._read_head()
            if not isinstance(head, _Head):
                return head
            self.head = head
        assert head.length is not None
        total = head.size + head.length
        if len(buf) < total:
            return _WAIT
        self.head, self.scanned = None, 0
        call = self._call(head, bytes(buf[head.size : total]))
        if call is None:
            return None
        del buf[:total]
        return *call, (head.request_id or b"")[:64].decode() or new_hex()

    def _read_head(self) -> Any:
        """The head of the request at the start of the buffer, once it is all there and plain; _WAIT
        for more bytes; None when aiohttp is to serve it."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n", max(0, self.scanned - 3))
        if end < 0:
            self.scanned = len(buf)
            if len(buf) > _HEAD_MAX or not _may_be_plain(bytes(buf[: len(_REQUEST_LINE) + 2])):
                return None
            return _WAIT
        lines = bytes(buf[:end]).split(b"\r\n")
        if end > _HEAD_MAX:
            return None
        if lines[0] == _REQUEST_LINE:
            target = None
        elif self.edge.voice and (voice := _VOICE_LINE.fullmatch(lines[0])) is not None:
            target = voice[1].decode()
        else:
            return None
        head = _Head.of(lines[1:], end + 4)
        if head is None or head.length is None or head.length > self.edge.max_body:
            return None
        head.target = target
        return head

    def _call(self, head: _Head, body: bytes) -> tuple[_Route, InboundContact] | None:
        """The route and the contact of a plain request; None when aiohttp is to serve it."""
        if head.target is not None:  # a voice webhook
            if not _is_form(head.content_type):
                return None
            signature = None if head.signature is None else head.signature.decode()
            call = twilio.plain_call(self.edge.runtime.settings, head.target, body, signature)
            return None if call is None else (_VOICE_ROUTE, call)
        if not self._allowed(head.key) or not _is_json(head.content_type):
            return None
        contact = self._contact(body)
        return None if contact is None else (_CONTACTS_ROUTE, contact)

    def _allowed(self, header: bytes | None) -> bool:
        """The key is one this process knows, of a role the route allows (else aiohttp decides)."""
        if header is None:
            return False
        scheme, _, key = header.decode().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        who = self.edge.keys.known(key.strip())
        return who is not None and who.role in self.edge.roles and not who.reads_only  # a POST is no read

    @staticmethod
    def _contact(body: bytes) -> InboundContact | None:
        try:
            data = json_of(body)
        except GatewayError:
            return None
        parsed = checked(GenericChannel.contact_of(data))
        return None if isinstance(parsed, Rejected) else parsed

    async def _answer(self, route: _Route, contact: InboundContact, request_id: str) -> None:
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        rt = self.edge.runtime
        try:
            try:
                decision, created = await rt.decide.decide(contact)
                status, body = route.render(decision, created, rt)
                content_type = route.content_type
            except Exception as exc:  # answered as the error middleware answers it
                status, body = error_reply(exc, "POST", route.path)
                content_type = _JSON
            log_request("POST", route.path, status, started, route.path)  # with the request id, as the middleware's
        finally:
            logs.request_id.reset(token)
        self.edge.answered += 1
        self.answered_here += 1
        _ANSWERED.n += 1
        self.busy = False
        self.idle_since = time.monotonic()
        if self.closed or self.transport is None:
            return
        self.transport.write(_head(status, content_type, len(body), request_id) + body)
        if self.edge.stopping:  # no further call is taken once the stop has begun
            self.close()
            return
        if not self.eof:
            self.transport.resume_reading()
        self._next()

    def _hand_over(self) -> bool | None:
        """aiohttp serves this connection from here on, starting with every byte not yet answered."""
        assert self.transport is not None
        self.edge.connections.discard(self)
        self.edge.handed += 1
        _HANDED_OVER.inc()
        handler = self.edge.fallback()
        self.transport.set_protocol(handler)
        handler.connection_made(self.transport)
        if not self.eof:
            self.transport.resume_reading()
        if self.buffer:
            pending, self.buffer = bytes(self.buffer), bytearray()
            handler.data_received(pending)
        if self.eof:
            return handler.eof_received()
        return None


@dataclass(slots=True)
class _Head:
    """What a plain request's header lines say that the edge needs, and the head's size in bytes."""

    size: int
    length: int | None = None
    key: bytes | None = None
    content_type: bytes | None = None
    request_id: bytes | None = None
    signature: bytes | None = None
    target: str | None = None  # a voice webhook's path and query; None for POST /v1/contacts

    @classmethod
    def of(cls, lines: list[bytes], size: int) -> _Head | None:
        """None (aiohttp serves it): a line that is not plain printable text or is too long, too many
        lines, any header given twice, no Host, or a header that changes how the request is read
        or answered."""
        if len(lines) > _HEADERS_MAX:
            return None
        head, seen = cls(size), set()
        for line in lines:
            field = _LINES[line]
            if field is None:
                return None
            name, value = field
            if name in _SINGLE:
                if name in seen:
                    return None
                seen.add(name)
            if name == b"content-length":
                if not value.isdigit() or len(value) > 12:
                    return None
                head.length = int(value)
            elif name in _KEPT:
                setattr(head, _KEPT[name], value)
            elif name == b"connection":
                if value.lower() != b"keep-alive":
                    return None
            elif name in _HANDED:
                return None
        return head if b"host" in seen else None


_KEPT = {
    b"authorization": "key",
    b"content-type": "content_type",
    b"x-request-id": "request_id",
    b"x-twilio-signature": "signature",
}


class _Lines(dict[bytes, tuple[bytes, bytes] | None]):
    """Header lines read before, and what each says: a caller sends the same lines call after call
    (its host, the type, a few lengths), so those are looked up rather than matched and split again.
    Only short lines of the headers in _CACHEABLE are kept (never a key or a cookie, nor anything a
    caller could fill memory with), up to _LINES_MAX (then all are forgotten at once)."""

    def __missing__(self, line: bytes) -> tuple[bytes, bytes] | None:
        field = _field(line)
        if field is not None and field[0] in _CACHEABLE and len(line) <= _KEPT_LINE_MAX:
            if len(self) >= _LINES_MAX:
                self.clear()
            self[line] = field
        return field


_CACHEABLE = frozenset({b"host", b"content-type", b"content-length", b"connection", b"user-agent", b"accept"})
_KEPT_LINE_MAX = 256
_LINES_MAX = 4096
_LINES = _Lines()


def _field(line: bytes) -> tuple[bytes, bytes] | None:
    """A header line's name (lower case) and value (trimmed); None when it is not plain printable
    text, or too long."""
    name, colon, value = line.partition(b":")
    if not colon or len(line) > _FIELD_MAX or not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
        return None
    return name.lower(), value.strip(b" \t")


def _may_be_plain(start: bytes) -> bool:
    """Whether a head whose first bytes are these may still be one the edge answers."""
    return any(line.startswith(start) or start.startswith(line) for line in _LINE_STARTS)


def _is_form(content_type: bytes | None) -> bool:
    """A URL-encoded form in UTF-8, as Twilio sends it (anything else: the channel refuses it)."""
    if content_type is None:
        return False
    media, _, params = content_type.decode().partition(";")
    if media.strip().lower() != twilio.FORM:
        return False
    if not params.strip():
        return True
    name, equals, value = params.partition("=")
    return bool(equals) and name.strip().lower() == "charset" and value.strip().lower() in twilio.UTF8


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:  # aiohttp reads a body without a type as application/octet-stream
        return True
    return is_json_type(content_type.split(b";", 1)[0].strip().lower().decode())


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()


_STATUS = {status: _status_line(status) for status in (200, 201)}


_JSON = b"application/json; charset=utf-8"


@dataclass(frozen=True)
class _Route:
    """A route the edge answers: its path, and its reply's type and (status, body) for a decision."""

    path: str
    content_type: bytes
    render: Callable[[Decision, bool, Any], tuple[int, bytes]]


_CONTACTS_ROUTE = _Route(PATH, _JSON, lambda decision, created, rt: (201 if created else 200, reply_body(decision)))
_VOICE_ROUTE = _Route(
    VOICE,
    twilio.XML.encode() + b"; charset=utf-8",
    lambda decision, created, rt: (200, twilio.voice_reply(decision, rt)),
)


def _head(status: int, content_type: bytes, length: int, request_id: str) -> bytes:
    return b"".join(
        (
            _STATUS.get(status) or _status_line(status),
            b"\r\nContent-Type: ",
            content_type,
            b"\r\nContent-Length: ",
            str(length).encode(),
            b"\r\nDate: ",
            rfc822_formatted_time().encode(),
            b"\r\nServer: ",
            _SERVER,
            b"\r\nX-Request-Id: ",
            request_id.encode(),
            _FIXED,
        )
    )
