"""Domain exceptions. The store and services raise these; one middleware turns them into HTTP."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Base: carries a stable machine code, a sentence for people and optional details."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class TooLarge(GatewayError):
    status, code = 413, "too_large"


class Invalid(GatewayError):
    """The request was well-formed but a field is wrong; details name the field."""

    status, code = 422, "invalid"


class Unavailable(GatewayError):
    status, code = 503, "unavailable"


def field_error(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", [{"field": field, "message": message}])
