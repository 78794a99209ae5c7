"""Staff sign-in: a password an admin sets for a staff member (scrypt), browser sessions that belong
to that one staff member and take their role (as their API keys do, gateway/auth.py), sign-out,
expiry, and `require_staff`, which a page handler calls to insist on a signed-in role.

Sign-in is by the staff member's mailbox and password. Every attempt is audited
(staff_sign_in_events), and that audit is the rate limit: after too many refusals for one login, or
from one address, in a quarter of an hour, further attempts are held back (429) without checking
the password, so guessing is slow and every guess is on record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import asyncpg
from aiohttp import web

from ..appkeys import POOL, SETTINGS
from ..auth import KEY_ROLE_OF_STAFF, Principal
from ..errors import Forbidden, Invalid
from ..inputs import client_address
from ..lifecycle import Actor, staff_actor
from ..store import keys as key_store
from ..store import signin as store
from .security import CSRF_HEADER, csrf_matches, from_elsewhere, page_secret, same_origin

SESSION_COOKIE = "gw_session"
MIN_PASSWORD = 12
MAX_PASSWORD = 200
REFUSALS_PER_LOGIN = 5
REFUSALS_PER_ADDRESS = 30
HOLD_BACK = timedelta(minutes=15)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_SESSION: web.RequestKey[StaffSession | None] = web.RequestKey("staff_session", object)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StaffSession:
    """A signed-in browser: who it belongs to, with what role, and the token its forms carry."""

    id: int
    token: str
    staff_id: int
    name: str
    staff_role: str
    queue: str | None
    expires_at: datetime

    @property
    def role(self) -> str:
        return KEY_ROLE_OF_STAFF[self.staff_role]

    @property
    def principal(self) -> Principal:
        return Principal(0, f"session {self.id}", self.role, self.staff_id, self.staff_role, self.name)

    @property
    def actor(self) -> Actor:
        return staff_actor(self.staff_id, self.name)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=64 * 1024 * 1024
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, bytes.fromhex(digest))


# Checked when the login is unknown, so an unknown login takes as long as a wrong password.
_DECOY = hash_password(secrets.token_urlsafe(16))


def login_of(mailbox: str) -> str:
    return mailbox.strip().lower()


async def set_staff_password(pool: asyncpg.Pool, staff_id: int, password: str, actor: Actor) -> str:
    """Set (or replace) a staff member's password; they sign in with their mailbox, and any browser
    signed in as them is signed out (a new password is often set because the old one got out). The
    login."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Invalid(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", [{"field": "password"}])
    member = await key_store.staff_member(pool, staff_id)
    if member is None or not member["active"]:
        raise Invalid(f"staff member {staff_id} does not exist or is inactive", [{"field": "staff_id"}])
    mailbox = await pool.fetchval("SELECT mailbox FROM staff WHERE id = $1", staff_id)
    if not mailbox:
        raise Invalid("this staff member has no mailbox to sign in with; set one first", [{"field": "staff_id"}])
    login = login_of(mailbox)
    owner = await store.login_owner(pool, login)
    if owner is not None and owner != staff_id:
        raise Invalid("another staff member already signs in with this mailbox", [{"field": "staff_id"}])
    hashed = await asyncio.to_thread(hash_password, password)
    async with pool.acquire() as conn, conn.transaction():
        await store.set_password(conn, staff_id, login, hashed, actor.label)
        await store.end_sessions_of(conn, staff_id)
        await store.record_event(conn, "password_set", staff_id=staff_id, login=login, actor=actor.label)
    return login


class SignInRefused(Exception):
    """The mailbox and password do not match an active staff member (the message says no more)."""


class SignInHeldBack(Exception):
    """Too many refused attempts lately for this login or from this address."""


