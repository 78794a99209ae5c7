"""Property: publishing a draft never changes the outcome for a contact whose decision a restriction
fixes. Random drafts (every condition, the new ones included) against the published default, on
random contacts, restrictions and counts: where a restriction deflects, both versions deflect with
the restriction's own words; where a restriction names who takes the contact, a routed contact
reaches them under both."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from gateway.contact import InboundContact
from gateway.rules.calendar import LONDON
from gateway.rules.compiled import CompiledRuleSet, compile_ruleset
from gateway.rules.context import Context, Match
from gateway.rules.counters import counters_needed
from gateway.rules.default_ruleset import DEFAULT_RULESET
from gateway.rules.engine import apply_restrictions, decide
from gateway.rules.params import CHANNELS
from gateway.rules.ruleset import parse_ruleset
from gateway.rules.vocabulary import ADJUSTMENT_FLAGS

from .test_properties import FAST, bundles, restrictions, rules, situations

PUBLISHED = compile_ruleset(parse_ruleset(DEFAULT_RULESET))
SUBJECTS = ["Damp in the hall", "Rent arrears", "complaint about noise", "", "DAMP!", "black mould"]
ADDRESSES = ["+441134960000", "+44 113 496 0001", "complaints@example.org", "rents@example.org"]


@st.composite
def draft_rules(draw: st.DrawFn, index: int) -> dict[str, Any]:
    rule: dict[str, Any] = draw(rules(index))
    when = rule["when"]
    if draw(st.booleans()):
        when["to"] = draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=2))
    if draw(st.booleans()):
        when["subject_has"] = draw(st.lists(st.sampled_from(["damp", "black mould", "rent", "noise"]), min_size=1))
    if draw(st.booleans()):
        when["adjustments"] = draw(st.lists(st.sampled_from(ADJUSTMENT_FLAGS), min_size=1, max_size=3))
    if draw(st.booleans()):
        when["has_adjustments"] = draw(st.booleans())
    if draw(st.booleans()):
        when["on_behalf"] = draw(st.booleans())
    return rule


@st.composite
def drafts(draw: st.DrawFn) -> CompiledRuleSet:
    count = draw(st.integers(1, 6))
    return compile_ruleset(parse_ruleset({"version": 9, "rules": [draw(draft_rules(i)) for i in range(count)]}))


Case = tuple[InboundContact, Context, Context, datetime]


@st.composite
def before_and_after(draw: st.DrawFn) -> Case:
    contact, ctx, now = draw(situations())
    draft = draw(drafts())
    match = ctx.match
    if draw(st.integers(0, 4)):  # mostly a customer with at least one enforced restriction
        rs = (draw(restrictions(10, 1)), *draw(bundles(1)).restrictions)
        enforced = tuple(dataclasses.replace(r, status="active") for r in rs)
        match = Match((dataclasses.replace(draw(bundles(1)), restrictions=enforced),), sender_kind="phone")
    match = dataclasses.replace(
        match,
        adjustments=frozenset(draw(st.lists(st.sampled_from(ADJUSTMENT_FLAGS), max_size=2))),
        on_behalf=draw(st.booleans()),
    )
    keys = {s.key for rs in (PUBLISHED, draft) for s in counters_needed(rs, match.bundles, now, LONDON)}
    counts = {k: ctx.counts.get(k, draw(st.integers(0, 8))) for k in keys}
    contact = InboundContact(
        channel=draw(st.sampled_from(CHANNELS)),
        to=draw(st.sampled_from([None, *ADDRESSES])),
        subject=draw(st.sampled_from(SUBJECTS)),
        on_behalf_of=draw(st.sampled_from([None, "C-1"])),
    )
    published = dataclasses.replace(ctx, match=match, ruleset=PUBLISHED, counts=counts)
    return contact, published, dataclasses.replace(published, ruleset=draft), now


@FAST
@given(before_and_after())
def test_publishing_never_changes_what_a_restriction_fixes(
    case: tuple[InboundContact, Context, Context, datetime],
) -> None:
    contact, published, draft, now = case
    applied = apply_restrictions(contact, published, now)
    before, after = decide(contact, published, now), decide(contact, draft, now)
    restricted = [r.model_dump() for r in before.reasons if r.source == "restriction"]
    assert restricted == [r.model_dump() for r in after.reasons if r.source == "restriction"]
    if any(a.outcome.action == "deflect" for a in applied):
        event("a restriction deflects")
        assert (before.action, before.target, before.customer_message) == ("deflect", None, before.customer_message)
        assert (after.action, after.target, after.customer_message) == ("deflect", None, before.customer_message)
    pinned = {a.outcome.target for a in applied if a.outcome.pins_target and a.outcome.target}
    if pinned and before.action == after.action == "route":
        event("a restriction names who takes it")
        assert before.target == after.target
        assert after.target is not None and (after.target.type, after.target.id) in {(d.type, d.id) for d in pinned}
    assert after.ruleset_version == 9 and before.ruleset_version == 1
