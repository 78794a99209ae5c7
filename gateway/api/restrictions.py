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
from ..errors import StateConflict, field_error
from ..http import add_route, dump, principal
from ..inputs import path_id, query_flag, query_text, read_model
from ..invalidation import publish
from ..letterpdf import PDF_TYPE, to_pdf_async
from ..letters import LetterFacts, letter_email, logo_data_url, render
from ..models.restrictions import (
    AppealDecisionIn,
    AppealIn,
    DecisionIn,
    DeclineIn,
    LetterSendIn,
    LetterSentIn,
    LiftIn,
    Restriction,
    RestrictionIn,
    ReviewIn,
    SignOffIn,
)
from ..outbox.acks import ack_address
from ..reviews import local_today, utc_now
from ..runtime import RUNTIME
from ..settings import Settings
from ..store import appeals, people, reports, signoffs, transitions
from ..store import restrictions as store
from ..store.index import load_closures

WRITE = ("caution_lead",)
READ = ("caution_lead", "manager")
# Policy 000 §6.3: an appeal goes to a manager (a manager or senior manager) who took no part.
APPEAL = ("manager",)
# An equality note is signed by a manager; a longer review period agreed by a service caution lead
# or a manager (the store checks the staff role, and that they are the one asked).
SIGN_NOTE = ("manager",)
APPROVE_PERIOD = ("caution_lead", "manager")
M = TypeVar("M", bound=pydantic.BaseModel)


def today(request: web.Request) -> date:
    return local_today(utc_now(), ZoneInfo(request.app[SETTINGS].tz))


async def policy(request: web.Request) -> lc.Policy:
    settings = request.app[SETTINGS]
    closures = await load_closures(request.app[POOL])
    return lc.Policy(
        rule=lc.parse_rule(settings.activation_rule),
        review_months=settings.review_default_months,
        calendar=settings.calendar(closures),
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


LETTER_FORMATS = {"html": "text/html", "text": "text/plain", "json": "application/json", "pdf": PDF_TYPE}


async def _facts(request: web.Request, conn: Any, pol: lc.Policy, large_print: bool | None) -> LetterFacts:
    """The letter's facts with the provider's letterhead; large print as asked, else as the
    customer's adjustments say."""
    settings = request.app[SETTINGS]
    facts = await reports.letter_facts(conn, path_id(request), pol, today(request))
    return dataclasses.replace(
        facts,
        provider=settings.provider(),
        logo=logo_data_url(settings.provider_logo),
        large_print=facts.large_print if large_print is None else large_print,
    )


def _letter_format(request: web.Request) -> str:
    """?format= first; else the Accept header (application/pdf, text/plain); else HTML."""
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in LETTER_FORMATS:
            raise field_error("format", "one of " + ", ".join(LETTER_FORMATS))
        return fmt
    accept = request.headers.get("Accept", "")
    return "pdf" if PDF_TYPE in accept else "text" if "text/plain" in accept else "html"


async def get_letter(request: web.Request) -> web.Response:
    fmt, large_print = _letter_format(request), query_flag(request, "large_print")
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        letter = render(await _facts(request, conn, pol, large_print), pol.calendar)
        await store.event(
            conn,
            await store.load(conn, path_id(request)),
            principal(request).actor,
            "viewed",
            why=f"rendered the customer letter ({fmt})",
        )
    if fmt == "pdf":
        return web.Response(
            body=await to_pdf_async(letter.html),
            content_type=PDF_TYPE,
            headers={"Content-Disposition": f'inline; filename="{letter.reference}.pdf"'},
        )
    if fmt == "json":
        return web.json_response({"text": letter.text, "html": letter.html})
    return web.Response(text=letter.text if fmt == "text" else letter.html, content_type=LETTER_FORMATS[fmt])


async def post_letter(request: web.Request) -> web.Response:
    body = await read_model(request, LetterSentIn)
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        facts = await _facts(request, conn, pol, None)
        letter = render(facts, pol.calendar)
        record = await transitions.record_letter(
            conn,
            path_id(request),
            body,
            letter,
            pol,
            principal(request).actor,
            today(request),
            made_from=facts.restriction.updated_at,
        )
    return await _published(request, record)


def _can_email(settings: Settings) -> None:
    if not settings.smtp_url or not ack_address(settings):
        raise StateConflict(
            "letters cannot be emailed until a mail relay (GATEWAY_SMTP_URL) and the address they come "
            "from (GATEWAY_PROVIDER_EMAIL or GATEWAY_ACK_FROM) are configured: post it (by: post)",
            code="email_not_configured",
        )


async def send_letter(request: web.Request) -> web.Response:
    """Email the PDF through the outbox, or record that the signed-in person posted it; either way
    the letter is recorded as sent, with how, when, to whom and a copy of the PDF."""
    body = await read_model(request, LetterSendIn)
    pol = await policy(request)
    async with request.app[POOL].acquire() as conn:
        facts = await _facts(request, conn, pol, body.large_print)
        recipient = None
        if body.by == "email":
            recipient = await people.email_recipient(conn, facts.restriction.customer_id, body.representative_id)
            _can_email(request.app[SETTINGS])
    letter = render(facts, pol.calendar)
    pdf = await to_pdf_async(letter.html)
    email = letter_email(recipient, letter, pdf, request.app[SETTINGS].provider()) if recipient else None
    sent = LetterSentIn(sent_on=body.sent_on, method=body.by, note=body.note)
    async with request.app[POOL].acquire() as conn:
        record = await transitions.record_letter(
            conn,
            path_id(request),
            sent,
            letter,
            pol,
            principal(request).actor,
            today(request),
            pdf=pdf,
            email=email,
            made_from=facts.restriction.updated_at,
        )
    if email is not None:
        request.app[RUNTIME].outbox.wake()
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
        ("/letter/send", send_letter, WRITE),
        ("/appeal", _transition(AppealIn, appeals.lodge_appeal), WRITE),
        ("/appeal/decision", _transition(AppealDecisionIn, appeals.decide_appeal), APPEAL),
        ("/review", _transition(ReviewIn, transitions.review), WRITE),
        ("/lift", _transition(LiftIn, transitions.lift), WRITE),
        ("/equality-note/sign", _transition(SignOffIn, signoffs.sign_equality_note), SIGN_NOTE),
        ("/review-period/approve", _transition(SignOffIn, signoffs.approve_review_period), APPROVE_PERIOD),
        ("/equality-note/decline", _transition(DeclineIn, signoffs.decline_equality_note), SIGN_NOTE),
        ("/review-period/decline", _transition(DeclineIn, signoffs.decline_review_period), APPROVE_PERIOD),
    ]
    for step, handler, roles in steps:
        add_route(app, "POST", "/v1/restrictions/{id}" + step, handler, roles, person=True)
