"""Request and response shapes of the restriction lifecycle API (record, decide, appeal, review)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..rules.params import Channel, Id
from ..rules.registry import Kind, Params
from .base import Day, In, given

ReasonCategory = Literal["aggressive_or_abusive", "unreasonable_demands", "unreasonable_persistence"]
Status = Literal["proposed", "active", "under_appeal", "lifted", "lapsed"]
AppealOutcome = Literal["upheld", "varied", "lifted"]
Text = Field(min_length=1, max_length=10_000)


def _restriction_schema(schema: dict[str, Any]) -> None:
    """What the validators below enforce, said in the schema too: `kind` names the params' kind
    (one variant per kind), and the record carries warned_on or immediate_risk."""
    mapping = schema["properties"]["params"]["discriminator"]["mapping"]
    kinds = [{"properties": {"kind": {"const": k}, "params": {"$ref": ref}}} for k, ref in mapping.items()]
    schema["allOf"] = [{"oneOf": kinds}, {"anyOf": [given("warned_on"), given("immediate_risk")]}]


class Incident(In):
    """An incident as stored and read back (a day recorded before days were bounded still reads)."""

    on: date
    description: str = Field(min_length=1, max_length=4000)
    channel: Channel | None = None


class IncidentIn(Incident):
    on: Day


class EqualityNote(In):
    staff_id: Id
    note: str = Field(min_length=1, max_length=4000)
    on: date | None = None


class EqualityNoteIn(EqualityNote):
    on: Day | None = None


class EqualityNoteAsked(BaseModel):
    """An equality note written by the recording caution lead for the manager `staff_id` to sign."""

    staff_id: int
    note: str
    asked_by: int | None = None  # None: asked before sign-offs were recorded (migration 019)
    asked_on: date


class ReviewPeriodAsked(BaseModel):
    """A review period longer than the default, waiting for `approver` to agree it; meanwhile the
    restriction's review falls due on the default date."""

    approver: int
    review_due: date
    asked_by: int | None = None  # None: asked before sign-offs were recorded (migration 019)
    asked_on: date
    replaces: date | None = None  # the review date in force when it was asked; approval needs it still


class SignOffIn(In):
    """POST /v1/restrictions/{id}/equality-note/sign and /review-period/approve: by the person asked,
    signed in. `staff_id`, if sent, must name them."""

    staff_id: Id | None = None
    on: Day | None = None


class DeclineIn(SignOffIn):
    """POST /v1/restrictions/{id}/equality-note/decline and /review-period/decline: the person asked
    says no, and why (kept in the restriction's history)."""

    reason: str = Text


def params_with_kind(data: Any) -> Any:
    """`kind` may be given once at the top; copy it into params (which is discriminated on it)."""
    if isinstance(data, dict) and isinstance(data.get("kind"), str):
        params = data.get("params")
        if params is None:
            params = {}
        if isinstance(params, dict):
            if "kind" in params and params["kind"] != data["kind"]:
                raise ValueError(f"params.kind {params['kind']!r} differs from kind {data['kind']!r}")
            data = {**data, "params": {**params, "kind": data["kind"]}}
    return data


class RestrictionIn(In):
    model_config = ConfigDict(json_schema_extra=_restriction_schema)

    customer_id: Id
    kind: Kind
    params: Params
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=5)
    reason_category: ReasonCategory
    reasons: str = Text
    incidents: list[IncidentIn] = Field(min_length=1, max_length=200)
    warned_on: Day | None = None
    immediate_risk: str | None = Field(default=None, min_length=1, max_length=4000)
    deciders: list[Id] = Field(default_factory=list, max_length=20, json_schema_extra={"uniqueItems": True})
    decided_on: Day | None = None
    valid_from: Day
    valid_to: Day | None = None
    review_due: Day | None = None
    review_approver: Id | None = None
    adjustments: str = Field(default="", max_length=4000)
    equality_note: EqualityNoteIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _kind_into_params(cls, data: Any) -> Any:
        return params_with_kind(data)

    @model_validator(mode="after")
    def _cross(self) -> RestrictionIn:
        if self.warned_on is None and self.immediate_risk is None:
            raise ValueError(
                "give warned_on (the date the customer was warned) or immediate_risk (why there was no warning)"
            )
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to must not be before valid_from")
        if len(set(self.deciders)) != len(self.deciders):
            raise ValueError("deciders lists someone twice")
        return self


# `staff_id` in a step's body, and `deciders` on saving, once named who acted. Whoever is signed in
# acts now; the fields stay for callers that send them and must then name that same person.


