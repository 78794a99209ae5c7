"""The restriction-kind registry: explicit, complete, and a duplicate name stops start-up."""

from __future__ import annotations

import pytest

from gateway.rules.kind import RestrictionKind
from gateway.rules.kinds import ALL
from gateway.rules.params import KINDS
from gateway.rules.registry import REGISTRY, DuplicateKindError, Registry, build_registry


def test_every_kind_is_registered_once_with_a_description() -> None:
    assert set(REGISTRY.names()) == set(KINDS)
    assert all(k.description and k.description.endswith(".") for k in REGISTRY)
    assert "caution" in REGISTRY and REGISTRY["caution"].name == "caution"


def test_a_duplicate_name_is_refused() -> None:
    registry = Registry()
    registry.register(ALL[0])
    clone = RestrictionKind(ALL[0].name, "Another unit with the same name.", ALL[1].check)
    with pytest.raises(DuplicateKindError, match="set_times"):
        registry.register(clone)
    with pytest.raises(DuplicateKindError):
        build_registry((*ALL, clone))


def test_a_missing_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="caution"):
        build_registry(k for k in ALL if k.name != "caution")
