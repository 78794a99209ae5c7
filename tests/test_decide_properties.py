"""Property: whatever contacts arrive, each produces exactly one log row and never a 5xx."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factory import bearer

senders = st.one_of(
    st.sampled_from(
        [
            "anonymous",
            "",
            "+266696687",
            "07700 900003",
            "07700 900008",
            "a@example.com",
            "Someone <SOMEONE@Example.org>",
            "web-user-1",
            "0770",
            "not a number",
            "💥",
        ]
    ),
    st.text(max_size=40),
)
contacts = st.fixed_dictionaries(
    {"channel": st.sampled_from(["phone", "email", "web_form", "letter", "visit"]), "from": senders},
    optional={
        "subject": st.text(max_size=60),
        "case_ref": st.sampled_from(["CMP-1", "[x]", ""]),
        "appointment": st.booleans(),
        "on_behalf_of": st.sampled_from(["HMS-1", "07700 900444", "x"]),
        "to": st.text(max_size=20),
        "body": st.text(max_size=100),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(contacts, min_size=1, max_size=8))
async def test_every_contact_is_logged_exactly_once(client, keys, conn, batch):
    ids = []
    for body in batch:
        r = await client.post(
            "/v1/contacts", headers=bearer(keys["channel"]), json={**body, "provider_id": uuid.uuid4().hex}
        )
        assert r.status < 500
        if r.status in (200, 201):
            ids.append(uuid.UUID((await r.json())["contact_id"]))
        else:
            assert r.status == 422
    found = await conn.fetchval("SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[])", ids)
    assert found == len(ids)
    assert await conn.fetchval("SELECT count(*) FROM (SELECT id FROM contacts GROUP BY id HAVING count(*) > 1) d") == 0
