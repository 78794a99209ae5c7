"""POST /v1/contacts — the generic decide entry every channel goes through — and the contact log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
from aiohttp import web

from ..contact import InboundContact, implausible_received_at
from ..decide import log_rejected
from ..errors import GatewayError, Invalid, field_error
from ..http import add_route, query_int, read_json
from ..state import DECIDER, POOL, SETTINGS
from ..store.contacts import contacts_of


async def decide_contact(request: web.Request, data: Any) -> web.Response:
    """Validate a decide request; anything invalid is logged as malformed before the 4xx goes back."""
    try:
        if not isinstance(data, dict):
            raise Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
        contact = InboundContact.model_validate(data)
        if problem := implausible_received_at(contact, datetime.now(UTC)):
            raise field_error("received_at", problem)
    except (GatewayError, pydantic.ValidationError) as exc:
        raw = data if isinstance(data, dict) else {}
        await log_rejected(
            request.app[DECIDER],
            channel=str(raw.get("channel") or "unknown"),
            sender=str(raw.get("from") or ""),
            provider_id=_str(raw.get("provider_id")),
            status="malformed",
            error=str(exc)[:2000],
        )
        raise
    decision, created = await request.app[DECIDER].decide(contact)
    return web.Response(
        text=decision.model_dump_json(), status=201 if created else 200, content_type="application/json"
    )


def _str(v: Any) -> str | None:
    return str(v) if v is not None else None


async def post_contact(request: web.Request) -> web.Response:
    try:
        data = await read_json(request)
    except GatewayError as exc:
        await log_rejected(
            request.app[DECIDER], channel="unknown", sender="", provider_id=None, status="malformed", error=exc.message
        )
        raise
    return await decide_contact(request, data)


async def list_contacts(request: web.Request) -> web.Response:
    customer_id = query_int(request, "customer_id", low=1)
    if customer_id is None:
        raise field_error("customer_id", "required")
    since = None
    if request.query.get("since"):
        try:
            since = datetime.fromisoformat(request.query["since"])
        except ValueError:
            raise field_error("since", "an ISO 8601 date or date-time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=ZoneInfo(request.app[SETTINGS].tz))
    limit = query_int(request, "limit", 200, low=1, high=5000) or 200
    rows = await contacts_of(request.app[POOL], customer_id, since, limit)
    return web.json_response({"customer_id": customer_id, "contacts": rows})


def setup(app: web.Application) -> None:
    add_route(app, "POST", "/v1/contacts", post_contact, ("channel",))
    add_route(app, "GET", "/v1/contacts", list_contacts, ("caution_lead", "manager"))
