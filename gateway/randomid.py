"""Ids from the OS's random source, read a block at a time: time-ordered UUIDs for contacts, random
ones for requests.

`uuid.uuid4()` asks the kernel for 16 bytes on every call, a system call twice per contact on the
decide path; this reads 4 KiB at once and hands it out 16 bytes at a time, from the same source. A
forked child starts a block of its own. Used on the event loop's thread only.

A contact id (decided, refused or malformed alike) is a version-7 UUID (RFC 9562): the millisecond
it was made, then 74 random bits, so it tells when it was made (as the contact's own time does) and
is still not to be guessed. The contact log's primary key leads with it, so new rows go at the end
of that index (in any order within a millisecond) rather than each on a random page of it: after a
checkpoint PostgreSQL writes a whole page to the WAL the first time it touches one, and a random id
touched a new page nearly every row (measured on the bench's log, one-row commits after a
checkpoint: 3.7–3.9 KB of WAL a row with random ids, 1.8–2.0 with these). On a month's partition
too big for PostgreSQL's cache, a random id also reads a random index page from disk for each row.
In the month a gateway is upgraded, new ids fall in the middle of that month's random ones, not at
its end; from the next month's partition on, they are at its end.
"""

from __future__ import annotations

import os
import time

_BLOCK = 4096
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and the RFC 4122 variant bits
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_MS = (1 << 48) - 1
_RAND_B = (1 << 62) - 1


class _Source:
    def __init__(self) -> None:
        self.block, self.at = b"", _BLOCK

    def bits(self) -> int:
        """128 random bits."""
        if self.at >= _BLOCK:
            self.block, self.at = os.urandom(_BLOCK), 0
        at = self.at
        self.at = at + 16
        return int.from_bytes(self.block[at : at + 16])

    def take(self) -> int:
        """A version-4 UUID as an integer."""
        return (self.bits() & _CLEAR) | _VERSION_4

    def forget(self) -> None:
        """In a forked child: never hand out what the parent may hand out too."""
        self.block, self.at = b"", _BLOCK


_source = _Source()
os.register_at_fork(after_in_child=_source.forget)


def new_contact_id() -> str:
    """A new version-7 UUID in its canonical form: the Unix time in milliseconds (48 bits), the
    version, 12 random bits, the RFC 4122 variant, 62 random bits."""
    r = _source.bits()
    ms = time.time_ns() // 1_000_000 & _MS
    version_and_rand_a = 0x7000 | (r & 0xFFF)
    variant_and_rand_b = 0x8000_0000_0000_0000 | ((r >> 12) & _RAND_B)
    return _canonical((ms << 80) | (version_and_rand_a << 64) | variant_and_rand_b)


def _canonical(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex() -> str:
    """32 hex digits: a new version-4 UUID without dashes (as `uuid4().hex`), for request ids."""
    return f"{_source.take():032x}"
