"""A restriction kind: one small named unit with a one-line description and one pure check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .context import Context, RestrictionView
from .outcome import Outcome
from .vocabulary import Contact

Check = Callable[[Contact, RestrictionView, Context, datetime], Outcome]


@dataclass(frozen=True, slots=True)
class RestrictionKind:
    name: str
    description: str
    check: Check
