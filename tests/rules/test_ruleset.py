"""Manager rule sets: validation with precise paths, safe templates, counters, self-tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.decide.ruletests import run_ruleset_tests
from gateway.errors import Invalid
from gateway.rules.calendar import LONDON
from gateway.rules.compiled import compile_ruleset
from gateway.rules.context import Bundle, CustomerView, Match
from gateway.rules.counters import (
    TTL_SECONDS,
    contact_limit_key,
    counters_needed,
    customer_count_key,
    period_bucket,
)
from gateway.rules.default_ruleset import DEFAULT_RULESET
from gateway.rules.kinds.contact_limit import ContactLimit
from gateway.rules.ruleset import RuleSet, RuleSetError, parse_ruleset
from gateway.rules.template import check_template, render
from gateway.rules.vocabulary import RulesInvalid

from .factories import TUE_1030, bundle, restriction


def _rules(*extra: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT_RULESET)
    data["rules"] += list(extra)
    return data


def _bad(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT_RULESET)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


QUEUE = {"type": "queue", "id": "general"}
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("rules.2.then.target", _bad(["rules", 2, "then", "target"], {"type": "queue", "id": "Web Team!"}), "queue name"),
    ("rules.0.then.target", _bad(["rules", 0, "then", "target"], {"type": "staff", "id": "abc"}), "staff id"),
    ("rules.1.then.target", _bad(["rules", 1, "then"], {"action": "deflect", "target": QUEUE}), "no target"),
    ("rules.3.then.message", _bad(["rules", 3, "then", "message"], "Hi {customer.__class__}"), "brace"),
    ("rules.3.then.message", _bad(["rules", 3, "then", "message"], "Hi {password}"), "unknown placeholder {password}"),
    ("rules.0.when.colour", _bad(["rules", 0, "when", "colour"], "red"), "Extra inputs"),
    (
        "rules.4.when.windows.0.start",
        _bad(["rules", 4, "when", "windows"], [{"days": ["mon"], "start": "9am", "end": "10:00"}]),
        "HH:MM",
    ),
    (
        "rules.1.when.count_at_least.period",
        _bad(["rules", 1, "when", "count_at_least"], {"count": 3, "period": "year"}),
        "day",
    ),
    ("rules.5.then.action", _bad(["rules", 5, "then", "action"], "explode"), "route"),
    ("rules.2.id", _bad(["rules", 2, "id"], "General Rule"), "pattern"),
    ("rules.3.id", _bad(["rules", 3, "id"], "general"), "duplicate rule id 'general'"),
    ("tests.0.expect.action", _bad(["tests", 0, "expect", "action"], "maybe"), "route"),
    (
        "tests.1.situation.restrictions.0.params.contact_limit.limit",
        _bad(
            ["tests", 1, "situation", "restrictions"],
            [{"params": {"kind": "contact_limit", "limit": 0, "period": "week"}}],
        ),
        "greater",
    ),
    ("version", _bad(["version"], -1), "greater"),
]


@pytest.mark.parametrize(("path", "data", "words"), BAD, ids=[b[0] for b in BAD])
def test_validation_errors_name_the_exact_path(path: str, data: dict[str, Any], words: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        parse_ruleset(data)
    fields = {e["field"]: e["message"] for e in caught.value.errors}
    assert path in fields, fields
    assert words in fields[path]
    assert isinstance(caught.value, RulesInvalid) and not isinstance(caught.value, Invalid)  # no HTTP here


def test_compile_refuses_duplicate_ids_in_a_model_built_directly() -> None:
    data = _rules(dict(DEFAULT_RULESET["rules"][0]))
    ruleset = RuleSet.model_validate(data)
    with pytest.raises(RuleSetError, match=r"rules\.6\.id"):
        compile_ruleset(ruleset)


def test_default_ruleset_is_valid_and_its_own_tests_pass() -> None:
    compiled = compile_ruleset(parse_ruleset(DEFAULT_RULESET))
    assert compiled.version == 1 and len(compiled.rules) == 6
    results = run_ruleset_tests(compiled, None, TUE_1030)
    assert results and all(r.passed for r in results), [r.problems for r in results]


def test_a_failing_rule_test_reports_what_differed() -> None:
    data = _rules()
    data["tests"] = [
        {
            "name": "email to general?",
            "contact": {"channel": "email"},
            "situation": {"sender": "unmatched"},
            "expect": {"action": "deflect", "target": QUEUE, "flagged": True},
        }
    ]
    compiled = compile_ruleset(parse_ruleset(data))
    [result] = run_ruleset_tests(compiled, None, TUE_1030)
    assert not result.passed
    assert result.problems == (
        "action: expected deflect, got route",
        "target: expected queue general, got queue email",
        "flagged: expected True, got False",
    )


def test_rule_tests_cover_situations() -> None:
    data = _rules()
    data["tests"] = [
        {
            "name": "rep may call",
            "contact": {"channel": "phone"},
            "situation": {"sender": "representative", "restrictions": [{"params": {"kind": "no_personal_contact"}}]},
            "expect": {"action": "route"},
        },
        {
            "name": "closed case email",
            "contact": {"channel": "email"},
            "situation": {
                "case_status": "exhausted",
                "restrictions": [{"params": {"kind": "closed_issue", "case_id": 4}}],
            },
            "expect": {"action": "auto_acknowledge", "target": {"type": "queue", "id": "new-information"}},
        },
        {
            "name": "over the limit",
            "contact": {"channel": "phone"},
            "situation": {
                "count": 9,
                "at": "2026-03-03T10:00:00Z",
                "restrictions": [{"params": {"kind": "contact_limit", "limit": 2, "period": "day"}}],
            },
            "expect": {"action": "deflect", "flagged": True},
        },
        {
            "name": "named contact",
            "contact": {"channel": "email"},
            "situation": {"restrictions": [{"params": {"kind": "named_contact", "staff_id": 3}}]},
            "expect": {"action": "route", "target": {"type": "staff", "id": "3"}},
        },
        {
            "name": "proposed is not enforced",
            "contact": {"channel": "phone"},
            "situation": {"restrictions": [{"params": {"kind": "written_only"}, "status": "proposed"}]},
            "expect": {"action": "route"},
        },
    ]
    results = run_ruleset_tests(compile_ruleset(parse_ruleset(data)), None, TUE_1030)
    assert [r.problems for r in results] == [()] * 5


def test_template_substitutes_once_and_only_allowed_names() -> None:
    assert render("Dear {customer_name}", {"customer_name": "{case_ref}", "case_ref": "X"}) == ("Dear {case_ref}")
    assert render("{next_allowed}", {}) == ""
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("{__class__}")
    with pytest.raises(ValueError, match="braces"):
        check_template("{0.__globals__}")
    assert check_template("Call {next_allowed}") == "Call {next_allowed}"


def test_period_buckets_are_in_local_time() -> None:
    late = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)  # 00:30 BST on Monday 30 March
    assert period_bucket("day", late, LONDON) == "2026-03-30"
    assert period_bucket("week", late, LONDON) == "2026-W14"
    assert period_bucket("month", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), LONDON) == "2026-04"
    with pytest.raises(ValueError):
        period_bucket("year", late, LONDON)


def test_counters_needed() -> None:
    limit = restriction("contact_limit", ContactLimit(limit=5, period="month"), rid=9, channels={"phone"})
    lifted = restriction("contact_limit", rid=10, status="lifted")
    bundles = (bundle(limit, lifted), Bundle(CustomerView(2, "B")))
    compiled = compile_ruleset(
        parse_ruleset(
            _rules(
                {
                    "id": "busy",
                    "description": "Busy",
                    "when": {"count_at_least": {"count": 3, "period": "week"}},
                    "then": {"flag": True},
                }
            )
        )
    )
    specs = counters_needed(compiled, bundles, TUE_1030, LONDON, channel="phone")
    assert [(s.key, s.ttl_seconds) for s in specs] == sorted(
        [
            (contact_limit_key(limit, TUE_1030, LONDON), TTL_SECONDS["month"]),
            (customer_count_key(1, "week", TUE_1030, LONDON), TTL_SECONDS["week"]),
            (customer_count_key(2, "week", TUE_1030, LONDON), TTL_SECONDS["week"]),
        ]
    )
    assert contact_limit_key(limit, TUE_1030, LONDON) == "restriction:9:2026-03"
    email = counters_needed(compiled, bundles, TUE_1030, LONDON, channel="email")
    assert all(not s.key.startswith("restriction:") for s in email)
    assert counters_needed(compiled, Match().bundles, TUE_1030, LONDON) == []


NEW_CONDITIONS = _rules(
    {
        "id": "rents-line",
        "description": "Calls to the rents line go to the rents team",
        "when": {"channels": ["phone"], "to": ["+44 20 7946 0001"]},
        "then": {"target": {"type": "queue", "id": "rents"}},
    },
    {
        "id": "complaints-mailbox",
        "description": "The complaints mailbox goes to complaints",
        "when": {"to": ["Complaints@Example.org"]},
        "then": {"target": {"type": "queue", "id": "complaints"}},
    },
    {
        "id": "damp",
        "description": "Damp and mould reports are urgent repairs",
        "when": {"subject_has": ["damp", "black mould"]},
        "then": {"target": {"type": "queue", "id": "urgent-repairs"}, "priority": 5},
    },
    {
        "id": "vulnerable",
        "description": "Vulnerable customers reach the trained team, with priority",
        "when": {"adjustments": ["vulnerable"]},
        "then": {"target": {"type": "queue", "id": "trained"}, "priority": 9},
    },
    {
        "id": "adjusted",
        "description": "Any recorded adjustment is flagged",
        "when": {"has_adjustments": True},
        "then": {"flag": True},
    },
    {
        "id": "on-behalf",
        "description": "Representatives go to the advocacy team",
        "when": {"on_behalf": True},
        "then": {"target": {"type": "queue", "id": "advocacy"}},
    },
)


def _case(name: str, contact: dict[str, Any], target: str, flagged: bool = False, **situation: Any) -> dict[str, Any]:
    return {
        "name": name,
        "contact": contact,
        "situation": {"sender": "matched", **situation},
        "expect": {"action": "route", "target": {"type": "queue", "id": target}, "flagged": flagged},
    }


@pytest.mark.parametrize(
    "case",
    [
        _case("rents line, same number written differently", {"channel": "phone", "to": "+442079460001"}, "rents"),
        _case("another line", {"channel": "phone", "to": "+442079460002"}, "general"),
        _case("mailbox in any case", {"channel": "email", "to": "complaints@example.ORG"}, "complaints"),
        _case("mailbox with a display name", {"channel": "email", "to": "Us <complaints@example.org>"}, "complaints"),
        _case("one of several", {"channel": "email", "to": "a@example.org; complaints@example.org"}, "complaints"),
        _case("a word, any case", {"channel": "email", "subject": "RE: DAMP in bedroom"}, "urgent-repairs"),
        _case("a phrase", {"channel": "web_form", "subject": "Black  mould again!"}, "urgent-repairs"),
        _case("not part of a word", {"channel": "email", "subject": "Dampers fitted"}, "email"),
        _case("phrase words out of order", {"channel": "email", "subject": "mould, black"}, "email"),
        _case("vulnerable", {"channel": "phone"}, "trained", True, adjustments=["vulnerable"]),
        _case("other adjustment flags only", {"channel": "phone"}, "general", True, adjustments=["needs_phone"]),
        _case("registered representative", {"channel": "phone"}, "advocacy", sender="representative"),
        _case("names the customer", {"channel": "email", "on_behalf_of": "C-1"}, "advocacy", sender="unmatched"),
    ],
    ids=lambda c: c["name"],
)
def test_new_conditions_route_as_written(case: dict[str, Any]) -> None:
    compiled = compile_ruleset(parse_ruleset({**NEW_CONDITIONS, "tests": [case]}))
    [result] = run_ruleset_tests(compiled, None, TUE_1030)
    assert result.passed, (result.problems, result.reasons)
    if result.target and result.target.id != case["expect"]["target"]["id"]:
        raise AssertionError(result)


def test_new_conditions_never_beat_a_restriction() -> None:
    case = _case("vulnerable but written only", {"channel": "phone"}, "trained", True, adjustments=["vulnerable"])
    case["situation"]["restrictions"] = [{"params": {"kind": "written_only"}}]
    case["expect"] = {"action": "deflect"}
    [result] = run_ruleset_tests(compile_ruleset(parse_ruleset({**NEW_CONDITIONS, "tests": [case]})), None, TUE_1030)
    assert result.passed and any(r.id == "vulnerable" and r.source == "rule" for r in result.reasons)


@pytest.mark.parametrize(
    ("when", "path", "words"),
    [
        ({"to": ["!!"]}, "rules.6.when.to", "phone number or a mailbox"),
        ({"to": []}, "rules.6.when.to", "at least 1"),
        ({"subject_has": ["(.*)+"]}, "rules.6.when.subject_has", "1 to 10 words"),
        ({"subject_has": ["a b c d e f g h i j k"]}, "rules.6.when.subject_has", "1 to 10 words"),
        ({"subject_has": ["x" * 101]}, "rules.6.when.subject_has.0", "at most 100"),
        ({"adjustments": ["brave"]}, "rules.6.when.adjustments.0", "vulnerable"),
        ({"on_behalf": "perhaps"}, "rules.6.when.on_behalf", "boolean"),
    ],
)
def test_new_conditions_are_validated_with_paths(when: dict[str, Any], path: str, words: str) -> None:
    data = _rules({"id": "new", "description": "New", "when": when, "then": {"flag": True}})
    with pytest.raises(RuleSetError) as caught:
        parse_ruleset(data)
    fields = {e["field"]: e["message"] for e in caught.value.errors}
    assert path in fields and words in fields[path], fields


def test_diff_names_each_rule_change_field_by_field() -> None:
    from gateway.rules.diff import diff_rulesets

    old = parse_ruleset(DEFAULT_RULESET)
    data = copy.deepcopy(DEFAULT_RULESET)
    data["version"] = 2
    rules = data["rules"]
    rules[1]["then"]["target"]["id"] = "email-team"  # changed
    rules[2], rules[3] = rules[3], rules[2]  # moved
    del rules[4]  # removed
    rules.append({"id": "damp", "description": "Damp", "when": {"subject_has": ["damp"]}, "then": {"flag": True}})
    data["tests"][0]["expect"]["target"]["id"] = "general"
    data["tests"][1]["name"] = "email goes to the email team"
    diff = diff_rulesets(old, parse_ruleset(data))
    changes = {r["id"]: r for r in diff["rules"]}
    assert {k: v["change"] for k, v in changes.items()} == {
        "general": "same",
        "email": "changed",
        "reception": "moved",
        "web-form": "moved",
        "caution": "same",
        "damp": "added",
        "withheld-phone": "removed",
    }
    assert changes["email"]["fields"] == [
        {
            "field": "then.target",
            "before": {"type": "queue", "id": "email"},
            "after": {"type": "queue", "id": "email-team"},
        }
    ]
    assert diff["tests"] == {
        "added": ["email goes to the email team"],
        "removed": ["email goes to the email queue"],
        "changed": [],
    }
