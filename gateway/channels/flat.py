"""Amazon Connect and Genesys: a phone contact in, a flat map of strings out (no nested JSON)."""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import web

from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..errors import GatewayError, Invalid
from ..inputs import read_json
from ..runtime import Runtime
from .base import HttpMount
from .render import flat_fields

FLAT_PATH = "/v1/channels/flat"


def _address(endpoint: Any) -> str:
    if isinstance(endpoint, dict):
        return str(endpoint.get("Address") or "")
    return ""


def contact_fields(data: Any) -> dict[str, Any]:
    """Either our own shape {contact_id, from, to} or Amazon Connect's Details.ContactData."""
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
    details = data.get("Details")
    connect = details.get("ContactData") if isinstance(details, dict) else None
    if connect is None and "ContactId" in data:
        connect = data  # the Lambda forwarded ContactData itself
    fields: dict[str, Any] = {"channel": "phone", "received_at": data.get("received_at")}
    if isinstance(connect, dict):
        fields.update(
            {
                "from": _address(connect.get("CustomerEndpoint")),
                "to": _address(connect.get("SystemEndpoint")) or None,
                "provider_id": connect.get("ContactId") or None,
            }
        )
    else:
        fields.update(
            {
                "from": data.get("from") or "",
                "to": data.get("to") or None,
                "provider_id": data.get("contact_id") or None,
            }
        )
    return fields


class FlatChannel:
    name = "flat"
    description = "Amazon Connect / Genesys: a flat map of strings"
    mount = HttpMount(FLAT_PATH, ("channel",), "phone")

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        fields: dict[str, Any] = {}
        try:
            fields = contact_fields(await read_json(raw))
            return InboundContact.model_validate(fields)
        except (GatewayError, pydantic.ValidationError) as exc:
            provider_id = fields.get("provider_id")
            return Rejected(
                "malformed",
                str(exc)[:2000],
                "phone",
                str(fields.get("from") or ""),
                None if provider_id is None else str(provider_id),
                refusal=exc,
            )

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        return web.json_response(flat_fields(decision, rt.index.staff))
