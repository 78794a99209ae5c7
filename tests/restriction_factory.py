"""Rows and request bodies for the restriction tests: staff of each role, a customer, a body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg

from gateway.models import CaseIn, CustomerIn, StaffIn
from gateway.store import cases, people

TODAY = date.today()


@dataclass
class Team:
    scl: int
    cl1: int
    cl2: int
    cl3: int
    manager: int
    senior: int
    agent: int


async def make_team(conn: asyncpg.Connection) -> Team:
    async def staff(name: str, role: str) -> int:
        return (
            await people.create_staff(
                conn,
                StaffIn(
                    name=name,
                    role=role,  # type: ignore[arg-type]
                    line="01632 960101",
                    mailbox=f"{name.split()[0].lower()}@x.org",
                ),
            )
        ).id

    return Team(
        scl=await staff("Priya Shah", "service_caution_lead"),
        cl1=await staff("Tom Evans", "caution_lead"),
        cl2=await staff("Grace Okafor", "caution_lead"),
        cl3=await staff("Ravi Kumar", "caution_lead"),
        manager=await staff("Helen Morris", "manager"),
        senior=await staff("David Lee", "senior_manager"),
        agent=await staff("Sam Patel", "agent"),
    )


async def make_customer(
    conn: asyncpg.Connection,
    *,
    flags: list[str] | None = None,
    name: str = "Margaret Hughes",
    representatives: bool = False,
) -> int:
    reps = [{"name": "Ann Hughes", "relationship": "daughter", "identifiers": []}] if representatives else []
    body = CustomerIn.model_validate(
        {
            "name": name,
            "identifiers": [{"kind": "phone", "value": "07700 900001"}],
            "adjustments": {"text": "", "flags": flags or []},
            "representatives": reps,
        }
    )
    return (await people.create_customer(conn, body)).id


async def make_case(conn: asyncpg.Connection, customer_id: int, status: str, ref: str = "CMP-1") -> int:
    closed_on = None if status == "open" else TODAY - timedelta(days=40)
    body = CaseIn.model_validate(
        {
            "customer_id": customer_id,
            "reference": ref,
            "subject": "Damp in the hall",
            "status": status,
            "closed_on": closed_on,
        }
    )
    return (await cases.create_case(conn, body)).id


def body(customer_id: int, kind: str = "written_only", **over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "customer_id": customer_id,
        "kind": kind,
        "params": {},
        "reason_category": "aggressive_or_abusive",
        "reasons": "Repeated verbal abuse of call handlers.",
        "incidents": [
            {
                "on": (TODAY - timedelta(days=10)).isoformat(),
                "description": "Swore at an agent and threatened to visit the office.",
            }
        ],
        "warned_on": (TODAY - timedelta(days=5)).isoformat(),
        "valid_from": TODAY.isoformat(),
    }
    b.update(over)
    return b
