"""`POST /v1/channels/email`: any mail system hands over a raw message (`message/rfc822`) or the
generic JSON shape; the reply is the decision as JSON. The gateway sends any acknowledgement itself."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pydantic
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ...contact import Decision, InboundContact
from ...decide import Rejected
from ...errors import BadRequest, GatewayError, Invalid
from ...inputs import attempt_note, read_body
from ...runtime import Runtime
from ..base import HttpMount, json_reply
from .contact import contact_from_message
from .mime import MailLimits, MailMessage, message_from_fields, read_message

IN_PLACE_BYTES = 256 * 1024
RAW_TYPES = ("message/rfc822", "text/plain", "application/octet-stream")
Addresses = (
    Annotated[str, Field(max_length=20_000)]
    | Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=200)]
)


class EmailJson(BaseModel):
    """The generic JSON shape any mail system can send (DESIGN §5)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(alias="from", max_length=2000)
    to: Addresses = ""
    subject: str = Field(default="", max_length=10_000)
    message_id: str | None = Field(default=None, max_length=2000)
    in_reply_to: str = Field(default="", max_length=20_000)
    references: Addresses = ""
    text: str = Field(default="", max_length=5_000_000)
    html: str = Field(default="", max_length=20_000_000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=1000)

    def message(self, limits: MailLimits) -> MailMessage:
        refs = self.references if isinstance(self.references, str) else " ".join(self.references)
        return message_from_fields(
            sender=self.sender,
            recipients=(self.to,) if isinstance(self.to, str) else tuple(self.to),
            subject=self.subject,
            message_id=self.message_id,
            in_reply_to=self.in_reply_to,
            references=refs,
            text=self.text,
            html=self.html,
            headers=self.headers,
            limits=limits,
        )


def mail_limits(rt: Runtime) -> MailLimits:
    return MailLimits(max_bytes=rt.settings.email_max_bytes)


async def read_request(request: web.Request, rt: Runtime) -> MailMessage | Rejected:
    """The message in the request, raw or JSON; anything unreadable is Rejected with its refusal."""
    limits = mail_limits(rt)
    try:
        raw = await read_body(request, limits.max_bytes)
    except GatewayError as exc:
        return Rejected("malformed", attempt_note(request, exc), "email", refusal=exc)
    if request.content_type in RAW_TYPES:
        if not raw.strip():  # no headers, no body: nothing was sent to decide on
            problem = BadRequest("the message is empty", code="empty_message")
            return Rejected("malformed", problem.message, "email", refusal=problem)
        return await read_raw(raw, limits)
    if request.content_type != "application/json":
        problem = BadRequest(
            f"expected message/rfc822 or application/json, got {request.content_type}", code="unsupported_media_type"
        )
        return Rejected("malformed", problem.message, "email", refusal=problem)
    if len(raw) > IN_PLACE_BYTES:  # up to 25 MB of JSON, and the HTML in it, read off the loop
        return await asyncio.to_thread(_from_json, raw, limits)
    return _from_json(raw, limits)


async def read_raw(raw: bytes, limits: MailLimits) -> MailMessage:
    """A large message is read in a thread, so it does not stall the other requests of this worker
    (a 10 MB single line takes about half a second); a small one is quicker read in place."""
    if len(raw) > IN_PLACE_BYTES:
        return await asyncio.to_thread(read_message, raw, limits)
    return read_message(raw, limits)


def _from_json(raw: bytes, limits: MailLimits) -> MailMessage | Rejected:
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        bad = BadRequest("the body is not valid JSON", code="malformed_json")
        return Rejected("malformed", bad.message, "email", refusal=bad)
    if not isinstance(data, dict):
        problem = Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
        return Rejected("malformed", problem.message, "email", refusal=problem)
    try:
        return EmailJson.model_validate(data).message(limits)
    except pydantic.ValidationError as exc:
        sender = data.get("from")
        return Rejected("malformed", str(exc)[:2000], "email", sender if isinstance(sender, str) else "", refusal=exc)


class EmailChannel:
    name = "email"
    description = "Email from any mail system: the raw message (message/rfc822) or the generic JSON shape."
    mount = HttpMount("/v1/channels/email", ("channel",), "email")

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        msg = await read_request(raw, rt)
        if isinstance(msg, Rejected):
            return msg
        return await contact_from_message(msg, rt)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        return json_reply(decision, created)
