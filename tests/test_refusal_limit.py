"""A flood of refused attempts from one address cannot fill the contact log: past 30 a minute they
are counted, and the count is logged as one row when the minute ends. Nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.decide.records import Rejected
from gateway.decide.refusals import MOST_ROWS, OTHERS, PER_MINUTE, RefusalLimit
from gateway.runtime import RUNTIME
from tests.helpers import eventually


async def test_past_the_limit_attempts_are_counted_and_the_count_logged_when_the_minute_ends():
    now = [600.0]  # 00:10 UTC
    logged: list[Rejected] = []

    async def log_row(r: Rejected) -> None:
        logged.append(r)

    limit = RefusalLimit(log_row, clock=lambda: now[0])

    def attempt(address: str, channel: str = "unknown") -> bool:
        return limit.admit(Rejected("rejected", "unknown API key", channel, address=address))

    assert all(attempt("203.0.113.9") for _ in range(PER_MINUTE))
    assert not any(attempt("203.0.113.9") for _ in range(12))
    assert attempt("198.51.100.4") and attempt("203.0.113.9", "email")  # other addresses and channels: their own
    now[0] = 665.0  # the next minute: the count is logged, and the address starts afresh
    assert attempt("203.0.113.9")
    await asyncio.sleep(0)
    (row,) = logged
    assert row.status == "rejected" and row.channel == "unknown"
    assert row.error.startswith("12 more attempt(s) refused from 203.0.113.9 in the minute from 00:10 UTC")
    await limit.close()


async def test_the_count_is_logged_even_when_the_attempts_stop():
    logged: list[Rejected] = []

    async def log_row(r: Rejected) -> None:
        logged.append(r)

    limit = RefusalLimit(log_row, clock=lambda: 59.9)  # 0.1 s before the minute ends: its timer fires then
    for _ in range(PER_MINUTE + 3):
        limit.admit(Rejected("rejected", "bad signature", "phone", address="192.0.2.1"))

    async def logged_once() -> bool:
        return bool(logged)

    await eventually(logged_once, timeout=2.0)
    assert logged[0].error.startswith("3 more attempt(s) refused from 192.0.2.1")


async def test_made_up_keys_in_a_loop_are_refused_every_time_and_logged_once_past_the_limit(
    client: Any, conn: Any
) -> None:
    for _ in range(PER_MINUTE + 8):
        r = await client.post(
            "/v1/contacts", headers={"Authorization": "Bearer gwk_madeup"}, json={"channel": "phone", "from": "1"}
        )
        assert r.status == 401
    await eventually(lambda: _rows(conn, PER_MINUTE), timeout=5.0)
    client.server.app[RUNTIME].decide.refusals.flush()

    async def counted() -> bool:
        return (
            await conn.fetchval("SELECT count(*) FROM contacts WHERE error LIKE '8 more attempt(s) refused from %'")
            == 1
        )

    await eventually(counted, timeout=5.0)
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE status = 'rejected'") == PER_MINUTE + 1


async def _rows(conn: Any, n: int) -> bool:
    return await conn.fetchval("SELECT count(*) FROM contacts WHERE status = 'rejected'") == n


def test_a_refusal_that_carries_a_caller_is_always_logged_whole():
    """A Twilio call refused for its signature (the token rotated) keeps its number and call id."""
    assert not RefusalLimit.applies(
        Rejected("rejected", "bad X-Twilio-Signature", "phone", "+447700900001", "CA1", address="54.1.2.3")
    )
    assert not RefusalLimit.applies(Rejected("malformed", "not JSON", "unknown", address="54.1.2.3"))
    assert not RefusalLimit.applies(Rejected("rejected", "unknown API key", "unknown"))  # no address known
    assert RefusalLimit.applies(Rejected("rejected", "unknown API key", "unknown", address="54.1.2.3"))


async def test_many_addresses_together_are_held_to_a_budget_a_minute():
    logged: list[Rejected] = []

    async def log_row(r: Rejected) -> None:
        logged.append(r)

    now = [0.0]
    limit = RefusalLimit(log_row, clock=lambda: now[0])
    admitted = sum(
        limit.admit(Rejected("rejected", "unknown API key", "unknown", address=f"2001:db8::{i:x}"))
        for i in range(MOST_ROWS + 500)
    )
    assert admitted == MOST_ROWS
    now[0] = 60.0
    limit.flush()
    await asyncio.sleep(0)
    (row,) = logged
    assert row.error.startswith(f"500 more attempt(s) refused from {OTHERS}")
    await limit.close()
