"""GET /v1/openapi.json: the API surface, generated from the route table and the pydantic models.

Each schema says what its handler enforces (ids within their column, the query parameters, the
webhook form), so a client built from it, or a fuzzer, sends what the gateway accepts.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .. import __version__
from ..channels.email.mailgun import PATH as MAILGUN_PATH
from ..channels.email.webhook import EmailJson
from ..channels.flat import FLAT_PATH
from ..channels.twilio import FALLBACK_PATH, FORM, VOICE_PATH
from ..channels.webform import WebFormIn
from ..contact import Decision, InboundContact
from ..decide.simulate import SimulationParams
from ..http import ROUTE_ROLES, add_route
from ..inputs import INT_MAX
from ..models.cases import CaseIn, CasePatch
from ..models.incidents import IncidentIn
from ..models.keys import KeyIn
from ..models.people import CustomerIn, CustomerPatch, PasswordIn, StaffIn
from ..models.readthrough import MarkIn
from ..models.restrictions import (
    AppealDecisionIn,
    AppealIn,
    DecisionIn,
    DeclineIn,
    LetterSendIn,
    LetterSentIn,
    LiftIn,
    RestrictionIn,
    ReviewIn,
    SignOffIn,
)
from ..models.rulesets import DraftIn, EditIn, ReasonIn, RollbackIn
from ..rules.params import BIGINT_MAX, CHANNELS

# Request bodies we can describe exactly; other endpoints document themselves by summary.
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/contacts"): InboundContact,
    ("POST", "/v1/staff"): StaffIn,
    ("POST", "/v1/keys"): KeyIn,
    ("POST", "/v1/customers"): CustomerIn,
    ("POST", "/v1/cases"): CaseIn,
    ("PATCH", "/v1/cases/{id}"): CasePatch,
    ("PATCH", "/v1/customers/{id}"): CustomerPatch,
    ("POST", "/v1/restrictions"): RestrictionIn,
    ("POST", "/v1/restrictions/{id}/decide"): DecisionIn,
    ("POST", "/v1/restrictions/{id}/letter"): LetterSentIn,
    ("POST", "/v1/restrictions/{id}/letter/send"): LetterSendIn,
    ("POST", "/v1/restrictions/{id}/appeal"): AppealIn,
    ("POST", "/v1/restrictions/{id}/appeal/decision"): AppealDecisionIn,
    ("POST", "/v1/restrictions/{id}/review"): ReviewIn,
    ("POST", "/v1/restrictions/{id}/lift"): LiftIn,
    ("POST", "/v1/restrictions/{id}/equality-note/sign"): SignOffIn,
    ("POST", "/v1/restrictions/{id}/review-period/approve"): SignOffIn,
    ("POST", "/v1/restrictions/{id}/equality-note/decline"): DeclineIn,
    ("POST", "/v1/restrictions/{id}/review-period/decline"): DeclineIn,
    ("POST", "/v1/staff/{id}/password"): PasswordIn,
    ("POST", "/v1/channels/webform"): WebFormIn,
    ("POST", "/v1/incidents"): IncidentIn,
    ("POST", "/v1/rulesets"): DraftIn,
    ("PUT", "/v1/rulesets/{version}"): EditIn,
    ("POST", "/v1/rulesets/{version}/publish"): ReasonIn,
    ("POST", "/v1/rulesets/rollback"): RollbackIn,
    ("POST", "/v1/channels/email"): EmailJson,
    ("POST", "/v1/readthrough/{contact_id}"): MarkIn,
}
# Bodies that may be left out: validate and test the stored version then; simulate with defaults.
OPTIONAL_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/rulesets/{version}/validate"): EditIn,
    ("POST", "/v1/rulesets/{version}/test"): EditIn,
    ("POST", "/v1/rulesets/{version}/simulate"): SimulationParams,
}
RESPONSES: dict[tuple[str, str], type[BaseModel]] = {("POST", "/v1/contacts"): Decision}


def _id(maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": maximum}


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


# Path parameters are ids within the range of their column (http.path_id refuses anything else).
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": _id(BIGINT_MAX),
    "version": _id(INT_MAX),
    "job": _id(BIGINT_MAX),
    "contact_id": {"type": "string", "format": "uuid"},
}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


# A full restriction record is read only with a reason, kept in its audit trail.
_WHY = _query("why", {**_text(500, 3), "pattern": r"^\S(?:[\s\S]*\S)?$"}, required=True)
QUERIES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/v1/banners"): [
        _query("customer_id", _id(BIGINT_MAX)),
        _query("identifier", _text(320)),
        _query("channel", {"enum": list(CHANNELS)}),
    ],
    ("GET", "/v1/banners/stream"): [
        _query("queue", _text(100)),
        _query("staff_id", _text(20)),
        _query("mine", {"enum": ["true", "false", "1", "0"]}),
    ],
    ("GET", "/v1/contacts"): [
        _query("customer_id", _id(BIGINT_MAX), required=True),
        _query("since", {"type": "string", "format": "date-time"}),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
    ],
    ("GET", "/v1/reviews/due"): [
        _query("within", {"type": "string", "pattern": "^(?:[0-9]{1,3}d|[0-9]{1,2}[wm])$"}),
        _query("format", {"enum": ["json", "csv"]}),
    ],
    ("GET", "/v1/customers/{id}/export"): [_query("why", _text(500))],
    ("GET", "/v1/readthrough"): [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
    ("POST", "/v1/customers/import"): [_query("dry_run", {"enum": ["true", "false", "1", "0"]})],
    ("GET", "/v1/restrictions/{id}"): [_WHY],
    ("GET", "/v1/restrictions/{id}/events"): [_WHY],
    ("GET", "/v1/restrictions/{id}/letter"): [
        _query("format", {"enum": ["html", "text", "json", "pdf"]}),
        _query("large_print", {"enum": ["1", "0", "true", "false", "yes", "no", "on", "off"]}),
    ],
    ("GET", "/v1/rulesets/{version}"): [_query("format", {"enum": ["json", "yaml"]})],
    ("GET", "/v1/rulesets/diff"): [
        _query("from", _id(INT_MAX), required=True),
        _query("to", _id(INT_MAX), required=True),
    ],
}

# Bodies that are not a pydantic model: the webhook form, the flat map's input, the CSV import.
_TWILIO_FORM = {
    "type": "object",
    "properties": {"CallSid": _text(200, 1), "From": _text(320), "To": _text(320)},
    "required": ["CallSid", "From"],
    "additionalProperties": {"type": "string", "maxLength": 1000},
}
# Mailgun's route post (parsed fields; a route URL ending in `mime` sends `body-mime` instead).
_MAILGUN_FORM = {
    "type": "object",
    "properties": {
        "timestamp": _text(20, 1),
        "token": _text(100, 1),
        "signature": _text(64, 64),
        "sender": _text(320),
        "from": _text(320),
        "recipient": _text(320),
        "subject": _text(1000),
        "body-plain": _text(5000),
        "Message-Id": _text(200),
    },
    "required": ["timestamp", "token", "signature"],
    "additionalProperties": {"type": "string", "maxLength": 1000},
}
_CONNECT_ENDPOINT = {"type": "object", "properties": {"Address": _text(320)}}
_FLAT = {
    "type": "object",
    "description": "Our own {contact_id, from, to} or Amazon Connect's event (Details.ContactData)",
    "properties": {
        "contact_id": _text(200, 1),
        "from": _text(320),
        "to": _text(320),
        "Details": {
            "type": "object",
            "properties": {
                "ContactData": {
                    "type": "object",
                    "properties": {
                        "ContactId": _text(200, 1),
                        "CustomerEndpoint": _CONNECT_ENDPOINT,
                        "SystemEndpoint": _CONNECT_ENDPOINT,
                    },
                }
            },
        },
    },
}
# The importer needs a header row naming at least external_ref and name (other columns: importer.py).
_CSV = {"type": "string", "pattern": "^external_ref,name(,phones)?(,emails)?\r?\n"}
RAW_BODIES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("POST", VOICE_PATH): (FORM, _TWILIO_FORM),
    ("POST", FALLBACK_PATH): (FORM, _TWILIO_FORM),
    ("POST", FLAT_PATH): ("application/json", _FLAT),
    ("POST", "/v1/customers/import"): ("text/csv", _CSV),
    ("POST", MAILGUN_PATH): (FORM, _MAILGUN_FORM),
}


def _request_body(method: str, path: str) -> dict[str, Any] | None:
    for bodies, required in ((BODIES, True), (OPTIONAL_BODIES, False)):
        if (method, path) in bodies:
            ref = {"$ref": f"#/components/schemas/{bodies[(method, path)].__name__}"}
            return {"required": required, "content": {"application/json": {"schema": ref}}}
    if (method, path) in RAW_BODIES:
        media_type, schema = RAW_BODIES[(method, path)]
        return {"required": True, "content": {media_type: {"schema": schema}}}
    return None


def _operation(method: str, path: str, handler: Any, roles: frozenset[str] | None) -> dict[str, Any]:
    doc = (handler.__doc__ or handler.__name__.replace("_", " ")).strip().splitlines()[0]
    op: dict[str, Any] = {
        "summary": doc,
        "responses": {
            "default": {
                "description": "JSON error body",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        },
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": PATH_PARAMS.get(p, {"type": "string"})}
        for p in re.findall(r"{(\w+)}", path)
    ]
    params += QUERIES.get((method, path), [])
    if params:
        op["parameters"] = params
    if roles is not None:
        op["security"] = [{"apiKey": []}]
        op["x-roles"] = sorted(roles)
    body = _request_body(method, path)
    if body is not None:
        op["requestBody"] = body
    model = RESPONSES.get((method, path))
    op["responses"]["200"] = {
        "description": "OK",
        **(
            {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
            if model
            else {}
        ),
    }
    return op


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route, roles in app[ROUTE_ROLES].items():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method == "HEAD":
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler, roles)
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
                }
            },
        }
    }
    for model in {*BODIES.values(), *OPTIONAL_BODIES.values(), *RESPONSES.values()}:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Contact gateway", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this gateway."""
    return web.json_response(document(request.app))


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/v1/openapi.json", openapi, None)
