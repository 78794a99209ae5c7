"""The decision vocabulary: the contact the rules see, and the Decision they produce.

The bottom of the package: the edge (channels, HTTP, the decide service) speaks these words, the
rules produce them, and nothing here imports anything above `gateway.rules` or reads a clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import to_jsonable_python

from .params import Channel

Action = Literal["route", "deflect", "auto_acknowledge", "hold"]
TargetType = Literal["queue", "staff", "voicemail"]
Severity = Literal["info", "warning", "danger"]
GENERAL_QUEUE = "general"
CaseStatus = Literal["open", "closed", "exhausted"]
RestrictionStatus = Literal["proposed", "active", "under_appeal", "lifted", "lapsed"]
# Flags a caution lead records on a customer: reasonable adjustments (so that a restriction cannot
# silently remove a channel someone needs) and `vulnerable`, which manager rules may route on.
ADJUSTMENT_FLAGS = (
    "needs_phone",
    "needs_visit",
    "cannot_write",
    "needs_email",
    "needs_letter",
    "needs_interpreter",
    "needs_large_print",
    "needs_third_party",
    "vulnerable",
)


class Contact(BaseModel):
    """One contact as the rules see it: who sent what over which channel. `from` is the raw sender."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    channel: Channel
    sender: str = Field(default="", alias="from", max_length=320)
    to: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=1000)
    body: str | None = Field(default=None, max_length=200_000)
    case_ref: str | None = Field(default=None, max_length=50)
    on_behalf_of: str | None = Field(default=None, max_length=320)
    appointment: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        """PostgreSQL text cannot hold NUL; replace it so the contact is logged, not lost."""
        if isinstance(data, dict):
            for v in data.values():  # a loop, not any() over a generator: on the path of every contact
                if isinstance(v, str) and "\x00" in v:
                    return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in data.items()}
        return data


class Target(BaseModel):
    type: TargetType
    id: str


class Banner(BaseModel):
    severity: Severity
    text: str
    restriction_ids: list[int] = Field(default_factory=list)
    review_due: date | None = None


class Matched(BaseModel):
    customer_ids: list[int] = Field(default_factory=list)
    case_id: int | None = None
    representative_of: list[int] = Field(default_factory=list)
    ambiguous: bool = False
    withheld: bool = False


class Reason(BaseModel):
    source: str  # restriction | rule | identity | system
    id: str | None = None
    because: str


def plain_json(data: bytes) -> bool:
    """Whether JSON holds no escaped NUL and no escaped half of a surrogate pair: text some stores
    (PostgreSQL's jsonb among them) refuse. A backslash in the text itself may make it look so."""
    return b"\\u0000" not in data and b"\\ud" not in data


_STAMPED = frozenset({"contact_id", "received_at"})
# A stamped decision's JSON as made: its template's pieces (head, middle, tail), and the contact id
# and time as JSON; the decision's JSON is head + id + middle + time + tail.
Stamp = tuple[tuple[bytes, bytes, bytes], bytes, bytes]
# Stand-ins for a template's contact id and time, where a stamped decision's own are put.
_ID_MARK, _AT_MARK = "\u2063contact-id\u2063", "\u2063received-at\u2063"


