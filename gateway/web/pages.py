"""Server-rendered pages: Jinja2 through aiohttp-jinja2 (autoescaping on, templates in
gateway/web/templates, static files from gateway/web/static), and `render`, which every page uses so
each carries who is signed in and a CSRF token for its forms."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..appkeys import SETTINGS
from ..http import Handler, PageShown, add_route
from .security import EMBEDDABLE, FORM_COOKIE, csrf_token, form_binding, page_secret, set_cookie
from .sessions import StaffSession, current_session, sign_in_url

HERE = Path(__file__).resolve().parent
_FORM: web.RequestKey[dict[str, str] | None] = web.RequestKey("posted_form", object)  # type: ignore[arg-type]


def add_page(app: web.Application, method: str, path: str, handler: Handler, *, embeddable: bool = False) -> None:
    """A page route. Pages are public in the API's role table (no key): a page that is for staff
    only checks the browser's session itself with `require_staff`. `embeddable`: the configured
    agent desktops (GATEWAY_AGENT_FRAME_ORIGINS) may show it in an iframe; no one else may."""
    add_route(app, method, path, handler, None)
    if embeddable:
        app[EMBEDDABLE].update(r for r in app.router.routes() if r.resource and r.resource.canonical == path)


async def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """A page, with `staff` (the signed-in session or None), `csrf` (the token its forms carry) and
    `provider` (who runs the service) in its context."""
    session = await current_session(request)
    secret = await page_secret(request.app)
    new_binding = None
    if session is not None:
        binding = session.token
    else:
        binding = form_binding(request) or ""
        if not binding:
            binding = new_binding = secrets.token_urlsafe(24)
    provider = request.app[SETTINGS].provider_name
    context = {
        "staff": session,
        "csrf": csrf_token(secret, binding),
        "provider": provider,
        "provider_title": provider[:1].upper() + provider[1:],
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    if new_binding is not None:
        set_cookie(response, FORM_COOKIE, new_binding)
    return response


MAX_FORM_BYTES = 64 * 1024  # the longest message, every character percent-encoded, with room


async def read_form(request: web.Request, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """A posted form's fields (URL-encoded, as every page's form posts them; any other body reads as
    no fields, so its CSRF check fails), or None when the body is larger than `limit`. Read once per
    request."""
    if _FORM in request:
        return request[_FORM]
    fields: dict[str, str] | None = {}
    if (request.content_length or 0) > limit:
        fields = None
    else:
        raw = b""
        while chunk := await request.content.read(limit + 1 - len(raw)):
            raw += chunk
            if len(raw) > limit:
                fields = None
                break
        if fields is not None and request.content_type == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=30)
                # PostgreSQL text cannot hold NUL: replaced, as in a contact, so a form is read, not a 500.
                fields = {k.replace("\x00", "\ufffd"): v.replace("\x00", "\ufffd") for k, v in pairs}
            except ValueError:  # more fields than any of our forms has: refused as too long, like a long one
                fields = None
    request[_FORM] = fields
    return fields


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
    )
    env.globals["static_version"] = secrets.token_hex(4)  # a new start-up busts cached CSS and JS
    app.router.add_static("/static", HERE / "static", name="static", append_version=False)


async def require_staff(request: web.Request, roles: tuple[str, ...]) -> StaffSession:
    """The signed-in staff member whose role (as their keys would carry it: agent, caution_lead,
    manager) is one of `roles`. Signed out or expired: to the sign-in page, and back here after it.
    Another role: a page that says this screen is not theirs (403)."""
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther(sign_in_url(request))
    if session.role not in roles:
        raise PageShown(await render(request, "not_yours.html", {}, status=403))
    return session
