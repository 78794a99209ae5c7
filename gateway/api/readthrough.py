"""The read-through lane (policy 000 §5.5, policy 003 §4.7): writing about a closed complaint is
filed and acknowledged, then waits here for a person to read it. `GET /v1/readthrough` lists what
waits; `POST /v1/readthrough/{id}` marks one "read, nothing new" or "new information" (which goes to
the case's owner, flagged). Each mark is the signed-in person's, on the log row and the case history."""

from __future__ import annotations

import uuid

from aiohttp import web

from ..appkeys import POOL
from ..errors import field_error
from ..http import add_route, principal
from ..inputs import query_int, read_model
from ..lifecycle import acting
from ..models.readthrough import Marked, MarkIn, Waiting
from ..store import readthrough

ROLES = ("agent", "caution_lead")


async def waiting(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 100, low=1, high=1000) or 100
    rows = await readthrough.waiting(request.app[POOL], limit)
    items = [
        Waiting(
            contact_id=str(r["id"]),
            received_at=r["received_at"],
            channel=r["channel"],
            sender=r["sender_raw"],
            subject=r["subject"],
            excerpt=r["body_excerpt"],
            customer_ids=list(r["customer_ids"]),
            case_id=r["case_id"],
            case_ref=r["case_ref"],
        ).model_dump(mode="json")
        for r in rows
    ]
    return web.json_response({"items": items})


async def mark(request: web.Request) -> web.Response:
    try:
        contact_id = uuid.UUID(request.match_info["contact_id"])
    except ValueError:
        raise field_error("contact_id", "not a contact id (a UUID)") from None
    body = await read_model(request, MarkIn)
    actor = principal(request).actor
    staff_id = acting(actor)
    async with request.app[POOL].acquire() as conn:
        row = await readthrough.mark(conn, contact_id, body.outcome, staff_id, actor.label, body.note)
    marked = Marked(
        contact_id=str(row["contact_id"]),
        case_id=row["case_id"],
        outcome=row["outcome"],
        staff_id=row["staff_id"],
        at=row["at"],
        note=row["note"],
        target=row["target"],
    )
    return web.json_response(marked.model_dump(mode="json"))


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/readthrough", waiting, ROLES)
    add_route(app, "POST", "/v1/readthrough/{contact_id}", mark, ROLES, person=True)
