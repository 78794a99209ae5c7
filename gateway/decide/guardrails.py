"""The guardrail report: for each manager rule, where a restriction would override it.

Each rule is tried on its own (its conditions taken as met) against one example restriction of each
kind, on each channel the rule names, through the same `decide` every contact goes through. Wherever
the restriction changes the action or the target, the report says so with the restriction's reason:
a manager sees that a rule can never breach a restriction, and where it gives way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..rules.compiled import CompiledRuleSet, compile_ruleset
from ..rules.context import Context
from ..rules.engine import Verdict, decide
from ..rules.params import CHANNELS
from ..rules.ruleset import Rule, RuleSet, RuleTestCase, When
from ..rules.vocabulary import Contact
from .ruletests import situation_context

# One example restriction per kind, with the situation that makes it act (Tuesday 3 March 2026,
# 15:00 UK time is outside the example set times; the contact is about the closed case).
_AT = datetime.fromisoformat("2026-03-03T15:00:00+00:00")
EXAMPLES: dict[str, dict[str, Any]] = {
    "written_only": {"restrictions": [{"params": {"kind": "written_only"}}]},
    "no_personal_contact": {"restrictions": [{"params": {"kind": "no_personal_contact"}}]},
    "appointment_only": {"restrictions": [{"params": {"kind": "appointment_only"}}]},
    "set_times": {
        "restrictions": [
            {"params": {"kind": "set_times", "windows": [{"days": ["tue"], "start": "10:00", "end": "12:00"}]}}
        ]
    },
    "named_contact": {"restrictions": [{"params": {"kind": "named_contact", "staff_id": 7}}]},
    "closed_issue": {
        "restrictions": [{"params": {"kind": "closed_issue", "case_id": 4}}],
        "case_status": "exhausted",
    },
    "contact_limit": {
        "restrictions": [{"params": {"kind": "contact_limit", "limit": 1, "period": "day"}}],
        "count": 2,
    },
    "caution": {"restrictions": [{"params": {"kind": "caution", "note": "Example caution"}}]},
}


@dataclass(frozen=True, slots=True)
class Override:
    kind: str
    channel: str
    action: str
    target: str | None
    because: str


def _describe(v: Verdict) -> tuple[str, str | None]:
    return v.action, f"{v.target.type} {v.target.id}" if v.target else None


_NO_RULES = compile_ruleset(RuleSet(version=0, rules=[]))


def _situations() -> dict[tuple[str | None, str], tuple[Contact, Context]]:
    """(kind or None for no restriction, channel) → the contact and its context, made once."""
    made: dict[tuple[str | None, str], tuple[Contact, Context]] = {}
    for kind, situation in [(None, {}), *EXAMPLES.items()]:
        for channel in CHANNELS:
            case = RuleTestCase.model_validate(
                {
                    "name": "guardrail",
                    "contact": Contact(channel=channel),
                    "situation": situation,
                    "expect": {"action": "route"},
                }
            )
            made[(kind, channel)] = (case.contact, situation_context(case, _NO_RULES, _AT))
    return made


_SITUATIONS = _situations()


def _decide(compiled: CompiledRuleSet, kind: str | None, channel: str) -> Verdict:
    contact, ctx = _SITUATIONS[(kind, channel)]
    return decide(contact, dataclasses.replace(ctx, ruleset=compiled), _AT)


def rule_overrides(rule: Rule) -> list[Override]:
    """Where an example restriction of each kind changes what this rule proposes, channel by channel."""
    alone = compile_ruleset(RuleSet(version=0, rules=[rule.model_copy(update={"when": When()})]))
    proposed = {channel: _describe(_decide(alone, None, channel)) for channel in rule.when.channels or CHANNELS}
    found = []
    for kind in EXAMPLES:
        for channel, wanted in proposed.items():
            restricted = _decide(alone, kind, channel)
            if wanted != _describe(restricted):
                because = next((r.because for r in restricted.reasons if r.source == "restriction"), "")
                action, target = _describe(restricted)
                found.append(Override(kind, channel, action, target, because))
    return found


def guardrail_report(ruleset: RuleSet) -> list[dict[str, Any]]:
    """For each rule: what it proposes, and each restriction kind that overrides it, on which channels."""
    report = []
    for rule in ruleset.rules:
        by_kind: dict[str, dict[str, Any]] = {}
        for o in rule_overrides(rule):
            entry = by_kind.setdefault(o.kind, {"kind": o.kind, "channels": [], "outcomes": []})
            entry["channels"].append(o.channel)
            entry["outcomes"].append(
                {"channel": o.channel, "action": o.action, "target": o.target, "because": o.because}
            )
        report.append({"rule": rule.id, "description": rule.description, "overridden_by": list(by_kind.values())})
    return report
