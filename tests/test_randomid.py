"""Ids (gateway/randomid.py): contact ids are time-ordered version-7 UUIDs, so the contact log's
primary key grows at its end; request ids stay random version-4 ones."""

from __future__ import annotations

import time
import uuid

import pytest

from gateway import randomid
from tests.factory import bearer


def test_a_contact_id_is_a_version_7_uuid_led_by_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    ids = [randomid.new_contact_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)  # 74 random bits each
    for text in ids[::997]:
        u = uuid.UUID(text)
        assert str(u) == text and (u.version, u.variant) == (7, uuid.RFC_4122)
        assert before <= u.int >> 80 <= after


def test_contact_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    first = randomid.new_contact_id()
    time.sleep(0.002)
    later = [randomid.new_contact_id() for _ in range(100)]
    assert all(uuid.UUID(first) < uuid.UUID(x) for x in later)
    assert all(first < x for x in later)  # as text too: the canonical form keeps the order


def test_request_ids_are_still_random_version_4() -> None:
    u = uuid.UUID(hex=randomid.new_hex())
    assert (u.version, u.variant) == (4, uuid.RFC_4122)


@pytest.mark.asyncio
async def test_a_decided_contact_is_logged_under_a_time_ordered_id(client, keys, conn) -> None:
    before = time.time_ns() // 1_000_000
    r = await client.post(
        "/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": "07700 900123"}
    )
    assert r.status == 201
    contact_id = uuid.UUID((await r.json())["contact_id"])
    assert contact_id.version == 7 and before <= contact_id.int >> 80 <= time.time_ns() // 1_000_000
    received = await conn.fetchval("SELECT received_at FROM contacts WHERE id = $1", contact_id)
    assert abs(received.timestamp() * 1000 - (contact_id.int >> 80)) < 1000


@pytest.mark.asyncio
async def test_a_refused_attempt_is_logged_under_a_time_ordered_id_too(client, keys, conn) -> None:
    """A malformed contact is logged (never lost) in the same index, under the same kind of id."""
    r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json={"channel": "phone", "from": 7})
    assert r.status == 422
    (row,) = await conn.fetch("SELECT id, status FROM contacts WHERE status <> 'decided'")
    assert row["status"] == "malformed" and row["id"].version == 7
