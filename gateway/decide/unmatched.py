"""The decision for a sender who matches no customer, computed once a minute per channel.

With no customer there is no restriction, no counter and (without a case) nothing of the sender in
the rules' view: the rule set's verdict depends only on the channel, whether the number was
withheld, the number or mailbox contacted (when some rule routes on it), the rule set, the calendar
and the local minute (windows are whole minutes, and so are the times a message quotes). So the
common case costs a dictionary look-up, not the composition; and its Decision is stamped from a
template built with the verdict (the contact's id and time set), not built and dumped afresh. A
sender the rules know something of (recorded adjustments, acting for someone) or a rule set that
reads the subject is decided in full.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..rules.calendar import Calendar
from ..rules.compiled import CompiledRuleSet
from ..rules.context import Match
from ..rules.engine import Verdict
from ..rules.vocabulary import Contact, Decision
from ..rules.words import address_keys

_Key = tuple[str, bool, frozenset[str]]
_MOST = 1024  # kept verdicts per minute: a flood of distinct numbers called is decided, not hoarded


class UnmatchedVerdicts:
    def __init__(self) -> None:
        self._minute: tuple[int, CompiledRuleSet, Calendar] | None = None
        self._templates: dict[_Key, Decision] = {}  # each verdict's decision, to be stamped per contact

    @staticmethod
    def key(contact: Contact, match: Match, has_case: bool, ruleset: CompiledRuleSet) -> _Key | None:
        """What an unmatched sender's verdict depends on besides the minute; None when it depends on more."""
        known = match.bundles or match.representative_of or match.adjustments or match.on_behalf or match.shared_with
        if known or has_case or contact.on_behalf_of or "subject_has" in ruleset.conditions:
            return None
        to = address_keys(contact.to) if "to" in ruleset.conditions else frozenset()
        return (contact.channel, match.withheld, to)

    def decision(
        self,
        ruleset: CompiledRuleSet,
        calendar: Calendar,
        key: _Key,
        now: datetime,
        compute: Callable[[], Verdict],
        contact_id: str,
    ) -> Decision:
        """The decision for an unmatched contact (its `key`) at `now`: the verdict kept for the minute
        (`compute` on the minute's first), given this contact's id and time."""
        minute = int(now.timestamp() // 60)
        current = self._minute
        if current is None or current[0] != minute or current[1] is not ruleset or current[2] is not calendar:
            self._minute, self._templates = (minute, ruleset, calendar), {}
        template = self._templates.get(key)
        if template is None:
            template = compute().to_decision("")
            if len(self._templates) < _MOST:
                self._templates[key] = template
        return template.stamped(contact_id, now)
