"""HTTP edge: the role table, the one error middleware, request ids (reading what a caller sent: inputs.py)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import pydantic
from aiohttp import web

from . import logs, metrics
from .auth import Principal
from .errors import (
    DomainError,
    Fault,
    FieldInvalid,
    Forbidden,
    GatewayError,
    Missing,
    NotAllowed,
    RuleConflict,
    StateConflict,
    Unauthorized,
)
from .randomid import new_hex
from .rules.vocabulary import RulesInvalid

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The one role table: route → the API-key roles allowed on it; None means public (health, the HTML
# web form, ...). `admin` is in every entry except a person's own lifecycle steps (see add_route).
ROUTE_ROLES: web.AppKey[dict[web.AbstractRoute, frozenset[str] | None]] = web.AppKey("route_roles")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
# Routes whose refused callers are logged (an inbound contact channel's: every attempt is logged,
# even one without a key), with what logs a refusal (the request, why it was refused).
OnRefused = Callable[[web.Request, str], Awaitable[None]]
LOG_REFUSED: web.AppKey[dict[web.AbstractRoute, OnRefused]] = web.AppKey("log_refused")
READ_METHODS = frozenset({"GET", "HEAD"})


def add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    roles: Iterable[str] | None,
    *,
    name: str | None = None,
    person: bool = False,
) -> web.AbstractRoute:
    """Register a route together with who may call it. `admin` may call everything except a route
    marked `person`: a step a staff member takes and is recorded as taking, which an admin key, being
    no one, cannot."""
    route = app.router.add_route(method, path, handler, name=name)
    app[ROUTE_ROLES][route] = None if roles is None else frozenset(roles) | (set() if person else {"admin"})
    return route


class PageShown(Exception):
    """A page handler's answer given by raising (a redirect to sign-in, a refusal page): the error
    middleware returns `response` as it is, not as a JSON error."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        if isinstance(response, web.HTTPException):  # aiohttp refuses to be handed one as a response
            response = web.Response(status=response.status, headers=response.headers, text=response.text)
        self.response = response


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def error_body(status: int, code: str, message: str, details: Any = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "details": details}}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}


# The one place a domain refusal gets its HTTP status.
_DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotAllowed, 403),
    (Missing, 404),
    (RuleConflict, 409),
    (StateConflict, 409),
    (FieldInvalid, 422),
    (Fault, 500),
)


def _domain_status(exc: DomainError) -> int:
    return next((status for cls, status in _DOMAIN_STATUS if isinstance(exc, cls)), 400)


# The names pydantic gives the branches of a union ("function-after[_checked(), PostalAddress]",
# "literal['']"): not fields, so left out of the field's path.
_UNION_BRANCH = re.compile(r"^(function-[a-z]+|literal|union|tagged-union)\[.*\]$")


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and _UNION_BRANCH.match(p))) or "body"


