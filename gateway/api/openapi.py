"""GET /v1/openapi.json: the API surface, generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .. import __version__
from ..contact import Decision, InboundContact
from ..http import ROUTE_ROLES, add_route
from ..models import CaseIn, CasePatch, CustomerIn, StaffIn
from ..restriction_models import (
    AppealDecisionIn,
    AppealIn,
    DecisionIn,
    LetterSentIn,
    LiftIn,
    RestrictionIn,
    ReviewIn,
)

# Request bodies we can describe exactly; other endpoints document themselves by summary.
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/contacts"): InboundContact,
    ("POST", "/v1/staff"): StaffIn,
    ("POST", "/v1/customers"): CustomerIn,
    ("POST", "/v1/cases"): CaseIn,
    ("PATCH", "/v1/cases/{id}"): CasePatch,
    ("POST", "/v1/restrictions"): RestrictionIn,
    ("POST", "/v1/restrictions/{id}/decide"): DecisionIn,
    ("POST", "/v1/restrictions/{id}/letter"): LetterSentIn,
    ("POST", "/v1/restrictions/{id}/appeal"): AppealIn,
    ("POST", "/v1/restrictions/{id}/appeal/decision"): AppealDecisionIn,
    ("POST", "/v1/restrictions/{id}/review"): ReviewIn,
    ("POST", "/v1/restrictions/{id}/lift"): LiftIn,
}
RESPONSES: dict[tuple[str, str], type[BaseModel]] = {("POST", "/v1/contacts"): Decision}


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
    params = re.findall(r"{(\w+)}", path)
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    if roles is not None:
        op["security"] = [{"apiKey": []}]
        op["x-roles"] = sorted(roles)
    if (method, path) in BODIES:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{BODIES[(method, path)].__name__}"}}
            },
        }
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
    for model in {*BODIES.values(), *RESPONSES.values()}:
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
