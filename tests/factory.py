"""Test data, built one way: through the HTTP API as the provider's own systems and staff would (`Api`:
a `Team` of staff members, each signed in with a key of their own), or, for tests of code below the
API that runs without an app, written into the database (`insert_*`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from gateway.auth import KEY_PREFIX, create_staff_key, hash_key
from gateway.lifecycle import Actor
from gateway.models.people import CustomerIn
from gateway.rules.registry import DEFAULT_CHANNELS
from gateway.settings import Settings
from gateway.store import keys, people
from tests.helpers import eventually


def today() -> date:
    """Today where the gateway under test is (its time zone, GATEWAY_TZ or Europe/London), asked when
    it is used: a date fixed when the tests were imported would be wrong in a run that crosses
    midnight, and UTC's date is a day behind London's for an hour each summer night."""
    return datetime.now(ZoneInfo(Settings.from_env().tz)).date()


def yesterday() -> date:
    """Restrictions start yesterday by default, so they are in force whatever the provider's time zone."""
    return today() - timedelta(days=1)


REASONS = "Repeated verbal abuse of call handlers."
INCIDENT = "Swore at an agent and threatened to visit the office."
PHONE = ("phone", "07700 900001")
SET_UP = Actor("test set-up")  # who keys made and revoked by the tests' own set-up are recorded as made by


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for an API key."""
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Member:
    """A staff member with an API key of their own: `headers` signs a request in as them."""

    id: int
    name: str
    role: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


@dataclass(frozen=True)
class Team:
    """Staff, one or more of each role, each with their own key; `deciders` alone meet the default
    activation rule."""

    scl: Member
    cl1: Member
    cl2: Member
    cl3: Member
    manager: Member
    senior: Member
    agent: Member

    @property
    def deciders(self) -> list[Member]:
        return [self.scl, self.cl1, self.cl2]


_TEAM = {
    "scl": ("Priya Shah", "service_caution_lead"),
    "cl1": ("Tom Evans", "caution_lead"),
    "cl2": ("Grace Okafor", "caution_lead"),
    "cl3": ("Ravi Kumar", "caution_lead"),
    "manager": ("Helen Morris", "manager"),
    "senior": ("David Lee", "senior_manager"),
    "agent": ("Sam Patel", "agent"),
}


def restriction_body(customer_id: int, kind: str = "written_only", **fields: Any) -> dict[str, Any]:
    """A POST /v1/restrictions body that passes every check (whoever posts it is its first decider);
    `fields` override it."""
    return {
        "customer_id": customer_id,
        "kind": kind,
        "params": {},
        "reason_category": "aggressive_or_abusive",
        "reasons": REASONS,
        "incidents": [{"on": (today() - timedelta(days=10)).isoformat(), "description": INCIDENT}],
        "warned_on": (today() - timedelta(days=5)).isoformat(),
        "valid_from": yesterday().isoformat(),
        **fields,
    }


class Api:
    """Rows made through the HTTP API of `client` (a test client or a session on a real process):
    staff, their keys, customers and cases by the admin; restrictions by the staff who decide them."""

    def __init__(self, client: Any, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    async def _created(self, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post(path, headers=headers, json=body)
        assert r.status == 201, await r.text()
        created: dict[str, Any] = await r.json()
        return created

    async def member(self, name: str, role: str) -> Member:
        """A staff member and a key of their own."""
        mailbox = f"{name.split()[0].lower()}@x.org"
        body = {"name": name, "role": role, "line": "01632 960101", "mailbox": mailbox}
        admin = bearer(self.keys["admin"])
        staff_id = (await self._created(admin, "/v1/staff", body))["id"]
        return Member(staff_id, name, role, await self.key_of(staff_id))

    async def key_of(self, staff_id: int) -> str:
        """Another key for a staff member, as the admin would make one."""
        made = await self._created(bearer(self.keys["admin"]), "/v1/keys", {"staff_id": staff_id})
        return str(made["key"])

    async def team(self) -> Team:
        return Team(**{field: await self.member(name, role) for field, (name, role) in _TEAM.items()})

    async def customer(self, name: str, *identifiers: tuple[str, str], **fields: Any) -> int:
        """`identifiers` as (kind, value) pairs; `fields` are any other CustomerIn fields."""
        body = {"name": name, "identifiers": [{"kind": k, "value": v} for k, v in identifiers], **fields}
        return int((await self._created(bearer(self.keys["admin"]), "/v1/customers", body))["id"])

    async def change_customer(self, by: Member, customer_id: int, **patch: Any) -> dict[str, Any]:
        """PATCH /v1/customers/{id} as `by`; fails unless it is accepted."""
        r = await self.client.patch(f"/v1/customers/{customer_id}", headers=by.headers, json=patch)
        assert r.status == 200, await r.text()
        changed: dict[str, Any] = await r.json()
        return changed

    async def import_csv(self, text: str, *, dry_run: bool = False) -> dict[str, Any]:
        """POST /v1/customers/import as the admin; fails unless the file is read."""
        headers = {**bearer(self.keys["admin"]), "Content-Type": "text/csv"}
        params = {"dry_run": "true"} if dry_run else {}
        r = await self.client.post("/v1/customers/import", headers=headers, params=params, data=text)
        assert r.status == 200, await r.text()
        report: dict[str, Any] = await r.json()
        return report

    async def case(self, customer_id: int, reference: str = "CMP-1", status: str = "open") -> int:
        closed_on = None if status == "open" else (today() - timedelta(days=40)).isoformat()
        body = {
            "customer_id": customer_id,
            "reference": reference,
            "subject": "Damp in the hall",
            "status": status,
            "closed_on": closed_on,
        }
        return int((await self._created(bearer(self.keys["admin"]), "/v1/cases", body))["id"])

    async def restriction(
        self,
        customer_id: int,
        kind: str = "written_only",
        *,
        deciders: Sequence[Member],
        status: str = "active",
        note_signer: Member | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Saved with `restriction_body(customer_id, kind, **fields)` by the first of `deciders`, its
        equality note (if any) signed by `note_signer` with their own key, then decided by each of
        the other deciders with theirs; fails unless it is then in `status`."""
        first, *others = deciders
        path = "/v1/restrictions"
        made = await self._created(first.headers, path, restriction_body(customer_id, kind, **fields))
        if note_signer is not None:
            r = await self.client.post(f"{path}/{made['id']}/equality-note/sign", headers=note_signer.headers, json={})
            assert r.status == 200, await r.text()
            made = await r.json()
        for decider in others:
            r = await self.client.post(f"{path}/{made['id']}/decide", headers=decider.headers, json={})
            assert r.status == 200, await r.text()
            made = await r.json()
        assert made["status"] == status, made
        return made

    async def enforced(self, customer_id: int, agent: Member) -> None:
        """Wait until this app's restriction index has the customer's restrictions (it hears of a
        change through Redis, a moment after the change's reply)."""

        async def known() -> bool:
            r = await self.client.get(f"/v1/banners?customer_id={customer_id}", headers=agent.headers)
            return (await r.json())["banner"] is not None

        await eventually(known)


