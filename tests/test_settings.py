"""Settings: one typed object from the environment; a bad value stops start-up with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.settings import Settings, SettingsError


def test_defaults():
    s = Settings.from_env({})
    assert (s.host, s.port, s.tz, s.workers) == ("127.0.0.1", 8080, "Europe/London", 1)
    assert s.bank_holidays == "ENG" and s.calendar().nation == "ENG"
    assert Settings.from_env({"GATEWAY_BANK_HOLIDAYS": " sct "}).calendar().nation == "SCT"
    assert (s.decide_deadline_ms, s.written_deadline_ms) == (500, 1500)
    assert Settings.from_env({"GATEWAY_WRITTEN_DEADLINE_MS": "2500"}).written_deadline_ms == 2500
    assert Settings.from_env({"GATEWAY_DECIDE_DEADLINE_MS": "3000"}).written_deadline_ms == 3000  # never shorter


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
        ({"GATEWAY_TZ": "Mars/Olympus"}, "GATEWAY_TZ"),
        ({"GATEWAY_BANK_HOLIDAYS": "GB"}, "GATEWAY_BANK_HOLIDAYS='GB' is not a UK nation's code"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"FASTAGI_ALLOW": "10.0.0.0/8,not-an-address"}, "FASTAGI_ALLOW"),
        ({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, the-balancer"}, "GATEWAY_TRUSTED_PROXIES"),
        ({"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS"),
        ({"GATEWAY_WRITTEN_DEADLINE_MS": "3 s"}, "GATEWAY_WRITTEN_DEADLINE_MS"),
        ({"GATEWAY_LOG_FLUSHES_IN_FLIGHT": "0"}, "GATEWAY_LOG_FLUSHES_IN_FLIGHT"),
        ({"GATEWAY_LOG_SECOND_COMMIT_AFTER_MS": "-1"}, "GATEWAY_LOG_SECOND_COMMIT_AFTER_MS"),
        ({"GATEWAY_ACTIVATION_RULE": "caution_lead:two"}, "GATEWAY_ACTIVATION_RULE"),
        ({"GATEWAY_MAIL_FILTER_LISTEN": "127.0.0.1:10025"}, "GATEWAY_MAIL_REINJECT is not set"),
        ({"GATEWAY_MAIL_FILTER_LISTEN": "localhost:10025", "GATEWAY_MAIL_REINJECT": "127.0.0.1:1"}, "LISTEN"),
        ({"GATEWAY_MAIL_REINJECT": "127.0.0.1:99999"}, "GATEWAY_MAIL_REINJECT"),
        ({"GATEWAY_MAIL_REINJECT": "127.0.0.1:1,127.0.0.1:2"}, "GATEWAY_MAIL_REINJECT takes one"),
        ({"GATEWAY_MAIL_FILTER_ALLOW": "postfix-host"}, "GATEWAY_MAIL_FILTER_ALLOW"),
        ({"GATEWAY_MAIL_FILTER_TIMEOUT_MS": "5"}, "GATEWAY_MAIL_FILTER_TIMEOUT_MS"),
        (
            {
                "GATEWAY_MAIL_FILTER_LISTEN": "127.0.0.1:10025",
                "GATEWAY_MAIL_REINJECT": "127.0.0.1:10026",
                "GATEWAY_MAIL_FILTER_TIMEOUT_MS": "11500",
            },
            "GATEWAY_MAIL_FILTER_TIMEOUT_MS=11500 must be longer than 11500 ms",
        ),
        ({"GATEWAY_CASE_MAILBOX": "cases@{case}.example"}, "GATEWAY_CASE_MAILBOX"),
        ({"GATEWAY_CASE_MAILBOX": "not an address"}, "GATEWAY_CASE_MAILBOX"),
    ],
)
def test_malformed_setting_is_named(env, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_mail_filter_settings():
    s = Settings.from_env(
        {
            "GATEWAY_MAIL_FILTER_LISTEN": "127.0.0.1:10025, [::1]:10025",
            "GATEWAY_MAIL_REINJECT": "127.0.0.1:10026",
            "GATEWAY_CASE_MAILBOX": "casefile+{case}@h.example",
        }
    )
    assert s.mail_filter_listen == (("127.0.0.1", 10025), ("::1", 10025))
    assert s.mail_reinject == ("127.0.0.1", 10026) and s.case_mailbox == "casefile+{case}@h.example"
    assert Settings.from_env({}).mail_filter_listen == ()
    quick = {"GATEWAY_MAIL_FILTER_LISTEN": "127.0.0.1:10025", "GATEWAY_MAIL_REINJECT": "127.0.0.1:10026"}
    assert Settings.from_env({**quick, "GATEWAY_MAIL_FILTER_TIMEOUT_MS": "11501"}).mail_filter_timeout_ms == 11501
    assert Settings.from_env({"GATEWAY_MAIL_FILTER_TIMEOUT_MS": "2000"}).mail_filter_timeout_ms == 2000  # no filter


def test_serving_needs_both_services():
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"}).require_services()
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env({"DATABASE_URL": "postgresql://x@127.0.0.1/db"}).require_services()


def test_cli_stops_with_one_clear_line():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_PORT": "abc"},
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "configuration error: GATEWAY_PORT='abc' is not a whole number (expected 0..65535)"
    ]


def test_with_makes_a_modified_copy():
    s = Settings.from_env({})
    t = s.with_(port=9000)
    assert (s.port, t.port) == (8080, 9000)


def test_the_spool_is_kept_under_the_data_directory_wherever_the_gateway_starts(tmp_path):
    assert Settings.from_env({"GATEWAY_DATA_DIR": str(tmp_path)}).spool_dir == str(tmp_path / "spool")
    assert Settings.from_env({"GATEWAY_EMBEDDED_DIR": "/srv/gateway"}).spool_dir == "/srv/gateway/spool"
    assert Settings.from_env({}).spool_dir == os.path.abspath(".gateway/spool")
    own = Settings.from_env({"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_SPOOL_DIR": "spool-here"})
    assert own.spool_dir == os.path.abspath("spool-here")
