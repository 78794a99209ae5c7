"""What every page carries for its safety: a strict Content-Security-Policy (no inline script or
style; scripts only from /static), `frame-ancestors` that lets only the configured agent desktops
embed the pages meant for them, and CSRF tokens.

A CSRF token is an HMAC, under a secret every gateway process shares (stored once in the database),
of what the browser holds and an attacker's page cannot read: the staff session's cookie when
signed in, else an anonymous form cookie. Cookies are SameSite=None (the agent screen works inside a
desktop's iframe), so a cross-site request does carry them: every state-changing request made with
a cookie must also carry the token (a form field, or the X-CSRF-Token header), and its Origin, when
sent, must be this gateway's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets

from aiohttp import web

from ..appkeys import POOL, SETTINGS
from ..store import signin as store

FORM_COOKIE = "gw_form"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# The routes whose pages an agent desktop may embed (the agent screen and the sign-in it needs).
EMBEDDABLE: web.AppKey[set[web.AbstractRoute]] = web.AppKey("embeddable", set)
_SECRET: web.AppKey[dict[str, bytes]] = web.AppKey("page_secret", dict)
_SECRET_LOCK: web.AppKey[asyncio.Lock] = web.AppKey("page_secret_lock", asyncio.Lock)

_COOKIE_TEXT = re.compile(r"[A-Za-z0-9_-]{0,200}")
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'"
)


def content_security_policy(frame_origins: tuple[str, ...] | None) -> str:
    """The policy for a page: None means it may not be framed at all."""
    ancestors = "'none'" if frame_origins is None else " ".join(("'self'", *frame_origins))
    return f"{_POLICY}; frame-ancestors {ancestors}"


_NOT_FRAMED = content_security_policy(None)
# What every reply that is not an embeddable page carries (the lean edge, gateway.edge, writes them too).
NOT_FRAMED_HEADERS = (
    ("Content-Security-Policy", _NOT_FRAMED),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, pages and API alike, and streams before they start."""
    embeddable = request.match_info.route in request.app[EMBEDDABLE]
    headers = response.headers
    if embeddable:
        origins = request.app[SETTINGS].agent_frame_origins
        headers.setdefault("Content-Security-Policy", content_security_policy(origins))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
    else:
        for name, value in NOT_FRAMED_HEADERS:  # on every API reply: built once
            headers.setdefault(name, value)
    if headers.get("Content-Type", "").startswith("text/html"):
        headers.setdefault("Cache-Control", "no-store")


async def page_secret(app: web.Application) -> bytes:
    """The secret that signs CSRF tokens, read once per process (the first process makes it)."""
    held = app[_SECRET]
    if "csrf" not in held:
        async with app[_SECRET_LOCK]:
            if "csrf" not in held:
                held["csrf"] = await store.shared_secret(app[POOL], "csrf", secrets.token_bytes(32))
    return held["csrf"]


def csrf_token(secret: bytes, binding: str) -> str:
    return hmac.new(secret, b"csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: bytes, binding: str | None, token: str | None) -> bool:
    if not binding or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, binding), token)


def same_origin(request: web.Request) -> bool:
    """A browser names where a request comes from; a cross-site one is refused. No Origin (an old
    browser, a tool) is left to the token."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1] == request.host


def from_elsewhere(request: web.Request) -> bool:
    """A browser says this request was made by another site's page (a link, a form, a script):
    `Sec-Fetch-Site` other than same-origin or none (typed, a bookmark), or a foreign Origin."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    return not same_origin(request)


def form_binding(request: web.Request) -> str | None:
    """The anonymous form cookie's value, if the browser has one."""
    return request.cookies.get(FORM_COOKIE) or None


def set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int | None = None) -> None:
    """Every cookie the gateway sets: HttpOnly, Secure, and SameSite=None so it reaches the pages
    inside a desktop's iframe. Partitioned (CHIPS): inside a desktop the cookie is kept for that
    desktop alone, which is how browsers that block third-party cookies (Safari, Firefox, Chrome's
    private windows) still let it be set and sent there; so an agent signs in once inside the desktop,
    and separately when they open the screen on its own. Browsers treat http://localhost and
    127.0.0.1 as secure, so the tests' plain-HTTP servers keep them."""
    # Written out by hand: the standard library's cookie writer knows Partitioned only from Python 3.14.
    if not _COOKIE_TEXT.fullmatch(value):
        raise ValueError("a cookie value the gateway sets is URL-safe text")
    lifetime = "" if max_age is None else f"; Max-Age={max_age}"
    response.headers.add(
        "Set-Cookie", f"{name}={value}; Path=/; HttpOnly; Secure; SameSite=None; Partitioned{lifetime}"
    )


def give_form_cookie(request: web.Request, response: web.StreamResponse) -> str:
    """The anonymous form cookie for a page with a form: the one the browser has, or a new one."""
    binding = form_binding(request)
    if binding is None:
        binding = secrets.token_urlsafe(24)
        set_cookie(response, FORM_COOKIE, binding)
    return binding


def setup(app: web.Application) -> None:
    app[EMBEDDABLE] = set()
    app[_SECRET] = {}
    app[_SECRET_LOCK] = asyncio.Lock()
    app.on_response_prepare.append(security_headers)
