"""A decision's JSON is built once and shared by the reply, the log row and the remembered answer:
it must be what pydantic would write, and be built again when a field is set."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from gateway.contact import Decision
from gateway.rules.vocabulary import Banner, Reason


def decision() -> Decision:
    return Decision(
        contact_id="c0ffee00-0000-4000-8000-000000000000",
        action="deflect",
        target=None,
        banner=Banner(severity="danger", text="Written contact only — café ✓", restriction_ids=[7]),
        customer_message="Please write to us",
        reasons=[Reason(source="restriction", id="7", because="written only")],
        received_at=datetime(2026, 11, 26, 5, 30, 1, 123456, tzinfo=UTC),
    )


def test_the_shared_json_is_what_pydantic_writes():
    d = decision()
    assert orjson.dumps(d.as_json()) == d.model_dump_json().encode()
    assert d.as_json() is d.as_json()  # built once


def test_setting_a_field_builds_it_again_and_equality_ignores_it():
    d = decision()
    before = d.as_json()
    d.flagged = True
    assert d.as_json()["flagged"] is True and before["flagged"] is False
    assert d == Decision.model_validate(d.as_json())  # whether it was built is no difference