async def insert_customer(conn: asyncpg.Connection, name: str, *identifiers: tuple[str, str], **fields: Any) -> int:
    """Saved by the store's own code, with no app running (so nothing is told of it)."""
    body = CustomerIn.model_validate(
        {"name": name, "identifiers": [{"kind": k, "value": v} for k, v in identifiers], **fields}
    )
    return (await people.create_customer(conn, body)).id


async def insert_restriction(
    conn: asyncpg.Connection,
    customer_id: int,
    params: dict[str, Any],
    *,
    status: str = "active",
    valid_from: date | None = None,
    channels: list[str] | None = None,
) -> int:
    """A row as the lifecycle would leave it in `status`, without its checks, deciders or audit trail.
    It starts `valid_from`, yesterday unless told."""
    kind = params["kind"]
    valid_from = valid_from or yesterday()
    return int(
        await conn.fetchval(
            """INSERT INTO restrictions (customer_id, kind, params, channels, reason_category, reasons,
                   incidents, warned_on, deciders, decided_on, valid_from, review_due, letter_sent_on,
                   status, created_by)
               VALUES ($1, $2, $3, $4, 'aggressive_or_abusive', $5, '[]', $6, '{}', $6, $6, $7, $6, $8, 'test')
               RETURNING id""",
            customer_id,
            kind,
            params,
            sorted(channels or DEFAULT_CHANNELS[kind]),
            REASONS,
            valid_from,
            valid_from + timedelta(days=300),
            status,
        )
    )


async def insert_unowned_key(conn: asyncpg.Connection, role: str) -> str:
    """A person's key as made before keys belonged to staff members: it has a role and no one."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await keys.insert_key(conn, f"unowned {role}", role, hash_key(key), SET_UP)
    return key


async def insert_staff_key(conn: asyncpg.Connection, name: str) -> str:
    """A key for a staff member already on record (the demo's, say), made as `keys create --staff` makes it."""
    staff_id = await conn.fetchval("SELECT id FROM staff WHERE name = $1", name)
    return (await create_staff_key(conn, staff_id, actor=SET_UP)).key
