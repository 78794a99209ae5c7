"""Request shapes for authoring rule sets: a draft, an edit, a publish or rollback with its reason."""

from __future__ import annotations

from pydantic import Field

from ..inputs import INT_MAX
from ..rules.ruleset import Rule, RuleTestCase
from .base import In

NOTE_MAX = 300


class DraftIn(In):
    """POST /v1/rulesets: a new draft copied from `from_version` (default: the published one)."""

    from_version: int | None = Field(default=None, ge=1, le=INT_MAX)
    note: str = Field(default="", max_length=NOTE_MAX)


class EditIn(In):
    """PUT /v1/rulesets/{version} (JSON, or the same in YAML): the draft's rules and test cases."""

    rules: list[Rule] = Field(max_length=500)
    tests: list[RuleTestCase] = Field(default_factory=list, max_length=500)
    note: str | None = Field(default=None, max_length=NOTE_MAX)


class ReasonIn(In):
    """POST /v1/rulesets/{version}/publish: why, recorded with who and when."""

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")


class RollbackIn(ReasonIn):
    """POST /v1/rulesets/rollback: back to an earlier published version, and why."""

    version: int = Field(ge=1, le=INT_MAX)
