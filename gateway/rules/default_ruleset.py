"""The rule set shipped as version 1 (also inserted by migration 004; a test keeps them equal)."""

from __future__ import annotations

from typing import Any


def _rule(rid: str, description: str, when: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {"id": rid, "description": description, "when": when, "then": then}


# Shipped as the first published rule set (also inserted by a SQL migration): JSON-able data.
DEFAULT_RULESET: dict[str, Any] = {
    "version": 1,
    "rules": [
        _rule(
            "general",
            "Everything goes to the general queue unless a later rule says otherwise",
            {},
            {"action": "route", "target": {"type": "queue", "id": "general"}},
        ),
        _rule(
            "email",
            "Emails go to the email team",
            {"channels": ["email"]},
            {"target": {"type": "queue", "id": "email"}},
        ),
        _rule(
            "web-form",
            "Web forms go to the web team",
            {"channels": ["web_form"]},
            {"target": {"type": "queue", "id": "web"}},
        ),
        _rule(
            "reception",
            "Visits go to reception",
            {"channels": ["visit"]},
            {"target": {"type": "queue", "id": "reception"}},
        ),
        _rule(
            "withheld-phone",
            "Calls from withheld numbers go to the general queue",
            {"channels": ["phone"], "sender": ["withheld"]},
            {"target": {"type": "queue", "id": "general"}},
        ),
        _rule(
            "caution",
            "Customers with a caution marker go to the caution queue, flagged",
            {"kinds": ["caution"]},
            {"target": {"type": "queue", "id": "caution"}, "flag": True, "stop": True},
        ),
    ],
    "tests": [
        {
            "name": "unknown caller goes to general",
            "contact": {"channel": "phone"},
            "situation": {"sender": "unmatched"},
            "expect": {"action": "route", "target": {"type": "queue", "id": "general"}},
        },
        {
            "name": "email goes to the email queue",
            "contact": {"channel": "email"},
            "situation": {"sender": "unmatched"},
            "expect": {"action": "route", "target": {"type": "queue", "id": "email"}},
        },
        {
            "name": "caution marker goes to the caution queue",
            "contact": {"channel": "phone"},
            "situation": {"restrictions": [{"params": {"kind": "caution", "note": "Threatened staff"}}]},
            "expect": {"action": "route", "target": {"type": "queue", "id": "caution"}, "flagged": True},
        },
        {
            "name": "written-only caller is deflected",
            "contact": {"channel": "phone"},
            "situation": {"restrictions": [{"params": {"kind": "written_only"}}]},
            "expect": {"action": "deflect"},
        },
    ],
}
