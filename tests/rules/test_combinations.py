"""Restrictions together, identity edge cases, rule overrides and the wording agents see."""

from __future__ import annotations

from datetime import date

from gateway.rules.compiled import CompiledRuleSet, compile_ruleset
from gateway.rules.context import Bundle, CustomerView, Match
from gateway.rules.engine import decide
from gateway.rules.kinds.caution import Caution
from gateway.rules.kinds.set_times import SetTimes
from gateway.rules.params import Window
from gateway.rules.ruleset import parse_ruleset

from .factories import (
    CLOSED_CASE,
    NEIGHBOUR,
    TUE_1030,
    TUE_1500,
    bundle,
    context,
    restriction,
)
from .factories import contact as make_contact


def _only(*rules: dict[str, object]) -> CompiledRuleSet:
    return compile_ruleset(parse_ruleset({"version": 9, "rules": list(rules)}))


def test_written_only_and_caution_call_is_deflected_with_a_danger_banner() -> None:
    b = bundle(restriction("written_only", rid=1), restriction("caution", rid=2))
    v = decide(make_contact("phone"), context(Match((b,))), TUE_1030)
    assert v.action == "deflect" and v.target is None
    assert v.banner is not None and v.banner.severity == "danger"
    assert "Written contact only" in v.banner.text and "Threatened staff" in v.banner.text
    assert v.banner.restriction_ids == [1, 2]
    assert "write to Riverside Homes, 1 River Street" in (v.customer_message or "")
    overridden = [r for r in v.reasons if r.source == "rule" and "overridden" in r.because]
    assert overridden and overridden[0].id == "caution"
    assert "written only" in overridden[0].because


def test_written_only_and_caution_email_goes_to_the_caution_queue() -> None:
    b = bundle(restriction("written_only", rid=1), restriction("caution", rid=2))
    v = decide(make_contact("email"), context(Match((b,))), TUE_1030)
    assert (v.action, v.target and v.target.id, v.flagged) == ("route", "caution", True)


def test_set_times_and_named_contact() -> None:
    b = bundle(restriction("set_times", rid=1), restriction("named_contact", rid=2))
    inside = decide(make_contact("phone"), context(Match((b,))), TUE_1030)
    assert inside.action == "route" and inside.target is not None
    assert (inside.target.type, inside.target.id) == ("staff", "7")
    outside = decide(make_contact("phone"), context(Match((b,))), TUE_1500)
    assert outside.action == "deflect" and outside.target is None
    assert outside.customer_message == (
        "We can only accept calls on Tuesdays and Thursdays between 10am and 12 noon. "
        "The next time you can call is Thursday at 10am."
    )
    email = decide(make_contact("email"), context(Match((b,))), TUE_1500)
    assert email.target is not None and (email.target.type, email.target.id) == ("staff", "7")


def test_named_contact_overrides_a_rule_queue_and_says_so() -> None:
    b = bundle(restriction("named_contact"))
    v = decide(make_contact("email"), context(Match((b,))), TUE_1030)
    assert v.target is not None and (v.target.type, v.target.id) == ("staff", "7")
    rule = [r for r in v.reasons if r.source == "rule" and r.id == "email"]
    assert any("overridden by restriction #1 (named contact)" in r.because for r in rule)


def test_no_personal_contact_representative_versus_customer() -> None:
    b = bundle(restriction("no_personal_contact"))
    own = decide(make_contact("phone"), context(Match((b,))), TUE_1030)
    assert own.action == "deflect"
    assert "through your representative" in (own.customer_message or "")
    rep = decide(make_contact("phone"), context(Match((b,), representative_of=(1,))), TUE_1030)
    assert rep.action == "route" and rep.matched.representative_of == [1]
    assert rep.banner is not None and "Chris Doe (support worker)" in rep.banner.text
    assert any("representative of Alex Smith" in r.because for r in rep.reasons)


def test_closed_issue_about_the_case_versus_an_unrelated_report() -> None:
    b = bundle(restriction("closed_issue"))
    about = decide(make_contact("email", case_ref="CMP-1234"), context(Match((b,)), case=CLOSED_CASE), TUE_1030)
    assert about.action == "auto_acknowledge" and about.flagged
    assert about.matched.case_id == 42
    assert any("filed to case CMP-1234" in r.because for r in about.reasons)
    assert "will reply only if it contains new, relevant information" in (about.customer_message or "")
    unrelated = decide(make_contact("email"), context(Match((b,))), TUE_1030)
    assert unrelated.action == "route" and unrelated.target is not None
    assert unrelated.target.id == "email" and not unrelated.flagged
    phone = decide(make_contact("phone"), context(Match((b,))), TUE_1030)
    assert phone.banner is not None
    assert phone.banner.text.startswith("Do not reopen case CMP-1234 (closed 3 November 2025)")


