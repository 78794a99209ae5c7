"""How an answer is kept in Redis for retries: whole, or as a reference to its template; and how long.

Nearly every answer is a template stamped with a contact id and a time (`Decision.stamp`): the same
target, reasons and texts for every caller no customer of ours is linked to. Such an answer is kept
as `@<template digest>\\n<contact id>\\n<time>` (the two values as JSON), ~90 bytes, and its template
once, under ANSWER_TEMPLATE + digest. Measured with MEMORY USAGE: ~190 bytes of Redis a remembered
answer instead of ~860, and the call that sends a batch of answers carries a tenth of the bytes.
Any other answer (a restricted customer's, a repeat's) is kept whole. Whole or referred to, the
answer read back is byte for byte the one the first attempt was given.

How long an answer is kept is its channel's retry window. A telephony platform or a visitor system
retries while the caller is there: within seconds, so a day is ample. A mail server retries for
days (Postfix gives up after 5): written channels keep theirs for 7. The log's unique key answers
retries at any age while PostgreSQL answers; Redis is only for when it does not.
"""

from __future__ import annotations

import hashlib
import math

from ..rediskeys import ANSWER_TEMPLATE
from ..rules.vocabulary import Stamp

DAY = 86400
WRITTEN_TTL = 7 * DAY
# Channels whose retries come while the caller is there.
_PRESENT = {"phone": DAY, "visit": DAY}
# Redis hears of a template again this often while answers refer to it; it keeps a template for the
# longest answer's time and two of these, so it outlives every answer referring to it.
TEMPLATE_REFRESH = 3600.0
TEMPLATE_TTL = WRITTEN_TTL + 2 * int(TEMPLATE_REFRESH)
REFERENCE = b"@"
_SEP = b"\n"  # never in orjson's output outside a string, nor escaped inside one
_MOST = 4096  # templates held: more than any rule set makes; past it, the oldest are read from Redis


def ttl_for(channel: str) -> int:
    """How long an answer (or a claim) for this channel's provider ids is kept: its retry window."""
    return _PRESENT.get(channel, WRITTEN_TTL)


def template_key(digest: bytes) -> str:
    return ANSWER_TEMPLATE + digest.decode()


def digest_of(value: bytes) -> bytes | None:
    """The template a remembered value refers to; None when the value is an answer kept whole."""
    if not value.startswith(REFERENCE):
        return None
    end = value.find(_SEP)
    return value[1:end] if end > 1 else None


def whole(value: bytes, template: bytes) -> bytes:
    """The answer a reference stands for, given its template (as kept in Redis)."""
    _, id_json, at_json = value.split(_SEP)
    head, middle, tail = template.split(_SEP)
    return b"".join((head, id_json, middle, at_json, tail))


class Templates:
    """The templates this process refers to or has read, by digest, and those Redis is to hear of
    (on first use, then every TEMPLATE_REFRESH while in use)."""

    def __init__(self) -> None:
        self.known: dict[bytes, bytes] = {}  # digest → the template as kept in Redis
        self._digests: dict[tuple[bytes, bytes, bytes], bytes] = {}  # the pieces → their digest
        self._told: dict[bytes, float] = {}  # digest → when Redis last took it (loop time)
        self._due: dict[bytes, bytes] = {}

    def reference(self, stamp: Stamp, now: float) -> bytes:
        """The value to remember for a stamped answer; its template is due to Redis if need be."""
        pieces, id_json, at_json = stamp
        digest = self._digests.get(pieces)
        if digest is None:
            kept = _SEP.join(pieces)
            digest = hashlib.blake2b(kept, digest_size=8).hexdigest().encode()
            self._hold(digest, kept)
            self._digests[pieces] = digest
        if now - self._told.get(digest, -math.inf) >= TEMPLATE_REFRESH:
            self._due[digest] = self.known[digest]
        return b"".join((REFERENCE, digest, _SEP, id_json, _SEP, at_json))

    def learn(self, digest: bytes, kept: bytes) -> None:
        """A template read from Redis (another process made it)."""
        self._hold(digest, kept)

    def take_due(self) -> list[tuple[bytes, bytes]]:
        """The templates Redis is to take with the next call (put back with `untold` if it fails)."""
        due, self._due = list(self._due.items()), {}
        return due

    def told(self, due: list[tuple[bytes, bytes]], now: float) -> None:
        for digest, _ in due:
            self._told[digest] = now

    def untold(self, due: list[tuple[bytes, bytes]]) -> None:
        for digest, kept in due:
            self._due.setdefault(digest, kept)

    def _hold(self, digest: bytes, kept: bytes) -> None:
        if len(self.known) >= _MOST:  # a template no longer used is read from Redis again if a retry needs it
            self.known.clear()
            self._digests.clear()
        self.known[digest] = kept
