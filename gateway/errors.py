"""Exceptions: the domain's own refusals (no HTTP in them), and the HTTP edge's.

Lifecycle, store and other domain code raise `DomainError`s; request parsing and authentication
raise `GatewayError`s. The error middleware (gateway.http) turns both into JSON responses.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal by the domain: a stable machine code, a sentence for people, optional details."""

    code = "refused"

    def __init__(self, message: str, details: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class NotAllowed(DomainError):
    """This person may not take this decision (their role, or their part in it)."""

    code = "forbidden"


class RuleConflict(DomainError):
    """A policy rule refuses the change: no way in left, an adjustment broken, an involved decider."""

    code = "conflict"


class StateConflict(DomainError):
    """The records as they stand refuse it: a status that does not allow the step, a duplicate."""

    code = "conflict"


class Missing(DomainError):
    """A record the request names does not exist."""

    code = "not_found"


class FieldInvalid(DomainError):
    """One field of what was asked is wrong; `field` is its path, e.g. 'params.case_id'."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", [{"field": field, "message": message}])
        self.field = field


class Fault(DomainError):
    """Something the gateway holds is broken (a provider's letter template): not the caller's doing."""

    code = "fault"


class GatewayError(DomainError):
    """An HTTP-edge refusal (request parsing, authentication): the same shape, and its status."""

    status = 400
    code = "bad_request"


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
    """An HTTP-edge field refusal (query strings, path ids); domain code raises FieldInvalid."""
    return Invalid(f"{field}: {message}", [{"field": field, "message": message}])
