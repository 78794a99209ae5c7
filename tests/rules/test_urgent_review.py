"""Always a way in, re-proved after every change to the person (pure): a customer either keeps a way
in or is flagged for urgent review, and a flagged customer is never declined on a channel they need."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import lifecycle as lc
from gateway.rules.context import Bundle, CustomerView, Match, RepresentativeView, RestrictionView, UrgentReviewView
from gateway.rules.engine import decide
from gateway.rules.params import PERSONAL
from tests.rules.factories import PARAMS, TUE_1500, contact, context, restriction

SINCE = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
FLAGS = sorted(lc.FLAG_NEEDS)
KINDS = ("written_only", "no_personal_contact", "set_times", "contact_limit")
REP = RepresentativeView(5, "Ann Reed", "daughter")


def flagged(views: list[RestrictionView], found: lc.NoWayIn | None) -> list[RestrictionView]:
    """The views as the index would load them after the store flagged `found`."""
    if found is None:
        return views
    urgent = UrgentReviewView(SINCE, found.why, found.channels)
    return [dataclasses.replace(v, urgent=urgent) if v.id in found.restriction_ids else v for v in views]


def test_written_only_for_someone_who_cannot_write_routes_their_call_to_the_caution_queue():
    views = [restriction("written_only", rid=3)]
    closings = [lc.Closing(3, "written_only", PERSONAL)]
    found = lc.no_way_in(closings, ["cannot_write"])
    assert found is not None and found.restriction_ids == (3,) and found.channels == PERSONAL
    who = Bundle(CustomerView(1, "Jo Reed", frozenset({"cannot_write"})), tuple(flagged(views, found)))
    verdict = decide(contact("phone"), context(Match(bundles=(who,), sender_kind="phone")), TUE_1500)
    assert verdict.action == "route" and verdict.target is not None and verdict.target.id == "caution"
    assert verdict.flagged and verdict.banner is not None and "Urgent review since 2026-11-25" in verdict.banner.text
    assert verdict.customer_message is None
    # Writing is still routed as before, and an unflagged restriction still declines the call.
    assert decide(contact("email"), context(Match(bundles=(who,), sender_kind="email")), TUE_1500).action == "route"
    plain = Bundle(who.customer, tuple(views))
    assert decide(contact("phone"), context(Match(bundles=(plain,), sender_kind="phone")), TUE_1500).action == "deflect"


def test_a_representative_who_writes_is_a_way_in_but_a_shut_need_is_still_flagged():
    closings = [lc.Closing(3, "written_only", PERSONAL)]
    assert lc.no_way_in(closings, [], has_representatives=False) is None
    found = lc.no_way_in(closings, ["cannot_write"], has_representatives=True)
    assert found is not None and "reasonable adjustment shut" in found.why
    # Judged against the needs when it was saved (a manager signed an equality note): not flagged.
    assert lc.no_way_in(closings, ["needs_phone"], noted=[3]) is None
    assert lc.no_way_in(closings, ["needs_phone"]) is not None


restrictions_st = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sets(st.sampled_from(sorted(PERSONAL)), min_size=1)), max_size=3
)
changes_st = st.lists(
    st.one_of(st.tuples(st.just("flag"), st.sampled_from(FLAGS)), st.tuples(st.just("rep"), st.booleans())),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(restrictions_st, changes_st)
def test_after_every_change_a_way_in_or_urgent_review_and_no_deflect_on_a_needed_channel(made, changes):
    views = [restriction(kind, PARAMS[kind], rid=n + 1, channels=chans) for n, (kind, chans) in enumerate(made)]
    closings = [lc.Closing(v.id, v.kind, v.channels) for v in views]
    flags: set[str] = set()
    has_rep = False
    for what, value in changes:
        if what == "flag":
            flags ^= {str(value)}
        else:
            has_rep = bool(value)
        found = lc.no_way_in(closings, flags, has_rep)
        assert lc.open_channels(closings, flags, has_rep) or found is not None
        customer = CustomerView(1, "Jo Reed", frozenset(flags))
        who = Bundle(customer, tuple(flagged(views, found)), (REP,) if has_rep else ())
        closed = frozenset().union(*(c.closes for c in closings))
        for flag in flags:
            needs = lc.FLAG_NEEDS.get(flag, frozenset())
            if not needs or not needs <= closed:
                continue  # the need is met by a channel still open
            assert found is not None
            for channel in needs:
                ctx = context(Match(bundles=(who,), sender_kind="phone"))
                assert decide(contact(channel), ctx, TUE_1500).action != "deflect", (flag, channel, made)
