"""The decide service and its parts: claim, lookup, count, rules, log, after-commit effects."""

from __future__ import annotations

from .context import Contexts, RulesInForce, make_context
from .records import Rejected
from .service import DecideService, IndexNotLoaded

__all__ = ["Contexts", "DecideService", "IndexNotLoaded", "Rejected", "RulesInForce", "make_context"]
