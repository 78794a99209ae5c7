"""Up to what rate PostgreSQL's WAL files kept ready spare every caller a wait, said once at start-up."""

from __future__ import annotations

import logging

from gateway.serve import _migrate_once
from gateway.store.server import WalSettings, wal_settings


def test_the_files_kept_cover_a_rate_over_one_and_nine_tenths_checkpoint_cycles():
    # 1 GB over (1 + 0.9) cycles of 300 s at 3 KB a contact: 2**30 / (1.9 * 300 * 3072) = 613.2
    assert WalSettings(2**30, 300, 0.9).peak_contacts_per_second == 613
    # PostgreSQL's default, 80 MB: a few dozen contacts a second.
    assert WalSettings(80 * 2**20, 300, 0.9).peak_contacts_per_second == 47
    text = WalSettings(80 * 2**20, 300, 0.9).describe()
    assert "at least 80 MB" in text and "once it has written them" in text and "~47 contacts a second" in text


async def test_the_server_s_own_settings_are_read_in_bytes_and_seconds(conn):
    read = await wal_settings(conn)
    shown = await conn.fetchval("SELECT pg_size_bytes(current_setting('min_wal_size'))")
    assert read.min_wal_bytes == shown
    assert read.checkpoint_seconds == await conn.fetchval(
        "SELECT extract(epoch FROM current_setting('checkpoint_timeout')::interval)::int"
    )
    assert read.completion_target == float(await conn.fetchval("SHOW checkpoint_completion_target"))


async def test_serving_says_it_once_after_migrating(settings, conn, caplog):
    caplog.set_level(logging.INFO, logger="gateway.serve")
    await _migrate_once(settings)
    said = [r.getMessage() for r in caplog.records if "WAL files for reuse" in r.getMessage()]
    assert said == [(await wal_settings(conn)).describe()]
