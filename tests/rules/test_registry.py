"""The restriction-kind registry: explicit, complete, each kind a whole unit; a duplicate stops start-up."""

from __future__ import annotations

import dataclasses
import pkgutil
from datetime import date

import pytest

from gateway.rules import kinds as kinds_package
from gateway.rules.context import CaseView, StaffView
from gateway.rules.kind import LetterWords, Proposal, Records
from gateway.rules.kinds import ALL
from gateway.rules.kinds.caution import Caution
from gateway.rules.kinds.written_only import WrittenOnly
from gateway.rules.params import CHANNELS, PERSONAL
from gateway.rules.registry import DEFAULT_CHANNELS, KINDS, REGISTRY, DuplicateKindError, Registry, build_registry

from .factories import PARAMS


def test_every_kind_module_is_registered_once_with_a_description() -> None:
    modules = {m.name for m in pkgutil.iter_modules(kinds_package.__path__)}
    assert set(REGISTRY.names()) == modules == set(KINDS) == set(PARAMS)
    assert all(k.description and k.description.endswith(".") for k in REGISTRY)
    assert "caution" in REGISTRY and REGISTRY["caution"].name == "caution"


def test_a_duplicate_name_is_refused() -> None:
    registry = Registry()
    registry.register(ALL[0])
    clone = dataclasses.replace(ALL[0], description="Another unit with the same name.")
    with pytest.raises(DuplicateKindError, match="set_times"):
        registry.register(clone)
    with pytest.raises(DuplicateKindError):
        build_registry((*ALL, clone))


def test_an_expected_kind_without_a_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="caution"):
        build_registry((k for k in ALL if k.name != "caution"), expected=KINDS)


def test_a_kind_must_be_whole_and_consistent() -> None:
    caution = REGISTRY["caution"]
    with pytest.raises(ValueError, match="params model says kind 'caution'"):
        dataclasses.replace(caution, name="warning")
    with pytest.raises(ValueError, match="default channels"):
        dataclasses.replace(caution, acts_on=frozenset({"visit"}), default_channels=frozenset({"phone"}))
    with pytest.raises(ValueError, match="default channels"):
        dataclasses.replace(caution, default_channels=frozenset())


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_carries_its_parts(kind: str) -> None:
    unit = REGISTRY[kind]
    params = PARAMS[kind]
    assert isinstance(params, unit.params_model)
    assert unit.default_channels == DEFAULT_CHANNELS[kind] and unit.default_channels <= unit.acts_on
    assert unit.parse(params.model_dump(mode="json")) == params
    assert unit.validate(params, Proposal(1, unit.default_channels, _records())) == []
    restricted, instead = unit.letter_wording(
        params.model_dump(mode="json"), LetterWords("telephone", "You can still write to us at any time.", _records())
    )
    assert restricted.endswith(".") and instead.endswith(".")


def test_only_the_kinds_that_shut_a_channel_close_it() -> None:
    shut = {k.name: k.closes(CHANNELS) for k in REGISTRY if k.closes(CHANNELS)}
    assert shut == {"written_only": PERSONAL, "no_personal_contact": PERSONAL}


def test_channels_a_kind_cannot_restrict_are_named() -> None:
    problems = REGISTRY["written_only"].validate(WrittenOnly(), Proposal(1, frozenset(CHANNELS)))
    assert [(p.field, p.message) for p in problems] == [
        ("channels", "written_only cannot restrict email, letter, web_form: it acts only on phone, visit")
    ]
    problems = REGISTRY["appointment_only"].validate({}, Proposal(1, frozenset({"phone", "visit"})))
    assert [p.message for p in problems] == ["appointment_only cannot restrict phone: it acts only on visit"]
    assert REGISTRY["caution"].validate(Caution(note="x"), Proposal(1, frozenset(CHANNELS))) == []


def test_records_the_params_name_are_checked() -> None:
    named = REGISTRY["named_contact"]
    problems = named.validate({"staff_id": 7, "deputy_staff_id": 8}, Proposal(1, frozenset({"phone"})))
    assert [p.field for p in problems] == ["params.staff_id", "params.deputy_staff_id"]
    closed = REGISTRY["closed_issue"]
    case = CaseView(42, "CMP-1", 2, "open")
    found = Records(cases={42: case})
    problems = closed.validate({"case_id": 42}, Proposal(1, frozenset({"email"}), found))
    assert [p.message for p in problems] == ["case CMP-1 belongs to another customer"]
    found = Records(cases={42: dataclasses.replace(case, customer_id=1)})
    problems = closed.validate({"case_id": 42}, Proposal(1, frozenset({"email"}), found))
    assert [p.message for p in problems] == [
        "case CMP-1 is open; closed_issue needs an exhausted case (every internal and external review of it done)"
    ]


def test_set_times_letter_mentions_bank_holidays_only_when_closed_on_them() -> None:
    unit = REGISTRY["set_times"]
    windows = [{"days": ["tue"], "start": "10:00", "end": "12:00"}]
    words = LetterWords("telephone", "Write to us.")
    closed, _ = unit.letter_wording({"windows": windows}, words)
    open_, _ = unit.letter_wording({"windows": windows, "closed_on_bank_holidays": False}, words)
    assert "(not on bank holidays)" in closed and "bank holidays" not in open_


def _records() -> Records:
    staff = {i: StaffView(i, f"Staff {i}", "caution_lead", line="01632 960101") for i in (7, 8)}
    return Records(staff=staff, cases={42: CaseView(42, "CMP-1234", 1, "exhausted", date(2025, 11, 3), "Repairs")})
