"""Restriction lifecycle API: record, decide, letter, appeal, review, lift, each by the signed-in staff
member (never a staff id in the body); full reads audited."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pydantic
from aiohttp import web

from .. import lifecycle as lc
from ..appkeys import POOL, REDIS, SETTINGS
from ..errors import field_error
from ..http import add_route, dump, principal
from ..inputs import path_id, query_text, read_model
from ..invalidation import publish
from ..letters import Letter, render
from ..models.restrictions import (
    AppealDecisionIn,
    AppealIn,
    DecisionIn,
    LetterSentIn,
    LiftIn,
    Restriction,
    RestrictionIn,
    ReviewIn,
)
from ..reviews import local_today, utc_now
from ..rules.calendar import Calendar
from ..store import appeals, reports, transitions
from ..store import restrictions as store
from ..store.index import load_closures

WRITE = ("caution_lead",)
READ = ("caution_lead", "manager")
# Policy 000 §6.3: an appeal goes to a manager (a manager or senior manager) who took no part.
APPEAL = ("manager",)
M = TypeVar("M", bound=pydantic.BaseModel)


def today(request: web.Request) -> date:
    return local_today(utc_now(), ZoneInfo(request.app[SETTINGS].tz))


async def policy(request: web.Request) -> lc.Policy:
    settings = request.app[SETTINGS]
    closures = await load_closures(request.app[POOL])
    return lc.Policy(
        rule=lc.parse_rule(settings.activation_rule),
        review_months=settings.review_default_months,
        calendar=Calendar(ZoneInfo(settings.tz), closures),
    )


async def _published(request: web.Request, record: Restriction, status: int = 200) -> web.Response:
    await publish(request.app[REDIS], record.customer_id)
    return dump(record, status)


async def create(request: web.Request) -> web.Response:
    body = await read_model(request, RestrictionIn)
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        record = await store.create(conn, body, pol, principal(request).actor, today(request))
    return await _published(request, record, 201)


def _why(request: web.Request) -> str:
    why = query_text(request, "why", max_length=501)
    if not 3 <= len(why) <= 500:
        raise field_error("why", "say why you are reading the full record (?why=..., 3-500 characters)")
    return why


async def get_full(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        record = await store.view(
            conn, path_id(request), await policy(request), principal(request).actor, _why(request)
        )
    return dump(record)


async def get_events(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        found = await store.events(conn, path_id(request))
        # The trail carries before/after copies of the record, so reading it is audited too.
        await store.event(
            conn,
            await store.load(conn, path_id(request)),
            principal(request).actor,
            "viewed",
            why=_why(request),
        )
    return web.json_response({"events": [e.model_dump(mode="json") for e in found]})


Op = Callable[[Any, int, Any, lc.Policy, lc.Actor, date], Awaitable[Restriction]]


def _transition(model: type[M], op: Op) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A lifecycle POST: read the body, run the store operation, publish the invalidation."""

    async def handler(request: web.Request) -> web.Response:
        body = await read_model(request, model)
        pol = await policy(request)
        async with request.app[POOL].acquire() as conn:
            record = await op(conn, path_id(request), body, pol, principal(request).actor, today(request))
        return await _published(request, record)

    return handler


async def _letter(request: web.Request, conn: Any, pol: lc.Policy) -> Letter:
    facts = await reports.letter_facts(conn, path_id(request), pol, today(request))
    return render(dataclasses.replace(facts, provider=request.app[SETTINGS].provider()), pol.calendar)


async def get_letter(request: web.Request) -> web.Response:
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        letter = await _letter(request, conn, pol)
        await store.event(
            conn,
            await store.load(conn, path_id(request)),
            principal(request).actor,
            "viewed",
            why="rendered the customer letter",
        )
    fmt = request.query.get("format") or ("text" if "text/plain" in request.headers.get("Accept", "") else "html")
    if fmt == "text":
        return web.Response(text=letter.text, content_type="text/plain")
    if fmt == "json":
        return web.json_response({"text": letter.text, "html": letter.html})
    if fmt != "html":
        raise field_error("format", "one of html, text, json")
    return web.Response(text=letter.html, content_type="text/html")


async def post_letter(request: web.Request) -> web.Response:
    body = await read_model(request, LetterSentIn)
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        letter = await _letter(request, conn, pol)
        record = await transitions.record_letter(
            conn,
            path_id(request),
            body,
            (letter.text, letter.html),
            pol,
            principal(request).actor,
            today(request),
        )
    return await _published(request, record)


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/restrictions/{id}", get_full, READ)
    add_route(app, "GET", "/v1/restrictions/{id}/events", get_events, READ)
    add_route(app, "GET", "/v1/restrictions/{id}/letter", get_letter, READ)
    # The steps a person takes, recorded as taken by whoever is signed in.
    add_route(app, "POST", "/v1/restrictions", create, WRITE, person=True)
    steps: list[tuple[str, Callable[[web.Request], Awaitable[web.Response]], tuple[str, ...]]] = [
        ("/decide", _transition(DecisionIn, store.add_decision), WRITE),
        ("/letter", post_letter, WRITE),
        ("/appeal", _transition(AppealIn, appeals.lodge_appeal), WRITE),
        ("/appeal/decision", _transition(AppealDecisionIn, appeals.decide_appeal), APPEAL),
        ("/review", _transition(ReviewIn, transitions.review), WRITE),
        ("/lift", _transition(LiftIn, transitions.lift), WRITE),
    ]
    for step, handler, roles in steps:
        add_route(app, "POST", "/v1/restrictions/{id}" + step, handler, roles, person=True)