def test_withheld_number_is_never_matched() -> None:
    b = bundle(restriction("written_only"))
    v = decide(
        make_contact("phone", **{"from": "anonymous"}),
        context(Match((b,), withheld=True, sender_kind="withheld")),
        TUE_1030,
    )
    assert (v.action, v.target and v.target.id, v.banner) == ("route", "general", None)
    assert v.matched.withheld and v.matched.customer_ids == []
    assert v.reasons[0].id == "withheld" and "withheld" in v.reasons[0].because.lower()


def test_unknown_sender_gets_the_normal_route() -> None:
    v = decide(make_contact("web_form"), context(Match()), TUE_1030)
    assert (v.action, v.target and v.target.id, v.banner, v.flagged) == ("route", "web", None, False)
    assert v.reasons[0].id == "unmatched" and v.ruleset_version == 1


def test_a_known_customer_without_restrictions_is_not_called_unrecognised() -> None:
    v = decide(make_contact("phone"), context(Match(adjustments=frozenset({"vulnerable"}))), TUE_1030)
    assert v.action == "route" and v.reasons[0].id == "unrestricted"
    assert "no contact restriction" in v.reasons[0].because and "vulnerable" in v.reasons[0].because
    assert "not recognised" not in v.reasons[0].because


def test_ambiguous_household_number_applies_everyone_s_restrictions() -> None:
    first = bundle(restriction("written_only", rid=1))
    second = Bundle(NEIGHBOUR, (restriction("caution", rid=2, customer_id=2, params=Caution(note="Dog on site")),))
    v = decide(make_contact("phone"), context(Match((first, second))), TUE_1030)
    assert v.action == "deflect" and v.matched.ambiguous
    assert v.matched.customer_ids == [1, 2]
    assert v.banner is not None and v.banner.severity == "danger"
    assert "Shared identifier: could be Alex Smith or Jo Smith" in v.banner.text
    assert "Alex Smith: Written contact only" in v.banner.text
    assert "Jo Smith: Caution: Dog on site." in v.banner.text
    assert any(r.id == "ambiguous" and "2 customers" in r.because for r in v.reasons)


def test_a_number_shared_with_an_unrestricted_customer_is_ambiguous() -> None:
    """A household phone: the restricted customer's restriction still covers the call (DESIGN §2),
    and the agent and the log are told the caller may be the other customer, who has none."""
    v = decide(
        make_contact("phone"),
        context(Match((bundle(restriction("caution", params=Caution(note="Dog"))),), shared_with=((2, "Jo Smith"),))),
        TUE_1030,
    )
    assert v.action == "route" and v.matched.ambiguous
    assert v.matched.customer_ids == [1, 2]
    assert v.banner is not None and "Shared identifier: could be Alex Smith or Jo Smith" in v.banner.text
    assert "Alex Smith: Caution: Dog" in v.banner.text
    (why,) = [r.because for r in v.reasons if r.id == "ambiguous"]
    assert "2 customers (Alex Smith and Jo Smith)" in why and "Jo Smith has none" in why
    assert "the restrictions of Alex Smith are shown (Jo Smith has none)" in v.banner.text
    # A hostel's landline: every resident named would bury the banner.
    hostel = Match(
        (bundle(restriction("caution", params=Caution(note="Dog"))),),
        shared_with=tuple((i, f"Resident {i}") for i in range(2, 12)),
    )
    text = decide(make_contact("phone"), context(hostel), TUE_1030).banner.text
    assert "could be Alex Smith, Resident 2, Resident 3, Resident 4, Resident 5 or one of 6 other customers" in text
    alone = decide(
        make_contact("phone"), context(Match((bundle(restriction("caution", params=Caution(note="Dog"))),))), TUE_1030
    )
    assert not alone.matched.ambiguous and "Shared identifier" not in (alone.banner.text if alone.banner else "")


def test_only_active_and_under_appeal_restrictions_are_enforced() -> None:
    for status, enforced in [
        ("proposed", False),
        ("lifted", False),
        ("lapsed", False),
        ("active", True),
        ("under_appeal", True),
    ]:
        b = bundle(restriction("written_only", status=status))
        v = decide(make_contact("phone"), context(Match((b,))), TUE_1030)
        assert (v.action == "deflect") is enforced, status
        assert (v.banner is not None) is enforced, status


