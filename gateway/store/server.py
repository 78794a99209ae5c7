"""What the gateway reads of the PostgreSQL server's own settings: how much WAL it keeps ready.

A commit that fills the server's current WAL file and finds no next one waits while PostgreSQL
makes it (16 MB of zeros, flushed), and every caller waits with it: 38–55 ms on the bench machine
(README, "Sizing PostgreSQL"). Once it has written them, the server keeps at least `min_wal_size`
of files for reuse (more after a busier spell), counted from a checkpoint's start, which must last
(1 + checkpoint_completion_target) checkpoint cycles; a contact writes 2–3 KB of WAL. So its
settings say up to what burst of contacts, even after a quiet spell, no commit has to wait for a
file (on a server that has written that much WAL once; a new one makes its files as it goes).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

WAL_PER_CONTACT = 3 * 1024  # bytes: the most measured, just after a checkpoint (full-page images)


@dataclass(frozen=True)
class WalSettings:
    min_wal_bytes: int
    checkpoint_seconds: int
    completion_target: float

    @property
    def peak_contacts_per_second(self) -> int:
        """The rate whose WAL the files kept ready cover until the next checkpoint recycles more."""
        cycle_bytes = (1 + self.completion_target) * self.checkpoint_seconds * WAL_PER_CONTACT
        return int(self.min_wal_bytes / cycle_bytes)

    def describe(self) -> str:
        return (
            f"PostgreSQL keeps at least {self.min_wal_bytes // 2**20:,} MB of WAL files for reuse once it has "
            f"written them (min_wal_size; checkpoints every {self.checkpoint_seconds} s): enough for a peak of "
            f"~{self.peak_contacts_per_second:,} contacts a second before commits wait while it makes new ones; "
            'a new server makes them as it goes until it has written that much (README, "Sizing PostgreSQL")'
        )


async def wal_settings(conn: asyncpg.Connection) -> WalSettings:
    rows = await conn.fetch(
        "SELECT name, setting, unit FROM pg_settings "
        "WHERE name IN ('min_wal_size', 'checkpoint_timeout', 'checkpoint_completion_target')"
    )
    got = {r["name"]: (r["setting"], r["unit"]) for r in rows}
    size, unit = got["min_wal_size"]
    return WalSettings(
        int(size) * _BYTES[unit], int(got["checkpoint_timeout"][0]), float(got["checkpoint_completion_target"][0])
    )


# pg_settings gives min_wal_size in its base unit, MB, on every supported version; the others are
# there should that change.
_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 2**20, "16MB": 16 * 2**20, "GB": 2**30}
