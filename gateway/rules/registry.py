"""The one registry of restriction kinds; a duplicate or missing kind stops start-up."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .kind import RestrictionKind
from .kinds import ALL
from .params import KINDS


class DuplicateKindError(ValueError):
    """Two restriction kinds registered under one name."""


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, RestrictionKind] = {}

    def register(self, kind: RestrictionKind) -> RestrictionKind:
        if kind.name in self._kinds:
            raise DuplicateKindError(f"restriction kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def __getitem__(self, name: str) -> RestrictionKind:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[RestrictionKind]:
        return iter(self._kinds.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)


def build_registry(kinds: Iterable[RestrictionKind], expected: Iterable[str] = KINDS) -> Registry:
    """Register every kind; each kind the params models define must have exactly one unit."""
    registry = Registry()
    for kind in kinds:
        registry.register(kind)
    missing = set(expected) - set(registry.names())
    if missing:
        raise ValueError(f"restriction kinds without a rule: {sorted(missing)}")
    return registry


REGISTRY = build_registry(ALL)
