"""An unmatched sender's verdict, kept for its minute, is the verdict the rules give at every second of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.decide.unmatched import UnmatchedVerdicts
from gateway.rules.calendar import Calendar
from gateway.rules.compiled import CompiledRuleSet, compile_ruleset
from gateway.rules.context import Match
from gateway.rules.engine import decide
from gateway.rules.ruleset import parse_ruleset
from gateway.rules.vocabulary import Contact
from tests.rules.factories import DEFAULT, contact, context

OUT_OF_HOURS = compile_ruleset(
    parse_ruleset(
        {
            "version": 7,
            "rules": [
                {
                    "id": "base",
                    "description": "Calls to general",
                    "then": {"target": {"type": "queue", "id": "general"}},
                },
                {
                    "id": "closed",
                    "description": "Out of hours",
                    "when": {
                        "channels": ["phone"],
                        "outside_windows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:30"}],
                    },
                    "then": {"action": "deflect", "message": "We are closed. Call back {next_allowed}."},
                },
            ],
        }
    )
)


def test_the_verdict_of_a_minute_holds_for_each_of_its_seconds() -> None:
    kept = UnmatchedVerdicts()
    calendar = Calendar()
    start = datetime(2026, 3, 2, 8, 58, tzinfo=UTC)  # a Monday, across opening and closing
    minutes = [start + timedelta(minutes=m) for m in (0, 1, 2, 3, 4, 150, 511, 512, 513, 514, 515, 1500, 2000)]
    seen = set()
    for ruleset in (DEFAULT, OUT_OF_HOURS):
        for channel, withheld in (("phone", False), ("phone", True), ("email", False)):
            match = Match(withheld=withheld)
            c = contact(channel)
            for minute in minutes:
                for second in (0, 31, 59):
                    now = minute + timedelta(seconds=second, microseconds=999 * second)
                    fresh = decide(c, context(match, ruleset=ruleset), now)
                    key = UnmatchedVerdicts.key(c, match, False, ruleset)
                    assert key is not None
                    again = kept.decision(ruleset, calendar, key, now, lambda fresh=fresh: fresh, "id")
                    assert again == fresh.to_decision("id", received_at=now), (channel, withheld, now)
                    seen.add((again.action, again.customer_message))
    assert ("deflect", "We are closed. Call back today at 9am.") in seen  # the rules really changed over time
    assert any(action == "route" for action, _ in seen)


BY_LINE = compile_ruleset(
    parse_ruleset(
        {
            "version": 8,
            "rules": [
                {"id": "base", "description": "All to general", "then": {"target": {"type": "queue", "id": "general"}}},
                {
                    "id": "rents",
                    "description": "The rents line",
                    "when": {"to": ["+441134960001"]},
                    "then": {"target": {"type": "queue", "id": "rents"}},
                },
            ],
        }
    )
)
SUBJECTS = compile_ruleset(
    parse_ruleset(
        {
            "version": 9,
            "rules": [
                {"id": "base", "description": "All to general", "then": {"target": {"type": "queue", "id": "general"}}},
                {
                    "id": "damp",
                    "description": "Damp",
                    "when": {"subject_has": ["damp"]},
                    "then": {"target": {"type": "queue", "id": "repairs"}},
                },
            ],
        }
    )
)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CALENDAR = Calendar()


def _kept(c: Contact, match: Match, ruleset: CompiledRuleSet, kept: UnmatchedVerdicts) -> str | None:
    key = UnmatchedVerdicts.key(c, match, False, ruleset)
    assert key is not None
    found = kept.decision(ruleset, CALENDAR, key, NOW, lambda: decide(c, context(match, ruleset=ruleset), NOW), "id")
    return found.target.id if found.target else None


def test_the_number_called_is_part_of_the_kept_verdict_when_a_rule_routes_on_it() -> None:
    kept = UnmatchedVerdicts()
    rents = contact("phone", to="+441134960001")
    repairs = contact("phone", to="+441134960002")
    assert _kept(rents, Match(), BY_LINE, kept) == "rents"
    assert _kept(repairs, Match(), BY_LINE, kept) == "general"  # the same minute, another line
    assert _kept(rents, Match(), BY_LINE, kept) == "rents"


def test_a_sender_the_rules_know_something_of_is_decided_in_full() -> None:
    plain = contact("email")
    assert UnmatchedVerdicts.key(plain, Match(adjustments=frozenset({"vulnerable"})), False, DEFAULT) is None
    assert UnmatchedVerdicts.key(plain, Match(on_behalf=True), False, DEFAULT) is None
    assert UnmatchedVerdicts.key(contact("email", on_behalf_of="C-1"), Match(), False, DEFAULT) is None
    assert UnmatchedVerdicts.key(contact("email", subject="Damp in the bathroom"), Match(), False, SUBJECTS) is None


def test_only_a_sender_with_no_customer_and_no_case_is_kept() -> None:
    c = contact("phone")
    assert UnmatchedVerdicts.key(c, Match(), False, DEFAULT) == ("phone", False, frozenset())
    assert UnmatchedVerdicts.key(c, Match(), True, DEFAULT) is None
    assert UnmatchedVerdicts.key(c, Match(representative_of=(3,)), False, DEFAULT) is None


def test_a_kept_decision_is_the_decision_built_afresh_and_answers_the_same() -> None:
    """The decision of an unmatched contact is stamped from a template (its id and time set): it must
    equal the Decision the verdict would build, answer what `model_dump` would, and share nothing
    a later change could leak into the next contact's answer."""
    kept, calendar = UnmatchedVerdicts(), Calendar()
    c = contact("phone")
    for ruleset in (DEFAULT, OUT_OF_HOURS):
        for now in (NOW, NOW.replace(hour=22, microsecond=0), NOW.replace(hour=7, microsecond=123456)):
            key = UnmatchedVerdicts.key(c, Match(), False, ruleset)
            assert key is not None
            fresh = decide(c, context(Match(), ruleset=ruleset), now)
            first = kept.decision(ruleset, calendar, key, now, lambda fresh=fresh: fresh, "id-1")
            second = kept.decision(ruleset, calendar, key, now, lambda: pytest.fail("decided again"), "id-2")
            assert first == fresh.to_decision("id-1", received_at=now)
            assert first.answered() == first.model_dump(mode="json")
            assert second.answered() == fresh.to_decision("id-2", received_at=now).model_dump(mode="json")
            first.answered()["contact_id"] = "changed"
            first.degraded = True  # a field set drops the kept answer, and touches no other decision
            assert first.answered()["degraded"] is True and first.answered()["contact_id"] == "id-1"
            assert second.answered()["contact_id"] == "id-2" and second.answered()["degraded"] is False
