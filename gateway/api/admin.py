"""Admin API: staff, customers (identifiers, representatives, adjustments), cases, CSV import, keys."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from .. import auth
from ..appkeys import POOL, REDIS
from ..errors import BadRequest, Invalid, field_error
from ..http import add_route, dump, principal
from ..importer import CsvFormatError, import_csv
from ..inputs import path_id, read_model
from ..invalidation import publish
from ..models.cases import CaseIn, CasePatch
from ..models.keys import KeyIn
from ..models.people import CustomerIn, CustomerPatch, PasswordIn, StaffIn
from ..store import cases, customers, people
from ..web.sessions import set_staff_password

CAUTION = ("caution_lead",)


async def create_staff(request: web.Request) -> web.Response:
    body = await read_model(request, StaffIn)
    async with request.app[POOL].acquire() as conn:
        staff = await people.create_staff(conn, body)
    await publish(request.app[REDIS], "staff")
    return dump(staff, 201)


async def get_staff(request: web.Request) -> web.Response:
    return dump(await people.get_staff(request.app[POOL], path_id(request)))


async def set_password(request: web.Request) -> web.Response:
    """Set the password a staff member signs in to the pages with (their mailbox is the login)."""
    body = await read_model(request, PasswordIn)
    staff_id = path_id(request)
    login = await set_staff_password(request.app[POOL], staff_id, body.password, principal(request).actor)
    return web.json_response({"staff_id": staff_id, "login": login})


async def create_customer(request: web.Request) -> web.Response:
    body = await read_model(request, CustomerIn)
    async with request.app[POOL].acquire() as conn:
        customer = await people.create_customer(conn, body)
    await publish(request.app[REDIS], customer.id)
    return dump(customer, 201)


async def get_customer(request: web.Request) -> web.Response:
    return dump(await people.get_customer(request.app[POOL], path_id(request)))


async def patch_customer(request: web.Request) -> web.Response:
    body = await read_model(request, CustomerPatch)
    async with request.app[POOL].acquire() as conn:
        customer = await customers.patch_customer(conn, path_id(request), body, principal(request).actor)
    await publish(request.app[REDIS], customer.id)
    return dump(customer)


def _dry_run(request: web.Request) -> bool:
    value = request.query.get("dry_run", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise field_error("dry_run", "expected true or false")
    return value in ("true", "1")


async def import_customers(request: web.Request) -> web.Response:
    if request.content_type not in ("text/csv", "application/csv", "text/plain"):
        raise BadRequest("send the CSV export as the body with Content-Type: text/csv", code="unsupported_media_type")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"the file is not UTF-8 (byte {exc.start})", [{"field": "body"}]) from None
    async with request.app[POOL].acquire() as conn:
        try:
            report = await import_csv(conn, text, dry_run=_dry_run(request), actor=principal(request).actor)
        except CsvFormatError as exc:
            raise Invalid(str(exc), [{"field": "header", "message": str(exc)}]) from None
    return web.json_response(report.as_dict(), status=200)


async def create_case(request: web.Request) -> web.Response:
    body = await read_model(request, CaseIn)
    async with request.app[POOL].acquire() as conn:
        return dump(await cases.create_case(conn, body), 201)


async def get_case(request: web.Request) -> web.Response:
    return dump(await cases.get_case(request.app[POOL], path_id(request)))


async def patch_case(request: web.Request) -> web.Response:
    body = await read_model(request, CasePatch)
    async with request.app[POOL].acquire() as conn:
        case = await cases.update_case(conn, path_id(request), body)
    await publish(request.app[REDIS], case.customer_id)
    return dump(case)


async def create_key(request: web.Request) -> web.Response:
    body = await read_model(request, KeyIn)
    if body.staff_id is not None:
        made = await auth.create_staff_key(request.app[POOL], body.staff_id, body.name, actor=principal(request).actor)
        return web.json_response(dataclasses.asdict(made), status=201)
    assert body.role is not None and body.name is not None  # KeyIn asks for both without a staff_id
    key_id, key = await auth.create_key(request.app[POOL], body.role, body.name, actor=principal(request).actor)
    made_for_system = {"id": key_id, "key": key, "role": body.role, "name": body.name, "staff_id": None}
    return web.json_response(made_for_system, status=201)


def setup(app: web.Application) -> None:
    add_route(app, "POST", "/v1/staff", create_staff, ())
    add_route(app, "GET", "/v1/staff/{id}", get_staff, ())
    add_route(app, "POST", "/v1/staff/{id}/password", set_password, ())
    add_route(app, "POST", "/v1/customers", create_customer, CAUTION)
    add_route(app, "GET", "/v1/customers/{id}", get_customer, CAUTION)
    add_route(app, "PATCH", "/v1/customers/{id}", patch_customer, CAUTION)
    add_route(app, "POST", "/v1/customers/import", import_customers, ())
    add_route(app, "POST", "/v1/cases", create_case, CAUTION)
    add_route(app, "GET", "/v1/cases/{id}", get_case, (*CAUTION, "manager"))
    add_route(app, "PATCH", "/v1/cases/{id}", patch_case, CAUTION)
    add_route(app, "POST", "/v1/keys", create_key, ())
