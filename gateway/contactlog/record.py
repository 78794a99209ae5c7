"""One contact-log row as a record: its JSON (a spool line, a row of a batch) and text PostgreSQL will store."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from ..rules.vocabulary import Stamp
from ..store.contactlog import FIELDS


class AnswerJson:
    """A decision as answered, already serialised (`Decision.answered_json`), with no text that
    PostgreSQL cannot store: a record's JSON carries it as it is, not serialised again. `stamp`:
    how it was made from a template (`Decision.stamp`), if it was; the answer remembered for
    retries keeps only the template's digest and the two values put in it."""

    __slots__ = ("json", "stamp")

    def __init__(self, data: bytes, stamp: Stamp | None = None) -> None:
        self.json = data
        self.stamp = stamp

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AnswerJson) and other.json == self.json

    def __hash__(self) -> int:
        return hash(self.json)


def _as_fragment(value: Any) -> Any:
    if isinstance(value, AnswerJson):
        return orjson.Fragment(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass
class ContactRecord:
    """One row of `contacts` (field names are column names), with the decision as answered.

    Without __slots__: orjson reads a dataclass's __dict__ at once, where it asks a slotted one for
    each field in turn (measured: 1.7 µs against 3.5 a record, for 0.5 µs more to build it)."""

    id: uuid.UUID
    received_at: datetime
    channel: str
    action: str
    status: str = "decided"
    sender_raw: str | None = None
    sender_kind: str | None = None
    sender: str | None = None
    recipient: str | None = None
    provider_id: str | None = None
    subject: str | None = None
    body_excerpt: str | None = None
    customer_ids: list[int] = field(default_factory=list)
    case_id: int | None = None
    case_ref: str | None = None
    on_behalf_of: str | None = None
    representative_of: list[int] = field(default_factory=list)
    ambiguous: bool = False
    target: dict[str, Any] | None = None
    flagged: bool = False
    banner: dict[str, Any] | None = None
    customer_message: str | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    ruleset_version: int | None = None
    degraded: bool = False
    latency_us: int | None = None
    ack_sent: bool = False
    ack_note: str | None = None
    error: str | None = None
    # The decision as answered, kept with the provider id so a retry gets the same answer: as data,
    # or as the JSON the reply was made of.
    decision: dict[str, Any] | AnswerJson | None = None
    # An acknowledgement to queue in the outbox with this row (gateway/outbox/acks.py), if any.
    ack: dict[str, Any] | None = None

    def to_json(self) -> str:
        """One JSON object keyed by the fields: a line of the spool, and a row of a batch."""
        try:  # orjson reads the dataclass itself, in C: ~2 µs a row, against ~15 for a dict of its fields
            return orjson.dumps(self, default=_as_fragment, option=orjson.OPT_NAIVE_UTC).decode()
        except TypeError:  # a lone surrogate or an integer over 64 bits: kept as it is, for `encoded` to clean
            data = {name: getattr(self, name) for name in FIELDS}
            if isinstance(self.decision, AnswerJson):
                data["decision"] = json.loads(self.decision.json)
            data["id"] = str(self.id)
            at = self.received_at
            data["received_at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> ContactRecord:
        data = json.loads(line)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}  # written by an older or newer version
        data["id"] = uuid.UUID(data["id"])
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**data)


# A field added to the record and not to the log's columns, or the other way round, stops start-up.
if [f.name for f in fields(ContactRecord)] != list(FIELDS):
    raise RuntimeError("ContactRecord's fields must be gateway.store.contactlog.FIELDS, in that order")
# The fields that can carry caller text: strings, and JSON with strings nested in it.
_TEXT = tuple(f.name for f in fields(ContactRecord) if f.type in ("str", "str | None") or "dict" in str(f.type))
# PostgreSQL text and jsonb hold neither NUL nor half of a UTF-16 surrogate pair (which only
# malformed input, e.g. a JSON "\ud800" escape, can put into a Python string).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return True
        return not value.isascii() and _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def clean(value: Any) -> Any:
    """`value` with NUL and lone surrogates replaced by U+FFFD, in strings nested anywhere."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _unstorable(value) else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def storable(record: ContactRecord) -> ContactRecord:
    """The record with every text field storable, so that it is written in its batch, never refused."""
    return encoded(record)[0]


def encoded(record: ContactRecord) -> tuple[ContactRecord, str]:
    """The record made storable, and its JSON (`to_json`). The JSON is looked at first, once: it
    escapes NUL as \\u0000 and keeps a lone surrogate as it is, so a clean record (nearly all) is
    told apart without visiting every field."""
    line = record.to_json()
    if "\\u0000" not in line and (line.isascii() or _UNSTORABLE.search(line) is None):
        return record, line
    changes = {name: clean(getattr(record, name)) for name in _TEXT if _unstorable(getattr(record, name))}
    if not changes:  # a backslash followed by "u0000" in some text: nothing to clean after all
        return record, line
    record = replace(record, **changes)
    return record, record.to_json()