async def _held_back(pool: asyncpg.Pool, login: str, address: str, attempt: int) -> bool:
    """Too many refusals lately, counting the attempts under way that began before this one."""
    since = datetime.now(UTC) - HOLD_BACK
    row = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE login = $1) AS by_login, count(*) FILTER (WHERE address = $2) AS by_address
           FROM staff_sign_in_events WHERE kind IN ('refused', 'checking') AND at > $3 AND id < $4
           AND (login = $1 OR address = $2)""",
        login,
        address,
        since,
        attempt,
    )
    return bool(row["by_login"] >= REFUSALS_PER_LOGIN or row["by_address"] >= REFUSALS_PER_ADDRESS)


async def sign_in(app: web.Application, mailbox: str, password: str, address: str) -> StaffSession:
    """Check a mailbox and password; a new session for its staff member. Raises SignInRefused or
    SignInHeldBack, each audited. The attempt is recorded before it is checked, so that attempts made
    at once count each other: a burst gets no more guesses than attempts made one after another."""
    pool = app[POOL]
    login = login_of(mailbox)[:320]
    attempt = await store.start_attempt(pool, login, address)
    try:
        return await _check(app, login, password, address, attempt)
    except (SignInRefused, SignInHeldBack):
        raise
    except BaseException:
        # Whatever else stopped the check (a database error, the worker stopping), the attempt is not
        # left under way: it counts as refused, as a guess that got no answer.
        with contextlib.suppress(Exception):
            await store.abandon_attempt(pool, attempt)
        raise


async def _check(app: web.Application, login: str, password: str, address: str, attempt: int) -> StaffSession:
    pool = app[POOL]
    if await _held_back(pool, login, address, attempt):
        await store.end_attempt(pool, attempt, "held_back")
        raise SignInHeldBack
    row = await store.password_of(pool, login)
    ok = await asyncio.to_thread(password_matches, password[:MAX_PASSWORD], row["hash"] if row else _DECOY)
    if row is None or not ok:
        await store.end_attempt(pool, attempt, "refused", row["staff_id"] if row else None)
        raise SignInRefused
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(hours=app[SETTINGS].session_hours)
    expires = datetime.now(UTC) + lifetime
    async with pool.acquire() as conn, conn.transaction():
        await store.start_session(conn, _digest(token), row["staff_id"], expires)
        await store.end_attempt(conn, attempt, "signed_in", row["staff_id"])
    session = await _lookup(pool, token)
    assert session is not None
    return session


async def sign_out(request: web.Request) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        pool = request.app[POOL]
        staff_id = await store.end_session(pool, _digest(token))
        if staff_id is not None:
            await store.record_event(pool, "signed_out", staff_id=staff_id, address=client_address(request))
    request[_SESSION] = None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _lookup(pool: asyncpg.Pool, token: str) -> StaffSession | None:
    row = await store.live_session(pool, _digest(token))
    if row is None:
        return None
    return StaffSession(
        row["id"], token, row["staff_id"], row["staff_name"], row["staff_role"], row["queue"], row["expires_at"]
    )


async def _cookie_session(request: web.Request) -> StaffSession | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return await _lookup(request.app[POOL], token) if 20 <= len(token) <= 100 else None


async def current_session(request: web.Request) -> StaffSession | None:
    """The live session this browser holds, looked up once per request; None if signed out or ended."""
    if _SESSION not in request:
        request[_SESSION] = await _cookie_session(request)
    return request[_SESSION]


async def session_now(request: web.Request) -> Principal | None:
    """Who this browser's session is now, looked up again (not the copy kept for the request): None
    once it has ended (signed out, a new password), expired, or its staff member is inactive."""
    session = await _cookie_session(request)
    return None if session is None else session.principal


async def check_csrf(request: web.Request, binding: str | None, token: str | None) -> bool:
    """A state-changing request from a browser: from this gateway's own pages, carrying their token."""
    return same_origin(request) and csrf_matches(await page_secret(request.app), binding, token)


async def session_principal(request: web.Request) -> Principal | None:
    """For the API's role check: the signed-in staff member behind this browser's cookie. A request
    another site's page made is refused, reads included; one that changes something must carry the
    page's CSRF token in the X-CSRF-Token header."""
    session = await current_session(request)
    if session is None:
        return None
    if from_elsewhere(request):  # reads too: some write an audit event ("viewed", and why) in their name
        raise Forbidden("this request came from another site; open the gateway's own page and try again")
    writes = request.method not in ("GET", "HEAD")
    if writes and not await check_csrf(request, session.token, request.headers.get(CSRF_HEADER)):
        raise Forbidden("this request did not come from the gateway's own page; reload it and try again")
    return session.principal


def sign_in_url(request: web.Request) -> str:
    return f"/sign-in?next={quote(request.path_qs, safe='')}"
