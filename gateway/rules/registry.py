"""The one registry of restriction kinds, and what is built from it: the params union for parsing,
the kind names, each kind's default channels. A duplicate or incomplete kind stops start-up."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import Field

from .kind import RestrictionKind
from .kinds import ALL
from .params import KindParams


class DuplicateKindError(ValueError):
    """Two restriction kinds registered under one name."""


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, RestrictionKind[Any]] = {}

    def register(self, kind: RestrictionKind[Any]) -> RestrictionKind[Any]:
        if kind.name in self._kinds:
            raise DuplicateKindError(f"restriction kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def __getitem__(self, name: str) -> RestrictionKind[Any]:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[RestrictionKind[Any]]:
        return iter(self._kinds.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)


def build_registry(kinds: Iterable[RestrictionKind[Any]], expected: Iterable[str] = ()) -> Registry:
    """Register every kind (each checked whole when it was made); `expected` names kinds that
    must be among them, e.g. those the stored restrictions use."""
    registry = Registry()
    for kind in kinds:
        registry.register(kind)
    missing = set(expected) - set(registry.names())
    if missing:
        raise ValueError(f"restriction kinds without a unit: {sorted(missing)}")
    return registry


REGISTRY = build_registry(ALL)
KINDS: tuple[str, ...] = REGISTRY.names()
DEFAULT_CHANNELS: dict[str, frozenset[str]] = {k.name: k.default_channels for k in REGISTRY}

if TYPE_CHECKING:
    # Statically a kind is a name and params are the base model: code narrows with isinstance.
    Kind: TypeAlias = str
    Params: TypeAlias = KindParams
else:
    Kind = Literal[KINDS]
    Params = Annotated[Union[tuple(k.params_model for k in REGISTRY)], Field(discriminator="kind")]  # noqa: UP007