def test_banner_review_due_is_the_earliest() -> None:
    b = bundle(
        restriction("caution", rid=1, review_due=date(2027, 5, 1)),
        restriction("written_only", rid=2, review_due=date(2026, 9, 1)),
    )
    v = decide(make_contact("email"), context(Match((b,))), TUE_1030)
    assert v.banner is not None and v.banner.review_due == date(2026, 9, 1)


def test_visit_caution_says_do_not_visit_alone() -> None:
    v = decide(make_contact("visit"), context(Match((bundle(restriction("caution")),))), TUE_1030)
    assert v.banner is not None and "Do not visit alone." in v.banner.text


def test_rule_route_of_a_written_only_call_is_overridden() -> None:
    rules = _only(
        {
            "id": "vip",
            "description": "Known callers to the priority queue",
            "when": {"sender": ["matched"]},
            "then": {"target": {"type": "queue", "id": "priority"}, "priority": 9},
        }
    )
    b = bundle(restriction("written_only"))
    v = decide(make_contact("phone"), context(Match((b,)), ruleset=rules), TUE_1030)
    assert v.action == "deflect"
    assert any(r.source == "rule" and r.id == "vip" and "overridden" in r.because for r in v.reasons)


def test_rule_deflection_message_is_rendered_safely() -> None:
    rules = _only(
        {"id": "base", "description": "Calls to general", "then": {"target": {"type": "queue", "id": "general"}}},
        {
            "id": "closed",
            "description": "Out of hours",
            "when": {
                "channels": ["phone"],
                "outside_windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}],
            },
            "then": {"action": "deflect", "message": "Sorry {customer_name}, we are closed. Call back {next_allowed}."},
        },
    )
    who = Bundle(CustomerView(1, "{case_ref}"), ())
    v = decide(make_contact("phone"), context(Match((who,)), ruleset=rules), TUE_1500.replace(hour=19))
    assert v.action == "deflect"
    assert v.customer_message == "Sorry {case_ref}, we are closed. Call back tomorrow at 9am."


def test_count_at_least_rule_reads_the_customer_counter() -> None:
    from gateway.rules.calendar import LONDON
    from gateway.rules.counters import counters_needed

    rules = _only(
        {
            "id": "busy",
            "description": "Frequent callers to a team lead",
            "when": {"count_at_least": {"count": 5, "period": "day"}},
            "then": {"target": {"type": "queue", "id": "team-lead"}, "flag": True},
        }
    )
    match = Match((bundle(),))
    keys = [s.key for s in counters_needed(rules, match.bundles, TUE_1030, LONDON)]
    assert keys == ["customer:1:day:2026-03-03"]
    low = decide(make_contact("phone"), context(match, ruleset=rules, counts={keys[0]: 4}), TUE_1030)
    high = decide(make_contact("phone"), context(match, ruleset=rules, counts={keys[0]: 5}), TUE_1030)
    assert low.target is not None and low.target.id == "general" and not low.flagged
    assert high.target is not None and high.target.id == "team-lead" and high.flagged


def test_set_times_on_a_written_channel_holds_until_the_next_window() -> None:
    r = restriction(
        "set_times",
        channels={"phone", "email"},
        params=SetTimes(windows=[Window(days=["tue"], start="10:00", end="11:00")]),
    )
    v = decide(make_contact("email"), context(Match((bundle(r),))), TUE_1500)
    assert v.action == "hold" and v.target is not None and v.target.id == "email"
    assert any("held until Tuesday 10 March at 10am" in x.because for x in v.reasons)


def test_verdict_becomes_a_decision() -> None:
    v = decide(make_contact("phone"), context(Match()), TUE_1030)
    d = v.to_decision("abc")
    assert d.contact_id == "abc" and d.action == "route" and not d.degraded


def test_a_route_without_a_target_after_a_deflect_goes_to_general() -> None:
    rules = _only(
        {"id": "a", "description": "Deflect all", "then": {"action": "deflect"}},
        {"id": "b", "description": "Route again", "then": {"action": "route"}},
    )
    v = decide(make_contact("phone"), context(Match(), ruleset=rules), TUE_1030)
    assert v.action == "route" and v.target is not None and v.target.id == "general"


def test_named_contact_person_preferred_over_caution_fallback_in_a_household() -> None:
    from gateway.rules.kinds.named_contact import NamedContact

    missing = restriction("named_contact", NamedContact(staff_id=99), rid=1)
    present = restriction("named_contact", NamedContact(staff_id=8), rid=2, customer_id=2)
    v = decide(make_contact("email"), context(Match((bundle(missing), Bundle(NEIGHBOUR, (present,))))), TUE_1030)
    assert v.target is not None and (v.target.type, v.target.id) == ("staff", "8")
    assert v.flagged