class Decision(BaseModel):
    """The answer every caller system gets: what to do with the contact, and why."""

    contact_id: str
    action: Action
    target: Target | None
    flagged: bool = False
    banner: Banner | None = None
    customer_message: str | None = None
    matched: Matched = Field(default_factory=Matched)
    reasons: list[Reason] = Field(default_factory=list)
    ruleset_version: int | None = None
    degraded: bool = False
    received_at: datetime | None = None
    # The decision as answered, JSON-ready, built once (`answered`), and its JSON, serialised once
    # (`answered_json`): the log row, the reply and the remembered answer are all made from them.
    # Setting a field drops both, to be built again; a nested model changed in place would not be
    # seen, so a decision's parts are replaced, never edited.
    _answered: dict[str, Any] | None = PrivateAttr(default=None)
    _json: bytes | None = PrivateAttr(default=None)
    # A template's JSON cut around its contact id and time (`stamped`), built on first use.
    _cut: tuple[bytes, bytes, bytes] | tuple[()] | None = PrivateAttr(default=None)
    # True when `_json` is known to be plain (`plain_json`): a stamped decision's is, its template's
    # having been looked at once, when it was cut.
    _plain: bool = PrivateAttr(default=False)
    # A stamped decision's template pieces and the two JSON values put between them (`stamp`).
    _stamp: Stamp | None = PrivateAttr(default=None)

    def answered(self) -> dict[str, Any]:
        """The decision as JSON-ready data (what `model_dump(mode="json")` gives), built once."""
        private = self.__pydantic_private__  # read directly: pydantic's own look-up costs ~5 µs
        assert private is not None
        found: dict[str, Any] | None = private["_answered"]
        if found is None:
            found = private["_answered"] = self.model_dump(mode="json")
        return found

    def answered_json(self) -> bytes:
        """`answered()` as JSON, serialised once (~2 µs each time saved): the reply's body, and the
        copy the log row and the remembered answer carry."""
        private = self.__pydantic_private__
        assert private is not None
        found: bytes | None = private.get("_json")
        if found is None:
            answer = self.answered()
            try:
                found = orjson.dumps(answer)
            except TypeError:  # a lone surrogate, which orjson refuses: the standard library escapes it
                found = json.dumps(answer).encode()
            private["_json"] = found
        return found

    def answered_json_if_plain(self) -> bytes | None:
        """`answered_json()` when it is plain (`plain_json`), else None. A stamped decision's is
        known to be, from its template (~1 µs saved on every contact)."""
        private = self.__pydantic_private__
        assert private is not None
        found = self.answered_json()
        return found if private.get("_plain") or plain_json(found) else None

    def stamped(self, contact_id: str, received_at: datetime) -> Decision:
        """This decision, as a template, given to one contact: its id and time set, its answer made
        from the template's (~6 µs, against ~20 for building and dumping a Decision afresh). Its
        parts, and the lists and objects nested in its answer, are the template's own: shared by
        every contact stamped from it, so neither is ever edited in place (see `_answered`)."""
        answer = dict(self.answered())
        at = to_jsonable_python(received_at)
        answer["contact_id"], answer["received_at"] = contact_id, at
        cut = self._cut_for_stamping()
        id_json, at_json = orjson.dumps(contact_id), orjson.dumps(at)
        body = None if cut is None else b"".join((cut[0], id_json, cut[1], at_json, cut[2]))
        stamped = Decision.__new__(Decision)  # as pydantic's own copy does: the fields are valid already
        object.__setattr__(stamped, "__dict__", {**self.__dict__, "contact_id": contact_id, "received_at": received_at})
        object.__setattr__(stamped, "__pydantic_fields_set__", self.__pydantic_fields_set__ | _STAMPED)
        object.__setattr__(stamped, "__pydantic_extra__", None)
        # Plain when its template is (looked at when cut) and so is the id put in it (a time is digits).
        plain = body is not None and plain_json(id_json)
        private = {
            "_answered": answer,
            "_json": body,
            "_cut": None,
            "_plain": plain,
            "_stamp": (cut, id_json, at_json) if plain and cut is not None else None,
        }
        object.__setattr__(stamped, "__pydantic_private__", private)
        return stamped

    def stamp(self) -> Stamp | None:
        """How this decision's JSON was made, when it was stamped from a template and is plain: the
        template's three pieces, and the contact id and time (as JSON) put between them. Many
        decisions share a template, so a copy of one kept elsewhere may keep the template once and
        each decision's two values (see gateway/decide/remembered.py)."""
        private = self.__pydantic_private__
        assert private is not None
        found: Stamp | None = private.get("_stamp")
        return found

    def _cut_for_stamping(self) -> tuple[bytes, bytes, bytes] | None:
        """This template's JSON in three pieces, around the places of the contact id and the time:
        a stamped decision's JSON is its id and time put between them (~0.5 µs, against ~2 for
        serialising its answer). None when the JSON cannot be cut so (it holds the markers, or text
        orjson refuses): each stamped decision is serialised on its own then."""
        private = self.__pydantic_private__
        assert private is not None
        cut: tuple[bytes, bytes, bytes] | tuple[()] | None = private.get("_cut")
        if cut is None:
            cut = private["_cut"] = self._cut_json()
        return cut or None  # the same pieces every time: a stamp's template is known by them

    def _cut_json(self) -> tuple[bytes, bytes, bytes] | tuple[()]:
        """The pieces, or () when the JSON cannot be cut (remembered as such)."""
        marked = {**self.answered(), "contact_id": _ID_MARK, "received_at": _AT_MARK}
        try:
            whole = orjson.dumps(marked)
        except TypeError:
            return ()
        id_mark, at_mark = orjson.dumps(_ID_MARK), orjson.dumps(_AT_MARK)
        if whole.count(id_mark) != 1 or whole.count(at_mark) != 1 or whole.find(id_mark) > whole.find(at_mark):
            return ()
        if not plain_json(whole):  # each stamped decision's JSON is looked at on its own then
            return ()
        head, rest = whole.split(id_mark)
        middle, tail = rest.split(at_mark)
        return (head, middle, tail)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_") and self.__pydantic_private__ is not None:
            private = self.__pydantic_private__
            private["_answered"] = private["_json"] = private["_cut"] = private["_stamp"] = None
            private["_plain"] = False

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Decision:
        copied = super().model_copy(update=update, deep=deep)
        if copied.__pydantic_private__ is not None:  # a copy with changes is answered afresh
            private = copied.__pydantic_private__
            private["_answered"] = private["_json"] = private["_cut"] = private["_stamp"] = None
            private["_plain"] = False
        return copied

    def __eq__(self, other: object) -> bool:
        """Equal when the fields are, whether or not either has built its answer yet."""
        if not isinstance(other, Decision):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__


class RulesInvalid(ValueError):
    """Data handed to the rules (a rule set, a restriction's params) that cannot be used.

    `errors` lists {field, message} with precise paths; the HTTP edge answers 422 with them.
    """

    code = "invalid"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0]
        super().__init__(f"{first['field']}: {first['message']}")
        self.errors = errors