def _pydantic_details(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": _field_path(tuple(e["loc"])), "message": e["msg"].removeprefix("Value error, "), "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


# A database constraint that refused a write: what the caller is told. The constraint's name is
# how we are built, so it goes to our log only.
_CONSTRAINT_REFUSALS: dict[type[asyncpg.PostgresError], tuple[int, str, str]] = {
    asyncpg.UniqueViolationError: (409, "conflict", "this would duplicate an existing record"),
    asyncpg.ForeignKeyViolationError: (422, "invalid", "a referenced record does not exist; check the ids given"),
    asyncpg.CheckViolationError: (422, "invalid", "a value is outside what is allowed"),
    asyncpg.NotNullViolationError: (422, "invalid", "a required value is missing"),
}


def _constraint_refusal(exc: asyncpg.IntegrityConstraintViolationError) -> web.Response | None:
    for kind, (status, code, message) in _CONSTRAINT_REFUSALS.items():
        if isinstance(exc, kind):
            log.warning("refused by database constraint %s (%s)", exc.constraint_name, kind.__name__)
            return error_body(status, code, message)
    return None


# Values a caller can send that PostgreSQL cannot store. Other data errors (a division by zero, an
# invalid cast) come from our own statements: they stay server errors, logged with their trace.
_UNSTORABLE = (
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
    asyncpg.NumericValueOutOfRangeError,
    asyncpg.StringDataRightTruncationError,
)


def _translate(exc: BaseException) -> web.Response | None:
    """Map a known exception to its JSON error response; None for a genuine fault."""
    if isinstance(exc, GatewayError):  # the edge's own refusals carry their status
        return error_body(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, DomainError):
        return error_body(_domain_status(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, RulesInvalid):
        return error_body(422, exc.code, str(exc), exc.errors)
    if isinstance(exc, pydantic.ValidationError):
        details = _pydantic_details(exc)
        first = details[0] if details else {"field": "body", "message": "invalid"}
        return error_body(422, "invalid", f"{first['field']}: {first['message']}", details)
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        if exc.status == 413:
            return error_body(413, "too_large", "request body is larger than the configured limit")
        return error_body(exc.status, _HTTP_CODES.get(exc.status, "error"), exc.reason)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return _constraint_refusal(exc)
    if isinstance(exc, _UNSTORABLE):  # a value the caller sent that the database cannot take
        log.warning("refused by the database: %s", type(exc).__name__)
        return error_body(422, "invalid", "a value in the request cannot be stored")
    if isinstance(
        exc,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | TimeoutError,
    ):
        return error_body(503, "unavailable", "a backing service is unavailable; try again")
    return None


def log_request(method: str, path: str, status: int, started: float, route: str) -> None:
    """Each request answered (by the middleware, or by the lean edge): counted by its route's
    template and status, and a DEBUG line."""
    metrics.count_request(route, status)
    if log.isEnabledFor(logging.DEBUG):
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.debug("request", extra={"method": method, "path": path, "status": status, "ms": ms})


def error_response(exc: Exception, method: str, path: str) -> web.Response:
    """The JSON error reply to an exception a handler raised (logged as it deserves)."""
    translated = _translate(exc)
    if translated is None:
        log.error("unhandled error on %s %s", method, path, exc_info=exc)
        return error_body(500, "internal", "internal error; the request id is in the logs")
    if translated.status >= 500:
        log.warning("%s on %s %s: %r", translated.status, method, path, exc)
    return translated


def error_reply(exc: Exception, method: str, path: str) -> tuple[int, bytes]:
    """`error_response` as a status and a body (the lean edge writes its replies itself)."""
    response = error_response(exc, method, path)
    assert isinstance(response.body, bytes)
    return response.status, response.body


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.headers.get("X-Request-Id", "")[:64] or new_hex()
    token = logs.request_id.set(rid)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except PageShown as shown:
            response = shown.response
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect, which aiohttp answers as raised
                log_request(request.method, request.path, exc.status, started, _route(request))
                raise
            response = _translate(exc) or error_body(500, "internal", "internal error")
        except Exception as exc:
            response = error_response(exc, request.method, request.path)
        response.headers["X-Request-Id"] = rid
        log_request(request.method, request.path, response.status, started, _route(request))
        return response
    finally:
        logs.request_id.reset(token)


def _route(request: web.Request) -> str:
    """The route's template, for counting (a path that matched no route, or not for this method: 'unmatched')."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


async def _refused(request: web.Request, route: web.AbstractRoute, refusal: GatewayError) -> GatewayError:
    """The refusal to raise, once logged as a contact when the route is a channel's (LOG_REFUSED).
    Only refusals pay for this: an accepted request goes through the middleware as before."""
    on_refused = request.app.get(LOG_REFUSED, {}).get(route)
    if on_refused is not None:
        try:
            await on_refused(request, refusal.message)
        except Exception:  # the caller hears its refusal all the same
            log.exception("a refused %s %s could not be logged", request.method, request.path)
    return refusal


def auth_middleware_factory(
    resolve: Callable[[str], Awaitable[Principal | None]],
    signed_in: Callable[[web.Request], Awaitable[Principal | None]] | None = None,
) -> Any:
    """Who is calling: the API key in the Authorization header or, without one, the staff member
    signed in in this browser (`signed_in`; it refuses what another site's page sent, and a write
    without the page's token). A channel's refused caller is logged (LOG_REFUSED)."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        roles = request.app[ROUTE_ROLES].get(route)
        if roles is None:  # public route, or no route matched (the router answers 404/405)
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        who: Principal | None = None
        if not header and signed_in is not None:
            who = await signed_in(request)  # its own refusals (another site's page) are not contacts
        if who is None:
            if scheme.lower() != "bearer" or not key.strip():
                raise await _refused(
                    request, route, Unauthorized("an API key is required: Authorization: Bearer <key>")
                )
            # No key we issue is anything but ASCII (and bytes that are not UTF-8 would not hash).
            who = await resolve(key.strip()) if key.isascii() else None
        if who is None:
            raise await _refused(request, route, Unauthorized("the API key is not recognised or has been revoked"))
        if who.role not in roles:
            # Who may call what is for our log; the caller learns only that this key may not.
            log.warning("%s key refused on %s %s (allowed: %s)", who.role, request.method, request.path, sorted(roles))
            raise await _refused(request, route, Forbidden("this API key may not call this endpoint"))
        if who.reads_only and request.method not in READ_METHODS:
            raise await _refused(
                request,
                route,
                Forbidden(
                    "this API key belongs to no staff member, so it may only read; "
                    "ask for a key of your own (python -m gateway keys create --staff ID)"
                ),
            )
        request[PRINCIPAL] = who
        return await handler(request)

    return auth_middleware


def dump(model: pydantic.BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


MAX_BODY: web.AppKey[int] = web.AppKey("max_body")
