"""The only place a rules `Context` is built: from the index, the rule set in force and the settings.

The decide service, the agent's banners and rule-set tests all ask here, so the rules see the same
world whoever asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Protocol

from ..rules.calendar import Calendar
from ..rules.compiled import CompiledRuleSet
from ..rules.context import CaseView, Context, Match, Provider, StaffView
from ..rules.registry import REGISTRY, Registry


class RulesInForce:
    """The published rule set of this process; swapped whole when a new version is published."""

    def __init__(self, compiled: CompiledRuleSet) -> None:
        self.compiled = compiled


class World(Protocol):
    """What a Context needs from the restriction index (the index, or a test's fixed world)."""

    @property
    def staff(self) -> Mapping[int, StaffView]: ...

    @property
    def closures(self) -> frozenset[date]: ...


def make_context(
    match: Match,
    ruleset: CompiledRuleSet,
    *,
    kinds: Registry = REGISTRY,
    staff: Mapping[int, StaffView] | None = None,
    calendar: Calendar | None = None,
    counts: Mapping[str, int] | None = None,
    case: CaseView | None = None,
    appointment: bool = False,
    provider: Provider | None = None,
) -> Context:
    return Context(
        match=match,
        ruleset=ruleset,
        kinds=kinds,
        staff=staff if staff is not None else {},
        calendar=calendar or Calendar(),
        counts=counts or {},
        case=case,
        appointment=appointment,
        provider=provider or Provider(),
    )


class Contexts:
    """Builds Contexts for this process: its index, its rule set in force, its provider details."""

    def __init__(
        self, world: World, rules: RulesInForce, calendar: Callable[[frozenset[date]], Calendar], provider: Provider
    ) -> None:
        """`calendar`: the provider's calendar given its closure days (Settings.calendar)."""
        self.world, self.rules, self.provider = world, rules, provider
        self._calendar_with = calendar
        self._calendar: tuple[frozenset[date], Calendar] | None = None

    def calendar(self) -> Calendar:
        """Rebuilt only when the index loads a new set of closures."""
        closures = self.world.closures
        if self._calendar is None or self._calendar[0] is not closures:
            self._calendar = (closures, self._calendar_with(closures))
        return self._calendar[1]

    def build(
        self,
        match: Match,
        *,
        counts: Mapping[str, int] | None = None,
        case: CaseView | None = None,
        appointment: bool = False,
    ) -> Context:
        return make_context(
            match,
            self.rules.compiled,
            staff=self.world.staff,
            calendar=self.calendar(),
            counts=counts,
            case=case,
            appointment=appointment,
            provider=self.provider,
        )
