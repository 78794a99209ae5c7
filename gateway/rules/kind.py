"""A restriction kind: one unit holding everything about it.

Its params model, the channels it can act on and those it covers by default, whether it shuts the
channels it covers, the counters it reads, its letter wording, its save-time validation and its
pure check. Everything else reaches a kind's parts through the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from .context import CaseView, Context, RestrictionView, StaffView
from .counterkeys import CounterSpec
from .outcome import Outcome
from .params import ALL_CHANNELS, KindParams
from .vocabulary import Contact

P = TypeVar("P", bound=KindParams)
Check = Callable[[Contact, RestrictionView, Context, datetime], Outcome]
Counters = Callable[[RestrictionView, datetime, ZoneInfo], Sequence[CounterSpec]]
# (what is restricted, how to contact us instead): two sentences of the customer's letter.
Sentences = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a restriction cannot be saved: the request field and what is wrong with it."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class References:
    """The records a kind's params name, as (params field, id), for the store to load."""

    staff: tuple[tuple[str, int], ...] = ()
    cases: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Records:
    """The records the store found for `References` (active staff only); absent ids are missing."""

    staff: Mapping[int, StaffView] = field(default_factory=dict)
    cases: Mapping[int, CaseView] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A restriction about to be saved (or varied), with the records its params name."""

    customer_id: int
    channels: frozenset[str]
    records: Records = field(default_factory=Records)


@dataclass(frozen=True, slots=True)
class LetterWords:
    """What a kind's letter sentences may draw on besides its params."""

    channels: str  # the channels it covers, in words: "telephone and visits to our offices"
    write_instead: str  # a sentence: how the customer can still write to the provider
    records: Records = field(default_factory=Records)
    emergency: str = ""  # a sentence: how to report an emergency (empty: no line is configured)
    covered: frozenset[str] = frozenset()  # the channels it covers, as names ("phone", "email", ...)


def _names_nothing(params: KindParams) -> References:
    return References()


def _no_objection(params: KindParams, proposal: Proposal) -> Sequence[Problem]:
    return ()


def _counts_nothing(r: RestrictionView, now: datetime, tz: ZoneInfo) -> Sequence[CounterSpec]:
    return ()


@dataclass(frozen=True, slots=True)
class RestrictionKind(Generic[P]):
    """`acts_on`: the channels this kind can restrict; a restriction over any other is refused.
    `shuts`: the covered channels are closed outright (no time, person or appointment opens
    them), which the always-a-way-in check counts. `asks_to_write`: its deflections tell the
    customer to write in instead, so they need the provider's ways to write (address, email, form)."""

    name: str
    description: str
    params_model: type[P]
    check: Check
    letter: Callable[[P, LetterWords], Sentences]
    acts_on: frozenset[str] = ALL_CHANNELS
    default_channels: frozenset[str] = ALL_CHANNELS
    shuts: bool = False
    asks_to_write: bool = False
    names: Callable[[P], References] = _names_nothing
    on_save: Callable[[P, Proposal], Sequence[Problem]] = _no_objection
    counters: Counters = _counts_nothing

    def __post_init__(self) -> None:
        declared = self.params_model.model_fields["kind"].default
        if declared != self.name:
            raise ValueError(f"kind {self.name!r}: its params model says kind {declared!r}")
        if not self.default_channels or not self.default_channels <= self.acts_on <= ALL_CHANNELS:
            raise ValueError(f"kind {self.name!r}: default channels must be some of those it acts on")

    def parse(self, params: KindParams | Mapping[str, Any]) -> P:
        """The params as this kind's model (a stored JSON object, or an already parsed model)."""
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, KindParams):
            raise TypeError(f"{self.name} params expected, got {type(params).__name__}")
        return self.params_model.model_validate({**params, "kind": self.name})

    def closes(self, channels: Iterable[str]) -> frozenset[str]:
        """Channels a restriction of this kind leaves with no way in for the customer themself."""
        return frozenset(channels) & self.acts_on if self.shuts else frozenset()

    def references(self, params: KindParams | Mapping[str, Any]) -> References:
        return self.names(self.parse(params))

    def validate(self, params: KindParams | Mapping[str, Any], proposal: Proposal) -> list[Problem]:
        """Save-time problems: channels this kind cannot restrict, records its params name that
        do not exist, then the kind's own checks."""
        beyond = sorted(proposal.channels - self.acts_on)
        if beyond:
            can = ", ".join(sorted(self.acts_on))
            return [Problem("channels", f"{self.name} cannot restrict {', '.join(beyond)}: it acts only on {can}")]
        parsed = self.parse(params)
        refs, found = self.names(parsed), proposal.records
        problems = [
            *(
                Problem(f, f"staff member {i} does not exist or is inactive")
                for f, i in refs.staff
                if i not in found.staff
            ),
            *(Problem(f, f"case {i} does not exist") for f, i in refs.cases if i not in found.cases),
        ]
        return problems or list(self.on_save(parsed, proposal))

    def letter_wording(self, params: KindParams | Mapping[str, Any], words: LetterWords) -> Sentences:
        return self.letter(self.parse(params), words)
