"""A small, realistic demo data set: staff, a dozen customers, cases, one restriction of each kind."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg

from . import lifecycle as lc
from .models.cases import CaseIn
from .models.people import CustomerIn, StaffIn
from .models.restrictions import DecisionIn, RestrictionIn
from .settings import Settings
from .store import cases, people, restrictions

_WEEKDAYS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]

STAFF: list[dict[str, Any]] = [
    {
        "name": "Priya Shah",
        "role": "service_caution_lead",
        "line": "01632 960101",
        "mailbox": "priya.shah@demo-homes.org.uk",
    },
    {"name": "Tom Evans", "role": "caution_lead", "line": "01632 960102", "mailbox": "tom.evans@demo-homes.org.uk"},
    {
        "name": "Grace Okafor",
        "role": "caution_lead",
        "line": "01632 960103",
        "mailbox": "grace.okafor@demo-homes.org.uk",
    },
    {"name": "Helen Morris", "role": "manager", "line": "01632 960104", "mailbox": "helen.morris@demo-homes.org.uk"},
    {"name": "David Lee", "role": "senior_manager", "line": "01632 960105", "mailbox": "david.lee@demo-homes.org.uk"},
    {
        "name": "Sam Patel",
        "role": "agent",
        "line": "01632 960106",
        "voicemail": "01632 960199",
        "mailbox": "sam.patel@demo-homes.org.uk",
        "queue": "tenancy",
        "working_hours": _WEEKDAYS,
    },
]

# The demo provider, as GATEWAY_PROVIDER_* settings: `make run` uses them unless they are set, so
# deflections and letters name a real-looking address, email and web form.
PROVIDER_SETTINGS = {
    "GATEWAY_PROVIDER_NAME": "Demo Homes",
    "GATEWAY_PROVIDER_ADDRESS": "Riverside House; 1 Mill Lane; Leeds; LS1 4AB",
    "GATEWAY_PROVIDER_PHONE": "0113 496 0000",
    "GATEWAY_PROVIDER_EMERGENCY_PHONE": "0113 496 0999",
    "GATEWAY_PROVIDER_EMAIL": "contact@demo-homes.org.uk",
    "GATEWAY_PROVIDER_WEB_FORM_URL": "https://demo-homes.org.uk/contact",
}

# (external ref, name, phones, emails, postal address: lines separated by ';', the postcode last)
CUSTOMERS = [
    ("HMS-100001", "Margaret Hughes", ["07700 900001"], ["m.hughes@example.com"], "14 Beech Road; Leeds; LS6 2AB"),
    ("HMS-100002", "Kevin Doyle", ["07700 900002"], ["kdoyle@example.net"], "Flat 3, Oak Court; Leeds; LS7 1QT"),
    ("HMS-100003", "Aisha Rahman", ["07700 900003"], ["aisha.r@example.org"], "27 Mill Street; Leeds; LS9 8DS"),
    ("HMS-100004", "Brian Walsh", ["07700 900004"], ["bwalsh@example.com"], "5 Elm Terrace; Bramley; LS13 2JR"),
    ("HMS-100005", "Sandra Clarke", ["07700 900005"], [], "Flat 12, Willow House; Leeds; LS11 5PX"),
    ("HMS-100006", "Peter Novak", ["07700 900006"], ["p.novak@example.com"], "8 Cedar Close; Leeds; LS8 3HQ"),
    ("HMS-100007", "Lorraine Bell", ["07700 900007"], ["lbell@example.com"], "41 Ash Grove; Leeds; LS6 1BH"),
    ("HMS-100008", "Gary Fletcher", ["07700 900008"], ["gary.f@example.net"], "2 Poplar Way; Leeds; LS15 7NB"),
    # Joan shares Gary's household phone and home.
    ("HMS-100009", "Joan Fletcher", ["07700 900008"], ["joan.f@example.net"], "2 Poplar Way; Leeds; LS15 7NB"),
    ("HMS-100010", "Mohammed Iqbal", ["07700 900010"], ["m.iqbal@example.com"], "63 Harehills Lane; Leeds; LS8 4HE"),
    ("HMS-100011", "Eileen Murphy", ["0113 496 0011"], [], "Flat 1, Larch House; Leeds; LS12 3QG"),
    ("HMS-100012", "Connor Price", ["07700 900012"], ["connor.price@example.com"], "19 Rowan Avenue; Leeds; LS14 6AA"),
]


def _restrictions(staff: dict[str, int], customer: dict[str, int], case: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "customer": "HMS-100001",
            "kind": "set_times",
            "channels": ["phone"],
            "params": {"kind": "set_times", "windows": [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]},
            "reasons": "Repeated calls to the repairs line, several a day, about matters already answered.",
        },
        {
            "customer": "HMS-100002",
            "kind": "named_contact",
            "channels": ["phone", "email", "web_form", "letter", "visit"],
            "params": {"kind": "named_contact", "staff_id": staff["Sam Patel"]},
            "reasons": "Contacts many officers with the same demands; one point of contact agreed.",
        },
        {
            "customer": "HMS-100003",
            "kind": "written_only",
            "channels": ["phone", "visit"],
            "params": {"kind": "written_only"},
            "category": "aggressive_or_abusive",
            "reasons": "Verbal abuse of call handlers on three occasions.",
        },
        {
            "customer": "HMS-100004",
            "kind": "no_personal_contact",
            "channels": ["phone", "visit"],
            "params": {"kind": "no_personal_contact"},
            "category": "aggressive_or_abusive",
            "reasons": "Threats made to a housing officer; contact through writing or his advocate only.",
        },
        {
            "customer": "HMS-100005",
            "kind": "appointment_only",
            "channels": ["visit"],
            "params": {"kind": "appointment_only"},
            "reasons": "Unannounced visits to the area office demanding to see senior staff.",
        },
        {
            "customer": "HMS-100006",
            "kind": "closed_issue",
            "channels": ["phone", "email", "web_form", "letter"],
            "params": {"kind": "closed_issue", "case_id": case["CMP-2041"]},
            "reasons": "Complaint CMP-2041 has completed every stage including the Ombudsman.",
        },
        {
            "customer": "HMS-100007",
            "kind": "caution",
            "channels": ["phone", "email", "web_form", "letter", "visit"],
            "params": {
                "kind": "caution",
                "note": "Do not visit alone: dog at the property and a history of aggression.",
            },
            "category": "aggressive_or_abusive",
            "reasons": "Officer assaulted at the property in 2025.",
        },
        {
            "customer": "HMS-100008",
            "kind": "contact_limit",
            "channels": ["phone", "email", "web_form"],
            "params": {"kind": "contact_limit", "limit": 3, "period": "day"},
            "reasons": "Over 40 calls and emails a week to several teams.",
        },
    ]


async def _record_restrictions(
    conn: asyncpg.Connection, staff: dict[str, int], customer: dict[str, int], case: dict[str, int], today: date
) -> None:
    """As the lifecycle records them: the service caution lead saves each restriction and the two
    caution leads each add their own decision, which activates it. Demo staff have no keys; make one
    with `python -m gateway keys create --staff ID`."""
    deciders = [lc.staff_actor(staff[name], name) for name in ("Priya Shah", "Tom Evans", "Grace Okafor")]
    decided = DecisionIn(decided_on=today - timedelta(days=30))
    policy = lc.Policy(rule=lc.parse_rule(Settings().activation_rule))
    for r in _restrictions(staff, customer, case):
        restriction = RestrictionIn.model_validate(
            {
                "customer_id": customer[r["customer"]],
                "kind": r["kind"],
                "params": r["params"],
                "channels": r["channels"],
                "reason_category": r.get("category", "unreasonable_persistence"),
                "reasons": r["reasons"],
                "warned_on": str(today - timedelta(days=40)),
                "incidents": [{"on": str(today - timedelta(days=45)), "description": r["reasons"]}],
                "valid_from": str(today - timedelta(days=30)),
            }
        )
        made = await restrictions.create(conn, restriction, policy, deciders[0], today)
        for decider in deciders[1:]:
            await restrictions.add_decision(conn, made.id, decided, policy, decider, today)


# Customer ref → their representatives and reasonable adjustments, where the demo gives them any.
_REPRESENTATIVES = {
    "HMS-100004": [
        {
            "name": "Ruth Adeyemi",
            "relationship": "advocate",
            "identifiers": [{"kind": "phone", "value": "07700 900444"}],
        }
    ],
}
_ADJUSTMENTS = {"HMS-100011": {"text": "Dyslexic: prefers phone calls", "flags": ["needs_phone"]}}
_CASES = (
    ("CMP-2041", "HMS-100006", "Damp in the back bedroom: compensation", "exhausted"),
    ("CMP-2107", "HMS-100006", "Noise from the flat above", "open"),
    ("CMP-1988", "HMS-100001", "Repairs to the boiler", "closed"),
)


async def _customers(conn: asyncpg.Connection) -> dict[str, int]:
    made: dict[str, int] = {}
    for ref, name, phones, emails, address in CUSTOMERS:
        identifiers = [
            *({"kind": "phone", "value": p} for p in phones),
            *({"kind": "email", "value": e} for e in emails),
        ]
        body = CustomerIn.model_validate(
            {
                "external_ref": ref,
                "name": name,
                "postal_address": address,
                "identifiers": identifiers,
                "representatives": _REPRESENTATIVES.get(ref, []),
                "adjustments": _ADJUSTMENTS.get(ref, {}),
            }
        )
        made[ref] = (await people.create_customer(conn, body)).id
    return made


async def _cases(conn: asyncpg.Connection, customer: dict[str, int], today: date) -> dict[str, int]:
    made: dict[str, int] = {}
    for ref, cust, subject, status in _CASES:
        closed_on = None if status == "open" else today - timedelta(days=60)
        body = CaseIn(customer_id=customer[cust], reference=ref, subject=subject, status=status, closed_on=closed_on)
        made[ref] = (await cases.create_case(conn, body)).id
    return made


async def load_demo(conn: asyncpg.Connection, *, only_if_empty: bool = False) -> str:
    if only_if_empty and await people.any_customer(conn):
        return "demo data: customers already present, nothing loaded"
    async with conn.transaction():
        staff = {s["name"]: (await people.create_staff(conn, StaffIn.model_validate(s))).id for s in STAFF}
        customer = await _customers(conn)
        today = date.today()
        case = await _cases(conn, customer, today)
        await _record_restrictions(conn, staff, customer, case, today)
    return (
        f"demo data: {len(STAFF)} staff, {len(CUSTOMERS)} customers, {len(case)} cases, "
        "one active restriction of each kind, for customers HMS-100001 to HMS-100008"
    )
