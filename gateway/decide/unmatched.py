"""The decision for a sender who matches no customer, computed once a minute per channel.

With no customer there is no restriction, no counter and (without a case) nothing of the sender in
the rules' view: the rule set's verdict depends only on the channel, whether the number was
withheld, the rule set, the calendar and the local minute (windows are whole minutes, and so are
the times a message quotes). So the common case costs a dictionary look-up, not the composition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..rules.calendar import Calendar
from ..rules.compiled import CompiledRuleSet
from ..rules.context import Match
from ..rules.engine import Verdict

_Key = tuple[str, bool]


class UnmatchedVerdicts:
    def __init__(self) -> None:
        self._minute: tuple[int, CompiledRuleSet, Calendar] | None = None
        self._verdicts: dict[_Key, Verdict] = {}

    @staticmethod
    def applies(match: Match, has_case: bool) -> bool:
        return not match.bundles and not match.representative_of and not has_case

    def verdict(
        self,
        ruleset: CompiledRuleSet,
        calendar: Calendar,
        channel: str,
        withheld: bool,
        now: datetime,
        compute: Callable[[], Verdict],
    ) -> Verdict:
        """The verdict for an unmatched sender (see `applies`) at `now`; `compute` on the minute's first."""
        minute = int(now.timestamp() // 60)
        current = self._minute
        if current is None or current[0] != minute or current[1] is not ruleset or current[2] is not calendar:
            self._minute, self._verdicts = (minute, ruleset, calendar), {}
        key = (channel, withheld)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = compute()
        return verdict
