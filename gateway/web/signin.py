"""The sign-in and sign-out pages: staff sign in with their mailbox and the password an admin set
for them; the session cookie then carries them on every page and to the API calls their pages
make."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from ..appkeys import SETTINGS
from ..inputs import client_address
from .pages import add_page, read_form, render
from .security import CSRF_FIELD, form_binding, set_cookie
from .sessions import (
    SESSION_COOKIE,
    SignInHeldBack,
    SignInRefused,
    check_csrf,
    current_session,
    sign_in,
    sign_out,
)

MAX_FORM = 4096


def _next(raw: str | None) -> str:
    """Where to go after signing in: a path on this gateway only (never another site)."""
    if not raw:
        return "/agent"
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. "//[": not a URL at all
        return "/agent"
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/agent"
    return raw


async def sign_in_page(request: web.Request) -> web.Response:
    context = {"next": _next(request.query.get("next")), "errors": {}, "mailbox": "", "notice": ""}
    if request.query.get("signed_out"):
        context["notice"] = "You have signed out."
    elif request.cookies.get(SESSION_COOKIE) and await current_session(request) is None:
        context["notice"] = "Your session has ended. Sign in again to continue."
    return await render(request, "sign_in.html", context)


async def sign_in_form(request: web.Request) -> web.Response:
    form = await read_form(request, MAX_FORM)
    if form is None:
        return await render(request, "message.html", {"title": "Too much was sent", "lines": []}, status=413)
    mailbox, password = form.get("mailbox", "")[:320], form.get("password", "")
    next_ = _next(form.get("next", ""))
    if not await check_csrf(request, form_binding(request), form.get(CSRF_FIELD)):
        return await refused_page(request)
    errors = {}
    if not mailbox.strip():
        errors["mailbox"] = "Enter your work email address"
    if not password:
        errors["password"] = "Enter your password"
    status = 422
    if not errors:
        try:
            session = await sign_in(request.app, mailbox, password, client_address(request))
        except SignInRefused:
            errors["mailbox"] = "The email address or password is not right"
        except SignInHeldBack:
            errors["mailbox"] = "Too many attempts to sign in. Wait 15 minutes, then try again"
            status = 429
        else:
            response = web.HTTPSeeOther(next_)
            set_cookie(response, SESSION_COOKIE, session.token, max_age=request.app[SETTINGS].session_hours * 3600)
            raise response
    context = {"next": next_, "errors": errors, "mailbox": mailbox, "notice": ""}
    return await render(request, "sign_in.html", context, status=status)


async def sign_out_form(request: web.Request) -> web.Response:
    session = await current_session(request)
    form = await read_form(request, MAX_FORM) or {}
    if session is not None:
        if not await check_csrf(request, session.token, form.get(CSRF_FIELD)):
            return await refused_page(request)
        await sign_out(request)
    response = web.HTTPSeeOther("/sign-in?signed_out=1")
    set_cookie(response, SESSION_COOKIE, "", max_age=0)
    raise response


async def refused_page(request: web.Request) -> web.Response:
    lines = ["The form had expired or did not come from this website.", "Go back, reload the page and try again."]
    return await render(request, "message.html", {"title": "Sorry, that did not work", "lines": lines}, status=403)


def setup(app: web.Application) -> None:
    add_page(app, "GET", "/sign-in", sign_in_page, embeddable=True)
    add_page(app, "POST", "/sign-in", sign_in_form, embeddable=True)
    add_page(app, "POST", "/sign-out", sign_out_form, embeddable=True)
