"""An unmatched sender's verdict, kept for its minute, is the verdict the rules give at every second of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.decide.unmatched import UnmatchedVerdicts
from gateway.rules.calendar import Calendar
from gateway.rules.compiled import compile_ruleset
from gateway.rules.context import Match
from gateway.rules.engine import decide
from gateway.rules.ruleset import parse_ruleset
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
                    again = kept.verdict(ruleset, calendar, channel, withheld, now, lambda fresh=fresh: fresh)
                    assert again == fresh, (channel, withheld, now)
                    seen.add((again.action, again.customer_message))
    assert ("deflect", "We are closed. Call back today at 9am.") in seen  # the rules really changed over time
    assert any(action == "route" for action, _ in seen)


def test_only_a_sender_with_no_customer_and_no_case_is_kept() -> None:
    assert UnmatchedVerdicts.applies(Match(), has_case=False)
    assert not UnmatchedVerdicts.applies(Match(), has_case=True)
    assert not UnmatchedVerdicts.applies(Match(representative_of=(3,)), has_case=False)