class DecisionIn(In):
    staff_id: Id | None = None
    decided_on: Day | None = None


class LetterSentIn(In):
    sent_on: Day | None = None
    method: Literal["post", "email", "hand", "other"] = "post"
    note: str | None = Field(default=None, max_length=1000)


class LetterSendIn(In):
    """POST /v1/restrictions/{id}/letter/send: email the PDF (to the customer's email address on
    record, or to the named representative's), or record that the signed-in person posted it."""

    by: Literal["email", "post"]
    representative_id: Id | None = None  # by email: to this representative instead of the customer
    sent_on: Day | None = None  # by post: the day it went in the post (default today)
    large_print: bool | None = None  # default: as the customer's adjustments ask
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _by(self) -> LetterSendIn:
        if self.by == "post" and self.representative_id is not None:
            raise ValueError("representative_id is for sending by email; a posted letter goes to the customer")
        if self.by == "email" and self.sent_on is not None:
            raise ValueError("sent_on is for a posted letter; an email is sent today")
        return self


class AppealIn(In):
    lodged_on: Day
    grounds: str = Text


class Variation(In):
    """What an appeal decided 'varied' changes; unchanged fields are left out."""

    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=5)
    params: dict[str, Any] | None = None
    valid_to: Day | None = None
    review_due: Day | None = None


class AppealDecisionIn(In):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["variation"],
                    "properties": {"outcome": {"const": "varied"}, **given("variation")["properties"]},
                },
                {"properties": {"outcome": {"enum": ["upheld", "lifted"]}, "variation": {"type": "null"}}},
            ]
        }
    )

    staff_id: Id | None = None
    outcome: AppealOutcome
    notes: str = Text
    decided_on: Day | None = None
    variation: Variation | None = None

    @model_validator(mode="after")
    def _variation(self) -> AppealDecisionIn:
        if self.outcome == "varied" and self.variation is None:
            raise ValueError("a 'varied' outcome needs variation (channels, params, valid_to or review_due)")
        if self.outcome != "varied" and self.variation is not None:
            raise ValueError("variation is only for a 'varied' outcome")
        return self


class ReviewIn(In):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"properties": {"outcome": {"const": "lift"}}}, given("reasons")]}
    )

    outcome: Literal["renew", "lift"]
    staff_id: Id | None = None
    reasons: str | None = Field(default=None, min_length=1, max_length=10_000)
    incidents: list[IncidentIn] = Field(default_factory=list, max_length=200)
    review_due: Day | None = None
    review_approver: Id | None = None
    valid_to: Day | None = None
    reviewed_on: Day | None = None

    @model_validator(mode="after")
    def _renewal(self) -> ReviewIn:
        if self.outcome == "renew" and not self.reasons:
            raise ValueError("a renewal needs reasons (why the restriction is still needed)")
        return self


class LiftIn(In):
    reason: str = Text
    staff_id: Id | None = None
    lifted_on: Day | None = None


class Appeal(BaseModel):
    id: int
    lodged_on: date
    grounds: str
    due_on: date
    decided_by: int | None = None
    decided_on: date | None = None
    # 'ended': the restriction was lifted or lapsed while the appeal was open (decided by no one).
    outcome: AppealOutcome | Literal["ended"] | None = None
    notes: str | None = None


class Restriction(BaseModel):
    """The full record: for caution leads and managers only (it carries reasons and incidents)."""

    id: int
    customer_id: int
    kind: Kind
    params: dict[str, Any]
    channels: list[str]
    reason_category: ReasonCategory
    reasons: str
    incidents: list[Incident]
    warned_on: date | None
    immediate_risk: str | None
    deciders: list[int]
    decided_on: date | None
    valid_from: date
    valid_to: date | None
    review_due: date
    review_approver: int | None
    adjustments: str
    equality_note: EqualityNote | None
    letter_sent_on: date | None
    status: Status
    created_by: str
    created_at: datetime
    updated_at: datetime
    appeals: list[Appeal] = Field(default_factory=list)
    missing_deciders: dict[str, int] = Field(default_factory=dict)
    # Sign-offs asked of someone else and not given yet: the note's manager, a longer period's approver.
    equality_note_asked: EqualityNoteAsked | None = None
    review_period_asked: ReviewPeriodAsked | None = None


class Event(BaseModel):
    id: int
    restriction_id: int | None
    customer_id: int | None
    at: datetime
    actor: str
    staff_id: int | None = None
    kind: str
    why: str | None
    before: Any = None
    after: Any = None
