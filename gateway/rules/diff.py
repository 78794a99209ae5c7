"""Two rule-set versions compared rule by rule (and test by test): added, removed, changed, moved."""

from __future__ import annotations

from typing import Any

from .ruleset import RuleSet


def _parts(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's comparable parts: description, and each `when` and `then` field that is set."""
    parts = {"description": rule["description"]}
    parts |= {f"when.{k}": v for k, v in rule["when"].items() if v is not None}
    parts |= {f"then.{k}": v for k, v in rule["then"].items() if v is not None and v is not False}
    return parts


def diff_rulesets(old: RuleSet, new: RuleSet) -> dict[str, Any]:
    """Each rule of either version, in the new order (removed ones last), with what changed."""
    before = {r.id: (i, r.model_dump(mode="json")) for i, r in enumerate(old.rules)}
    after = {r.id: (i, r.model_dump(mode="json")) for i, r in enumerate(new.rules)}
    # A rule has moved when its place among the rules both versions have changed (not when a rule
    # before it was added or removed).
    common_before = [rid for rid in before if rid in after]
    common_after = [rid for rid in after if rid in before]
    rules = []
    for rid, (j, rule) in after.items():
        if rid not in before:
            rules.append({"id": rid, "change": "added", "position": j, "after": rule})
            continue
        i, was = before[rid]
        a, b = _parts(was), _parts(rule)
        fields = [
            {"field": k, "before": a.get(k), "after": b.get(k)}
            for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)
        ]
        moved = common_before.index(rid) != common_after.index(rid)
        change = "changed" if fields else "moved" if moved else "same"
        rules.append({"id": rid, "change": change, "position": j, "was_position": i, "fields": fields})
    rules += [
        {"id": rid, "change": "removed", "was_position": i, "before": rule}
        for rid, (i, rule) in before.items()
        if rid not in after
    ]
    old_tests = {t.name: t.model_dump(mode="json") for t in old.tests}
    new_tests = {t.name: t.model_dump(mode="json") for t in new.tests}
    return {
        "from": old.version,
        "to": new.version,
        "rules": rules,
        "tests": {
            "added": [n for n in new_tests if n not in old_tests],
            "removed": [n for n in old_tests if n not in new_tests],
            "changed": [n for n in new_tests if n in old_tests and new_tests[n] != old_tests[n]],
        },
    }
