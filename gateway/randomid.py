"""Random version-4 UUIDs for contact and request ids, read from the OS's random source a block at a time.

`uuid.uuid4()` asks the kernel for 16 bytes on every call, a system call twice per contact on the
decide path; this reads 4 KiB at once and hands it out 16 bytes at a time. The same source (so
the same unpredictability), the same format. A forked child starts a block of its own. Used on the
event loop's thread only.
"""

from __future__ import annotations

import os

_BLOCK = 4096
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and the RFC 4122 variant bits
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))


class _Source:
    def __init__(self) -> None:
        self.block, self.at = b"", _BLOCK

    def take(self) -> int:
        if self.at >= _BLOCK:
            self.block, self.at = os.urandom(_BLOCK), 0
        at = self.at
        self.at = at + 16
        return (int.from_bytes(self.block[at : at + 16]) & _CLEAR) | _VERSION_4

    def forget(self) -> None:
        """In a forked child: never hand out what the parent may hand out too."""
        self.block, self.at = b"", _BLOCK


_source = _Source()
os.register_at_fork(after_in_child=_source.forget)


def new_id() -> str:
    """A new version-4 UUID in its canonical form (as `str(uuid4())`)."""
    h = f"{_source.take():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex() -> str:
    """32 hex digits: a new version-4 UUID without dashes (as `uuid4().hex`)."""
    return f"{_source.take():032x}"
