"""Mailgun inbound routes (`forward()` to a URL): signed form posts, parsed fields or raw MIME.

Mailgun signs each post in its body: `signature` is the hex HMAC-SHA256 of `timestamp` + `token`
under the account's HTTP webhook signing key (MAILGUN_SIGNING_KEY). The signature does not cover the
message, so a signed triple seen once (in a log, at a proxy) could carry any message: a post is
refused when its timestamp is older than MAX_AGE (or far ahead), or when its token came before with
another message. The same message again under the same token is a retry, and is decided as one.
A route URL ending in `mime`
gets the whole message as `body-mime`; otherwise the fields `from`, `recipient`, `subject`,
`body-plain`, `body-html`, `message-headers` (JSON [[name, value], ...]). Both are accepted here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import Message
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from ...contact import Decision, InboundContact
from ...decide import Rejected
from ...errors import BadRequest, Forbidden, GatewayError, TooLarge, Unavailable
from ...inputs import attempt_note, client_address, read_body
from ...rediskeys import MAILGUN_TOKEN
from ...runtime import Runtime
from ..base import HttpMount, json_reply
from .contact import contact_from_message
from .mime import MailLimits, MailMessage, message_from_fields
from .webhook import IN_PLACE_BYTES, mail_limits, read_raw

log = logging.getLogger(__name__)
PATH = "/v1/channels/email/mailgun/mime"
MAX_FIELDS = 1000
# Mailgun retries a route for hours and warns that its posts can be delayed: a signature is honoured
# for a day, and a little ahead of our clock. A token is remembered for longer than that.
MAX_AGE = 24 * 3600
MAX_AHEAD = 15 * 60
TOKEN_TTL = MAX_AGE + MAX_AHEAD + 3600
REDIS_PATIENCE = 0.5
SIGNED = ("timestamp", "token", "signature")
Form = dict[str, bytes]


def signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def signed(key: str, form: Form) -> bool:
    timestamp, token, given = (_text(form, n) for n in ("timestamp", "token", "signature"))
    if not (timestamp and token and given):
        return False
    return hmac.compare_digest(signature(key, timestamp, token).encode(), given.encode("utf-8", "replace"))


def fresh(timestamp: str, now: float) -> bool:
    """Whether a signature made at `timestamp` (seconds since the epoch) is still honoured."""
    try:
        made = int(timestamp)
    except ValueError:
        return False
    return now - MAX_AGE <= made <= now + MAX_AHEAD


def digest(form: Form) -> str:
    """The message a post carries, whatever the multipart boundary: every field but the signature's."""
    h = hashlib.sha256()
    for name in sorted(form):
        if name not in SIGNED:
            h.update(b"%d:%s=%d:" % (len(name), name.encode("utf-8", "replace"), len(form[name])) + form[name])
    return h.hexdigest()


async def replayed(redis: aioredis.Redis, token: str, message: str) -> bool:
    """Whether this token was signed for another message (its signature replayed). The first message
    a token comes with is remembered; if Redis cannot be asked, the post is let through (a real
    email must not be lost to an outage) and that is logged."""
    key = MAILGUN_TOKEN + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
    try:
        async with asyncio.timeout(REDIS_PATIENCE):
            if await redis.set(key, message, nx=True, ex=TOKEN_TTL):
                return False
            held = await redis.get(key)
    except (RedisError, OSError, TimeoutError):
        log.warning("Mailgun token not checked for reuse: Redis did not answer")
        return False
    if isinstance(held, bytes):
        held = held.decode()
    return held is not None and held != message


def _text(form: Form, name: str) -> str:
    return form.get(name, b"").decode("utf-8", "replace")


def read_form(content_type: str, raw: bytes) -> Form:
    """A urlencoded or multipart/form-data body as name → bytes (the first value of each name)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise BadRequest("the form is not UTF-8 text", code="malformed_form") from None
        except ValueError:
            raise TooLarge(f"the form has more than {MAX_FIELDS} fields") from None
        form: Form = {}
        for k, v in pairs:
            form.setdefault(k, v.encode("utf-8"))
        return form
    if content_type.startswith("multipart/form-data"):
        return _multipart(content_type, raw)
    raise BadRequest("expected a form body (urlencoded or multipart/form-data)", code="unsupported_media_type")


async def read_form_off_loop(content_type: str, raw: bytes) -> Form:
    """read_form, in a thread for a large body: it is read before the signature can be checked (the
    signature is in the form), so a large unsigned post must not stall this worker's other requests."""
    if len(raw) > IN_PLACE_BYTES:
        return await asyncio.to_thread(read_form, content_type, raw)
    return read_form(content_type, raw)


