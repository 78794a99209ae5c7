"""GET /v1/contacts: the contact log of one customer (the decide entry is a channel: channels/generic.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from ..appkeys import POOL, SETTINGS
from ..errors import field_error
from ..http import add_route
from ..inputs import query_int
from ..store.contacts import contacts_of


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
        try:  # the database compares in UTC; year 1 or 9999 at an offset falls outside any date
            since = since.astimezone(UTC)
        except OverflowError:
            raise field_error("since", "a date between the years 1 and 9999") from None
    limit = query_int(request, "limit", 200, low=1, high=5000) or 200
    rows = await contacts_of(request.app[POOL], customer_id, since, limit)
    return web.json_response({"customer_id": customer_id, "contacts": rows})


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/contacts", list_contacts, ("caution_lead", "manager"))
