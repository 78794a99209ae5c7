"""The agent screen, `GET /agent?contact_id=…` or `?identifier=…`: the page an agent keeps open, or
that the contact-centre desktop embeds in an iframe with the caller in the URL.

Least disclosure: it shows the contact's banner — how careful to be (a colour and a word), what to
do in plain words, who handles the customer, when the restriction is reviewed — and nothing more:
never the reasons or incidents. New banners for contacts routed to this agent or their queue arrive
live (agent.js reads /v1/banners/stream?mine=true); without JavaScript the page refreshes itself.
From here an agent refers an incident to the caution leads (`POST /agent/incidents`, the same
referral as `POST /v1/incidents`).
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pydantic
from aiohttp import web

from ..api.banners import banner_now, match_identifier
from ..appkeys import POOL, SETTINGS
from ..errors import DomainError, Invalid
from ..incidents import refer
from ..models.incidents import IncidentIn
from ..rules.calendar import format_date
from ..runtime import RUNTIME
from ..store import incidents as store
from .pages import add_page, read_form, render, require_staff
from .security import CSRF_FIELD
from .sessions import StaffSession, check_csrf, current_session

AGENT = ("agent",)
RECENT = timedelta(minutes=30)
REFRESH_SECONDS = 20
SEVERITY_WORDS = {"danger": "Danger", "warning": "Take care", "info": "Information"}


@dataclass(frozen=True)
class BannerView:
    """A banner as an agent reads it."""

    severity: str
    label: str
    lines: list[str]
    review_due: str | None
    handled_by: str | None


@dataclass(frozen=True)
class Current:
    """The contact the page was opened for."""

    found: bool
    contact_id: str | None
    customer_id: int | None
    heading: str
    banner: BannerView | None
    identifier: str | None = None


def _view(banner: dict[str, Any] | None, target: dict[str, Any] | None, names: dict[int, str]) -> BannerView | None:
    if not banner:
        return None
    handled_by = None
    if target and target.get("type") in ("staff", "voicemail") and str(target.get("id", "")).isdigit():
        handled_by = names.get(int(target["id"]))
    due = banner.get("review_due")
    return BannerView(
        severity=banner["severity"],
        label=SEVERITY_WORDS.get(banner["severity"], banner["severity"]),
        lines=[line.strip() for line in str(banner.get("text", "")).split(" | ") if line.strip()],
        review_due=format_date(date.fromisoformat(due)) if due else None,
        handled_by=handled_by,
    )


async def _names(request: web.Request, targets: list[dict[str, Any] | None]) -> dict[int, str]:
    """Who each person-target is, as an agent reads it: by name, or "you" for the agent themselves."""
    ids = [int(t["id"]) for t in targets if t and t.get("type") in ("staff", "voicemail") and str(t["id"]).isdigit()]
    names = await store.staff_names(request.app[POOL], ids) if ids else {}
    session = await current_session(request)
    if session is not None and session.staff_id in names:
        names[session.staff_id] = f"you ({session.name})"
    return names


async def _current(request: web.Request, params: Mapping[str, str]) -> Current | None:
    """The contact in the URL (or, after an incident form, the one the form was for)."""
    raw_id = params.get("contact_id", "").strip()
    identifier = params.get("identifier", "").strip()[:320]
    if raw_id:
        try:
            contact_id = uuid.UUID(raw_id[:64])
        except ValueError:
            return Current(False, None, None, "That contact reference is not right", None)
        row = await store.contact_seen(request.app[POOL], contact_id)
        if row is None:
            return Current(False, str(contact_id), None, "This contact is not on record yet", None)
        names = await _names(request, [row["target"]])
        customers = list(row["customer_ids"] or [])
        heading = f"Contact by {row['channel'].replace('_', ' ')} at {_local(request, row['received_at'])}"
        only = customers[0] if len(customers) == 1 else None
        return Current(True, str(contact_id), only, heading, _view(row["banner"], row["target"], names))
    if identifier:
        try:
            match = match_identifier(request.app[RUNTIME], identifier)
        except DomainError:
            return Current(False, None, None, "That is not a phone number or email address", None)
        verdict = banner_now(request.app[RUNTIME], match)
        banner = verdict.banner.model_dump(mode="json") if verdict.banner else None
        target = verdict.target.model_dump() if verdict.target else None
        customers = list(match.customer_ids)
        only = customers[0] if len(customers) == 1 else None
        view = _view(banner, target, await _names(request, [target]))
        return Current(True, None, only, f"Caller {identifier}", view, identifier)
    return None


def _zone(request: web.Request) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(request.app[SETTINGS].tz)


def _local(request: web.Request, at: datetime) -> str:
    return at.astimezone(_zone(request)).strftime("%H:%M on %-d %B")


async def _recent(request: web.Request, session: StaffSession) -> list[dict[str, Any]]:
    since = datetime.now(UTC) - RECENT
    rows = await store.recent_for(request.app[POOL], session.staff_id, session.queue, since)
    names = await _names(request, [r["target"] for r in rows])
    return [
        {
            "contact_id": str(r["id"]),
            "when": _local(request, r["received_at"]),
            "channel": r["channel"].replace("_", " "),
            "banner": _view(r["banner"], r["target"], names),
        }
        for r in rows
    ]


async def _page(
    request: web.Request,
    session: StaffSession,
    params: Mapping[str, str],
    *,
    errors: dict[str, str] | None = None,
    shown: dict[str, str] | None = None,
) -> web.Response:
    now = datetime.now(_zone(request))
    context = {
        "current": await _current(request, params),
        "recent": await _recent(request, session),
        "refresh": REFRESH_SECONDS,
        "referred": request.query.get("referred") == "1",
        "errors": errors or {},
        "incident": shown or {"what": "", "date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M")},
        "stream": "/v1/banners/stream?mine=true",
    }
    return await render(request, "agent.html", context, status=422 if errors else 200)


async def agent_page(request: web.Request) -> web.Response:
    session = await require_staff(request, AGENT)
    return await _page(request, session, request.query)


def _happened_at(request: web.Request, day: str, time: str) -> datetime:
    try:
        naive = datetime.strptime(f"{day} {time}", "%Y-%m-%d %H:%M")
    except ValueError:
        raise Invalid("Enter the date and time it happened", [{"field": "date"}]) from None
    return naive.replace(tzinfo=_zone(request))


async def refer_incident(request: web.Request) -> web.Response:
    session = await require_staff(request, AGENT)
    form = await read_form(request) or {}
    if not await check_csrf(request, session.token, form.get(CSRF_FIELD)):
        title, lines = "Sorry, that did not work", ["The page had expired. Reload it and try again."]
        return await render(request, "message.html", {"title": title, "lines": lines}, status=403)
    shown = {k: form.get(k, "")[:4000] for k in ("what", "date", "time")}
    errors: dict[str, str] = {}
    if not shown["what"].strip():
        errors["what"] = "Describe what happened"
    try:
        happened_at = _happened_at(request, shown["date"], shown["time"])
        body = IncidentIn.model_validate(
            {
                "contact_id": form.get("contact_id") or None,
                "customer_id": form.get("customer_id") or None,
                "happened_at": happened_at,
                "what": shown["what"].strip() or "-",
            }
        )
        if not errors:
            await refer(request.app[POOL], body, session.actor)
    except (DomainError, pydantic.ValidationError) as exc:
        errors.setdefault("date", _plain(exc))
    if errors:
        return await _page(request, session, form, errors=errors, shown=shown)
    back = {k: v for k, v in (("contact_id", form.get("contact_id")), ("identifier", form.get("identifier"))) if v}
    raise web.HTTPSeeOther("/agent?" + urlencode({**back, "referred": "1"}))


def _plain(exc: Exception) -> str:
    text = getattr(exc, "message", "") or ""
    if "future" in text:
        return "The time it happened must be now or in the past"
    if "days ago" in text:
        return "Incidents more than 400 days old cannot be referred here; tell a caution lead"
    return "Enter the date and time it happened, for example 25/11/2026 and 14:30"


def setup(app: web.Application) -> None:
    add_page(app, "GET", "/agent", agent_page, embeddable=True)
    add_page(app, "POST", "/agent/incidents", refer_incident, embeddable=True)