def _multipart(content_type: str, raw: bytes) -> Form:
    """multipart/form-data read with the (tolerant) email parser: one part per field. A form of more
    parts than any Mailgun post has is refused before it is parsed (each part costs an object)."""
    head = Message()
    head["Content-Type"] = content_type
    boundary = head.get_boundary()
    if not boundary:
        raise BadRequest("the multipart form has no boundary", code="malformed_form")
    if raw.count(b"--" + boundary.encode("latin-1", "replace")) > MAX_FIELDS + 1:
        raise TooLarge(f"the form has more than {MAX_FIELDS} fields")
    doc = message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + raw, policy=policy.compat32
    )
    parts = doc.get_payload()
    if not doc.is_multipart() or not isinstance(parts, list):
        raise BadRequest("the multipart form could not be read", code="malformed_form")
    form: Form = {}
    for part in parts[:MAX_FIELDS]:
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in form:
            form[name] = _field_bytes(part)
    return form


def _field_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":  # a field sent as message/rfc822: its bytes as they came
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        return first.as_bytes() if isinstance(first, Message) else b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


async def message_of(form: Form, limits: MailLimits) -> MailMessage:
    envelope = _text(form, "sender")
    if "body-mime" in form:
        return replace(await read_raw(form["body-mime"], limits), envelope_sender=envelope)
    try:
        listed = json.loads(_text(form, "message-headers") or "[]")
        headers = {str(k): str(v) for k, v in listed[:1000] if isinstance(k, str)} if isinstance(listed, list) else {}
    except (ValueError, TypeError, RecursionError):  # unreadable (or nested past reading): decided without them
        headers = {}
    lowered = {k.lower(): v for k, v in headers.items()}
    return message_from_fields(
        sender=_text(form, "from") or envelope,
        recipients=(_text(form, "recipient"),),
        subject=_text(form, "subject"),
        message_id=_text(form, "Message-Id") or lowered.get("message-id"),
        in_reply_to=_text(form, "In-Reply-To") or lowered.get("in-reply-to", ""),
        references=_text(form, "References") or lowered.get("references", ""),
        text=_text(form, "body-plain"),
        html=_text(form, "body-html"),
        headers=headers,
        envelope_sender=envelope,
        limits=limits,
    )


class MailgunChannel:
    name = "mailgun"
    description = "Mailgun inbound routes (forward() to this URL), checked by Mailgun's HMAC signature."
    mount = HttpMount(PATH, None)  # no API key: Mailgun signs its posts

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        key = rt.settings.mailgun_signing_key
        if not key:
            why = "the Mailgun channel is not configured: set MAILGUN_SIGNING_KEY"
            return Rejected("rejected", why, "email", refusal=Unavailable("the Mailgun channel is not available"))
        limits = mail_limits(rt)
        try:
            form = await read_form_off_loop(raw.headers.get("Content-Type", ""), await read_body(raw, limits.max_bytes))
        except GatewayError as exc:
            return Rejected("malformed", attempt_note(raw, exc), "email", refusal=exc)
        sender = _text(form, "sender")[:320]
        if not signed(key, form):
            log.warning("Mailgun post refused: bad or missing signature (from %s)", client_address(raw))
            refused = Forbidden("bad signature")
            return Rejected(
                "rejected", "bad Mailgun signature", "email", sender, refusal=refused, address=client_address(raw)
            )
        if not fresh(_text(form, "timestamp"), time.time()):
            log.warning("Mailgun post refused: its signature's timestamp is out of date (from %s)", client_address(raw))
            why = "Mailgun signature out of date"
            refused = Forbidden("the signature is out of date")
            return Rejected("rejected", why, "email", sender, refusal=refused, address=client_address(raw))
        if await replayed(rt.redis, _text(form, "token"), digest(form)):
            log.warning(
                "Mailgun post refused: its signed token came before with another message (from %s)", client_address(raw)
            )
            why = "Mailgun signature replayed with another message"
            refused = Forbidden("the signature was used before")
            return Rejected("rejected", why, "email", sender, refusal=refused, address=client_address(raw))
        return await contact_from_message(await message_of(form, limits), rt)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        return json_reply(decision, created)
