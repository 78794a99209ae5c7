"""The generic decide entry, `POST /v1/contacts`: the decide contract as JSON in and JSON out.

Any phone platform (or a post room logging letters) can call it; every other channel speaks the
same contract in its caller system's own format.
"""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..errors import GatewayError, Invalid
from ..inputs import attempt_note, read_json
from ..runtime import Runtime
from .base import HttpMount, json_reply


def _text(v: Any) -> str:
    return "" if v is None else str(v)


class GenericChannel:
    name = "contacts"
    description = "The decide contract as JSON (DESIGN.md §4): any platform, a post room, reception."
    mount = HttpMount("/v1/contacts", ("channel",))

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        try:
            data = await read_json(raw)
        except GatewayError as exc:
            return Rejected("malformed", attempt_note(raw, exc), refusal=exc)
        return self.contact_of(data)

    @staticmethod
    def contact_of(data: Any) -> InboundContact | Rejected:
        """The contact a JSON body describes, or why it does not (also the lean edge's, gateway.edge)."""
        if not isinstance(data, dict):
            problem = Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
            return Rejected("malformed", problem.message, refusal=problem)
        if "headers" in data:  # an email channel's own (RFC 3834's verdict among them): never a caller's
            message = "not a field of a contact: set only by the email channels"
            return _rejected(data, Invalid(f"headers: {message}", [{"field": "headers", "message": message}]))
        try:
            return InboundContact.model_validate(data)
        except pydantic.ValidationError as exc:
            return _rejected(data, exc)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        return json_reply(decision, created)


def _rejected(data: dict[str, Any], refusal: Exception) -> Rejected:
    """A body that is not a contact, logged with what it says of itself (its channel, sender, id)."""
    provider_id = data.get("provider_id")
    return Rejected(
        "malformed",
        str(refusal),
        _text(data.get("channel")) or "unknown",
        _text(data.get("from")),
        None if provider_id is None else str(provider_id),
        refusal=refusal,
    )
