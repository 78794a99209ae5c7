"""Amazon Connect and Genesys: a phone contact in, a flat map of strings out (no nested JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic
from aiohttp import web

from ..contact import InboundContact, implausible_received_at
from ..decide import log_rejected
from ..errors import GatewayError, Invalid, field_error
from ..http import add_route, read_json
from ..state import DECIDER, INDEX
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


async def post_flat(request: web.Request) -> web.Response:
    service, raw = request.app[DECIDER], None
    try:
        raw = contact_fields(await read_json(request))
        contact = InboundContact.model_validate(raw)
        if problem := implausible_received_at(contact, datetime.now(UTC)):
            raise field_error("received_at", problem)
    except (GatewayError, pydantic.ValidationError) as exc:
        raw = raw or {}
        await log_rejected(
            service,
            channel="phone",
            sender=str(raw.get("from") or ""),
            provider_id=_str(raw.get("provider_id")),
            status="malformed",
            error=str(exc)[:2000],
        )
        raise
    decision, _ = await service.decide(contact)
    return web.json_response(flat_fields(decision, request.app[INDEX].staff))


def _str(v: Any) -> str | None:
    return str(v) if v is not None else None


def setup(app: web.Application) -> None:
    add_route(app, "POST", FLAT_PATH, post_flat, ("channel",))
