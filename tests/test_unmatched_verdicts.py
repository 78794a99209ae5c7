"""An unmatched sender's verdict, kept for its minute, is the verdict the rules give at every second of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
                    again = kept.verdict(ruleset, calendar, key, now, lambda fresh=fresh: fresh)
                    assert again == fresh, (channel, withheld, now)
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


def _kept(c: Contact, match: Match, ruleset: CompiledRuleSet, kept: UnmatchedVerdicts) -> str | None:
    key = UnmatchedVerdicts.key(c, match, False, ruleset)
    assert key is not None
    found = kept.verdict(ruleset, Calendar(), key, NOW, lambda: decide(c, context(match, ruleset=ruleset), NOW))
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
