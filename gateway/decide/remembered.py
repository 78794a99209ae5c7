"""How an answer is kept in Redis for retries: whole, or as a reference to its template; and how long.

Nearly every answer is a template stamped with a contact id and a time (`Decision.stamp`): the same
target, reasons and texts for every caller no customer of ours is linked to. Such an answer is kept
as `@<template digest>\\n<contact id>\\n<time>` (the two values as JSON), ~90 bytes, and its template
under ANSWER_TEMPLATE + digest, set again with the longest answer's lifetime by every call that
sends an answer referring to it: Redis holds a template at least as long as any such answer.
Measured with MEMORY USAGE: 190–250 bytes of Redis a remembered answer (the key's length varies),
against ~860 kept whole. Any other answer (a restricted customer's, a repeat's) is kept whole.
Whole or referred to, the answer read back is byte for byte the one the first attempt was given.

How long an answer is kept is its channel's retry window. A telephony platform retries while the
caller is on the line: within seconds, so a day is ample. A mail server retries for days (Postfix
gives up after 5), and a desk or post-room system may forward later: every other channel keeps its
answers 7 days. The log's unique key answers retries at any age while PostgreSQL answers; Redis is
only for when it does not.
"""

from __future__ import annotations

import hashlib

from ..rediskeys import ANSWER_TEMPLATE
from ..rules.vocabulary import Stamp

DAY = 86400
WEEK = 7 * DAY
_ON_THE_LINE = {"phone": DAY}  # channels whose retries come while the caller is there
TEMPLATE_TTL = max(WEEK, *_ON_THE_LINE.values())  # the longest an answer is kept
REFERENCE = b"@"
_SEP = b"\n"  # never in orjson's output outside a string, nor escaped inside one
_MOST = 4096  # templates held here: more than any rule set makes; past it, they are all read again

# A template as a remembered answer refers to it: (digest, the template as kept in Redis).
Template = tuple[bytes, bytes]
# For Redis scripts: `held(k)`, what a key holds (and, for a reference, its template), or false when
# it holds a reference to a template Redis no longer has (lost with data it lost): such an answer
# cannot be given, so the key is free to claim, as it would be had Redis lost the answer itself.
LUA_HELD = f"""
local function held(k)
  local v = redis.call('GET', k)
  if v and string.sub(v, 1, 1) == '{REFERENCE.decode()}' then
    local stop = string.find(v, '\\n', 1, true)
    local template = stop and redis.call('GET', '{ANSWER_TEMPLATE}' .. string.sub(v, 2, stop - 1))
    if not template then return false end
    return v, template
  end
  return v
end
"""


def ttl_for(channel: str) -> int:
    """How long an answer (or a claim) for this channel's provider ids is kept: its retry window."""
    return _ON_THE_LINE.get(channel, WEEK)


def template_key(digest: bytes) -> str:
    return ANSWER_TEMPLATE + digest.decode()


def digest_of(value: bytes) -> bytes | None:
    """The template a remembered value refers to; None when the value is an answer kept whole."""
    if not value.startswith(REFERENCE):
        return None
    end = value.find(_SEP)
    return value[1:end] if end > 1 else None


def with_template(value: bytes) -> tuple[bytes, bytes] | None:
    """A reference as a script returns it, its template after it: (the reference, the template)."""
    parts = value.split(_SEP)
    if len(parts) != 6:
        return None
    return _SEP.join(parts[:3]), _SEP.join(parts[3:])


def whole(value: bytes, template: bytes) -> bytes:
    """The answer a reference stands for, given its template (as kept in Redis)."""
    _, id_json, at_json = value.split(_SEP)
    head, middle, tail = template.split(_SEP)
    return b"".join((head, id_json, middle, at_json, tail))


class Templates:
    """The templates this process refers to or has read, by digest: a stamped answer's reference is
    made without hashing its template again, and a retry's is read without asking Redis."""

    def __init__(self) -> None:
        self.known: dict[bytes, bytes] = {}  # digest → the template as kept in Redis
        self._digests: dict[tuple[bytes, bytes, bytes], Template] = {}  # the pieces → their template

    def reference(self, stamp: Stamp) -> tuple[bytes, Template]:
        """The value to remember for a stamped answer, and the template it refers to (to be sent
        with it)."""
        pieces, id_json, at_json = stamp
        template = self._digests.get(pieces)
        if template is None:
            kept = _SEP.join(pieces)
            template = (hashlib.blake2b(kept, digest_size=8).hexdigest().encode(), kept)
            self.learn(*template)
            self._digests[pieces] = template
        return b"".join((REFERENCE, template[0], _SEP, id_json, _SEP, at_json)), template

    def learn(self, digest: bytes, kept: bytes) -> None:
        """A template made here, or read from Redis (another process made it)."""
        if len(self.known) >= _MOST:  # text that changes every minute (a quoted time) makes one a minute
            self.known.clear()
            self._digests.clear()
        self.known[digest] = kept
