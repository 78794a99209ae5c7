"""Manager rule sets: an ordered list of rules validated by pydantic, compiled at load time.

Rules only *propose* a route; the engine then applies the restrictions, which always win.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .outcome import Dest
from .params import Channel, Window
from .registry import Kind, Params
from .template import check_template
from .vocabulary import ADJUSTMENT_FLAGS, GENERAL_QUEUE, Action, CaseStatus, Contact, RestrictionStatus, RulesInvalid
from .words import address_key, phrase_words

SenderLabel = Literal["matched", "unmatched", "representative", "ambiguous", "withheld"]
RuleAction = Literal["route", "deflect", "auto_acknowledge"]
_QUEUE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_STAFF_ID = re.compile(r"^[1-9][0-9]{0,17}$")
GENERAL = Dest("queue", GENERAL_QUEUE)  # the route when no rule matches
if TYPE_CHECKING:
    AdjustmentFlag: TypeAlias = str
else:
    AdjustmentFlag = Literal[ADJUSTMENT_FLAGS]
Address = Annotated[str, Field(min_length=1, max_length=320)]
Phrase = Annotated[str, Field(min_length=1, max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    type: Literal["queue", "staff", "voicemail"]
    id: str

    @model_validator(mode="after")
    def _id_fits_type(self) -> TargetSpec:
        pattern, what = (
            (_QUEUE_ID, "a queue name: lower-case letters, digits, '-', '_', '.'")
            if self.type == "queue"
            else (_STAFF_ID, "a staff id (digits)")
        )
        if not pattern.match(self.id):
            raise ValueError(f"id must be {what}")
        return self

    def as_dest(self) -> Dest:
        return Dest(self.type, self.id)


class CountAtLeast(_Strict):
    count: int = Field(ge=1, le=100_000)
    period: Literal["day", "week", "month"]


class When(_Strict):
    """All given conditions must hold. `kinds`: any listed kind among the enforced restrictions.
    `sender`: any label applies; a representative or a shared identifier is also 'matched',
    a withheld number is also 'unmatched'. `to`: the number or mailbox contacted is one of these.
    `subject_has`: the subject contains any of these words or phrases (whole words, any case).
    `has_adjustments` / `adjustments`: the customer (or the one represented) has recorded flags /
    any of these flags (e.g. `vulnerable`). `on_behalf`: someone contacts on a customer's behalf."""

    channels: list[Channel] | None = Field(default=None, min_length=1)
    kinds: list[Kind] | None = Field(default=None, min_length=1)
    sender: list[SenderLabel] | None = Field(default=None, min_length=1)
    windows: list[Window] | None = Field(default=None, min_length=1, max_length=21)
    outside_windows: list[Window] | None = Field(default=None, min_length=1, max_length=21)
    bank_holiday: bool | None = None
    case_status: list[Literal["open", "closed", "exhausted", "none"]] | None = Field(default=None, min_length=1)
    count_at_least: CountAtLeast | None = None
    to: list[Address] | None = Field(default=None, min_length=1, max_length=50)
    subject_has: list[Phrase] | None = Field(default=None, min_length=1, max_length=50)
    has_adjustments: bool | None = None
    adjustments: list[AdjustmentFlag] | None = Field(default=None, min_length=1)
    on_behalf: bool | None = None

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str] | None) -> list[str] | None:
        """The number or mailbox contacted, compared as numbers (digits and '+') or lower-case text."""
        if v is not None and any(not address_key(a) for a in v):
            raise ValueError("each entry must be a phone number or a mailbox address")
        return v

    @field_validator("subject_has")
    @classmethod
    def _phrases(cls, v: list[str] | None) -> list[str] | None:
        """Words or phrases (matched whole, case-insensitive): at least one word, at most 10 each."""
        for phrase in v or ():
            words = phrase_words(phrase)
            if not words or len(words) > 10:
                raise ValueError(f"{phrase!r} must be 1 to 10 words (letters or digits)")
        return v


class Then(_Strict):
    """What a matching rule proposes; unset fields keep what an earlier rule proposed."""

    action: RuleAction | None = None
    target: TargetSpec | None = None
    priority: int | None = Field(default=None, ge=0, le=100)
    banner: str | None = Field(default=None, min_length=1, max_length=300)
    message: str | None = Field(default=None, min_length=1, max_length=1000)
    flag: bool = False
    stop: bool = False

    @field_validator("target")
    @classmethod
    def _no_target_when_deflected(cls, v: TargetSpec | None, info: ValidationInfo) -> TargetSpec | None:
        if v is not None and info.data.get("action") == "deflect":
            raise ValueError("a deflected contact has no target")
        return v

    @field_validator("message")
    @classmethod
    def _safe_template(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v)


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = Field(min_length=1, max_length=300)
    when: When = Field(default_factory=When)
    then: Then


class SituationRestriction(_Strict):
    params: Params
    channels: list[Channel] | None = Field(default=None, min_length=1)  # None: kind default
    status: RestrictionStatus = "active"


class Situation(_Strict):
    """The world a rule-set test case runs in (who sent it, their restrictions, when)."""

    at: AwareDatetime | None = None  # run only between 1900 and 2199 (decide/ruletests.py)
    sender: SenderLabel = "matched"
    restrictions: list[SituationRestriction] = Field(default_factory=list, max_length=20)
    case_status: CaseStatus | None = None
    about_restricted_case: bool = True
    count: int = Field(default=1, ge=0, le=100_000)
    appointment: bool = False
    adjustments: list[AdjustmentFlag] = Field(default_factory=list, max_length=len(ADJUSTMENT_FLAGS))


class Expect(_Strict):
    action: Action
    target: TargetSpec | None = None
    flagged: bool | None = None


class RuleTestCase(_Strict):
    name: str = Field(min_length=1, max_length=200)
    contact: Contact
    situation: Situation = Field(default_factory=Situation)
    expect: Expect


class RuleSet(_Strict):
    version: int = Field(ge=0)
    rules: list[Rule] = Field(max_length=500)
    tests: list[RuleTestCase] = Field(default_factory=list, max_length=500)


class RuleSetError(RulesInvalid):
    """A rule set that cannot be loaded; `errors` lists {field, message} with precise paths."""

    code = "invalid_ruleset"


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def parse_ruleset(data: Mapping[str, Any]) -> RuleSet:
    """Validate JSON-able data into a RuleSet; errors carry paths like `rules.2.then.target`."""
    try:
        ruleset = RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(
            [
                {"field": _path(e["loc"]), "message": e["msg"].removeprefix("Value error, ")}  # pydantic's word
                for e in exc.errors(include_url=False)
            ]
        ) from None
    check_unique(ruleset)
    return ruleset


def check_unique(ruleset: RuleSet) -> None:
    errors, seen = [], set()
    for i, rule in enumerate(ruleset.rules):
        if rule.id in seen:
            errors.append({"field": f"rules.{i}.id", "message": f"duplicate rule id {rule.id!r}"})
        seen.add(rule.id)
    if errors:
        raise RuleSetError(errors)
