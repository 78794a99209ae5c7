"""Reports over restrictions: the review-due list (JSON or CSV; the JSON also lists the incidents
agents referred in the last 90 days) and the subject-access export; each says when older data has
been removed under the retention settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from .. import retention
from ..appkeys import POOL
from ..http import add_route, principal
from ..inputs import path_id, query_text
from ..models.incidents import IncidentReferral
from ..reviews import due_report, to_csv, window_end
from ..store import incidents, reports
from .restrictions import READ, WRITE, today

# Incident referrals the review meeting sees: those made in the last quarter.
REFERRALS_DAYS = 90


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        return fmt.lower() == "csv"
    return "text/csv" in request.headers.get("Accept", "")


async def reviews_due(request: web.Request) -> web.Response:
    day = today(request)
    end = window_end(day, request.query.get("within", "30d"))
    items = due_report(await reports.review_rows(request.app[POOL]), day, end)
    removed = await retention.notice(request.app[POOL])
    if _wants_csv(request):
        return web.Response(
            text=to_csv(items),
            content_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="reviews-due-{day.isoformat()}.csv"',
                "X-Retention-Note": removed["note"],
            },
        )
    since = datetime.now(UTC) - timedelta(days=REFERRALS_DAYS)
    referrals = await incidents.referrals_since(request.app[POOL], since)
    return web.json_response(
        {
            "today": day.isoformat(),
            "until": end.isoformat(),
            "items": [i.as_dict() for i in items],
            "incident_referrals": [
                {**IncidentReferral.model_validate(r).model_dump(mode="json"), "customer_name": r["customer_name"]}
                for r in referrals
            ],
            "retention": removed,
        }
    )


async def export(request: web.Request) -> web.Response:
    why = query_text(request, "why", max_length=500) or None
    async with request.app[POOL].acquire() as conn:
        doc = await reports.export_customer(conn, path_id(request), principal(request).actor, why)
        doc["retention"] = await retention.notice(conn)
    return web.json_response(doc)


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/reviews/due", reviews_due, READ)
    add_route(app, "GET", "/v1/customers/{id}/export", export, WRITE)
