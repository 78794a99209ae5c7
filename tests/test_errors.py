"""Domain refusals carry no HTTP; the error middleware alone gives each its status and JSON body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import errors
from gateway.http import error_middleware
from gateway.letters import TemplateError

REFUSALS: dict[str, tuple[Exception, int, dict[str, Any]]] = {
    "not-allowed": (
        errors.NotAllowed("staff 5 is a caution_lead", {"field": "staff_id"}, code="not_senior"),
        403,
        {"code": "not_senior", "message": "staff 5 is a caution_lead", "details": {"field": "staff_id"}},
    ),
    "missing": (
        errors.Missing("restriction 9 does not exist"),
        404,
        {"code": "not_found", "message": "restriction 9 does not exist", "details": None},
    ),
    "rule": (
        errors.RuleConflict("no way in", code="no_open_channel"),
        409,
        {"code": "no_open_channel", "message": "no way in", "details": None},
    ),
    "state": (
        errors.StateConflict("restriction 9 is lifted", {"status": "lifted"}, code="wrong_status"),
        409,
        {"code": "wrong_status", "message": "restriction 9 is lifted", "details": {"status": "lifted"}},
    ),
    "field": (
        errors.FieldInvalid("params.case_id", "case 4 does not exist"),
        422,
        {
            "code": "invalid",
            "message": "params.case_id: case 4 does not exist",
            "details": [{"field": "params.case_id", "message": "case 4 does not exist"}],
        },
    ),
    "template": (
        TemplateError("letter template x.txt: unknown placeholder"),
        500,
        {"code": "template_error", "message": "letter template x.txt: unknown placeholder", "details": None},
    ),
}


@pytest.fixture
async def raising() -> AsyncIterator[TestClient[Any, Any]]:
    async def handler(request: web.Request) -> web.Response:
        raise REFUSALS[request.match_info["name"]][0]

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/{name}", handler)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("name", sorted(REFUSALS))
async def test_each_domain_refusal_becomes_its_http_answer(raising: TestClient[Any, Any], name: str) -> None:
    exc, status, error = REFUSALS[name]
    assert isinstance(exc, errors.DomainError) and not hasattr(exc, "status")
    resp = await raising.get(f"/{name}")
    assert resp.status == status
    assert await resp.json() == {"error": error}


async def test_a_value_the_database_cannot_store_is_the_callers_422_not_a_server_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise asyncpg.exceptions.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/", handler)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/")
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "invalid"
        assert "UTF8" not in await resp.text()  # nothing of the database's own wording
