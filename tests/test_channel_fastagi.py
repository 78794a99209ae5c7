"""FastAGI over a real TCP socket, playing Asterisk's side of the AGI protocol."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from ipaddress import ip_network

import pytest

from gateway.channels.fastagi import FASTAGI, VARIABLES, agi_quote
from tests.helpers import logged_contacts, running, staff_numbers

TIMEOUT_MS = 300
HANGUP = "HANGUP\n511 result=-1 Command Not Permitted on a dead channel or intercept routine"
_SET = re.compile(r'^SET VARIABLE (\w+) "((?:[^"\\]|\\.)*)"$')
_ids = itertools.count(1)


def environment(caller: str, uid: str) -> list[str]:
    return [
        "agi_network: yes",
        "agi_network_script: contact",
        "agi_request: agi://127.0.0.1/contact",
        "agi_channel: PJSIP/trunk-00000001",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uid}",
        "agi_version: 20.5.0",
        f"agi_callerid: {caller}",
        "agi_calleridname: unknown",
        "agi_callingpres: 0",
        "agi_dnid: 01632960000",
        "agi_rdnis: unknown",
        "agi_context: from-trunk",
        "agi_extension: 01632960000",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 1401",
    ]


def parse_set(line: str) -> tuple[str, str]:
    m = _SET.match(line)
    assert m, f"not a well-formed SET VARIABLE: {line!r}"
    return m.group(1), re.sub(r"\\(.)", r"\1", m.group(2))


@pytest.fixture
async def agi(settings, conn):
    cfg = settings.with_(fastagi_port=0, fastagi_timeout_ms=TIMEOUT_MS)
    async with running(cfg, conn) as (_, app):
        yield app[FASTAGI].port


async def call(port, caller, uid=None, *, lines=None, reply=lambda n, cmd: "200 result=1"):
    """One call as Asterisk makes it; returns the variables set and every command received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    env = lines if lines is not None else environment(caller, uid or f"1718000000.{next(_ids)}")
    writer.write(("\n".join(env) + "\n\n").encode())
    variables, commands = {}, []
    while line := await asyncio.wait_for(reader.readline(), 5):
        commands.append(line.decode().rstrip("\n"))
        name, value = parse_set(commands[-1])
        variables[name] = value
        writer.write((reply(len(commands), commands[-1]) + "\n").encode())
    writer.close()
    return variables, commands


async def test_happy_path_sets_every_variable(agi, conn):
    variables, commands = await call(agi, "07700900003", "1718000000.3")
    assert [parse_set(c)[0] for c in commands] == [name for name, _ in VARIABLES]
    assert variables["CONTACT_ACTION"] == "deflect" and variables["CONTACT_MESSAGE"]
    assert variables["CONTACT_DEGRADED"] == "false"
    (row,) = await logged_contacts(conn, "provider_id = $1", "1718000000.3")
    assert str(row["id"]) == variables["CONTACT_ID"] and row["sender"] == "+447700900003"


async def test_named_contact_and_retry_by_uniqueid(agi, conn):
    first, _ = await call(agi, "07700900002", "1718000000.2")
    again, _ = await call(agi, "07700900002", "1718000000.2")
    assert first == again and first["CONTACT_ACTION"] == "route"
    sam = await staff_numbers(conn, "Sam Patel")
    assert first["CONTACT_TARGET"] == sam["id"]
    assert first["CONTACT_TARGET_NUMBER"] in (sam["staff"], sam["voicemail"])
    assert len(await logged_contacts(conn, "provider_id = $1", "1718000000.2")) == 1


@pytest.mark.parametrize("caller", ["unknown", "anonymous", "+266696687", ""])
async def test_withheld_callers_route_and_log_as_withheld(agi, conn, caller):
    uid = f"1718000001.{next(_ids)}"
    variables, _ = await call(agi, caller, uid)
    assert variables["CONTACT_ACTION"] == "route" and variables["CONTACT_TARGET"] == "general"
    (row,) = await logged_contacts(conn, "provider_id = $1", uid)
    assert row["sender_kind"] == "withheld"


async def test_caller_hangs_up_mid_exchange(agi, conn):
    variables, commands = await call(
        agi, "07700900010", "1718000000.10", reply=lambda n, _: HANGUP if n == 2 else "200 result=1"
    )
    assert len(commands) == 2 and "CONTACT_ACTION" not in variables
    assert len(await logged_contacts(conn, "provider_id = $1", "1718000000.10")) == 1  # decided and logged
    assert (await call(agi, "07700900010"))[0]["CONTACT_ACTION"] == "route"  # server still serves


async def test_garbage_lines_do_not_crash_the_server(agi, conn):
    env = [
        "hello there",
        "\x00\xff\xfe binary",
        "agi_no_colon",
        "x" * 20_000,
        *environment("07700900003", "1718000000.66"),
    ]
    variables, _ = await call(agi, "", lines=env)
    assert variables["CONTACT_ACTION"] == "deflect"
    _, commands = await call(agi, "07700900010", reply=lambda n, _: "what is this?")
    assert len(commands) == 1  # an unexpected reply ends the exchange
    usage = "520-Invalid command syntax.\nUsage: SET VARIABLE\n520 End of proper usage."
    _, commands = await call(agi, "07700900010", reply=lambda n, _: usage)
    assert len(commands) == 1
    assert (await call(agi, "07700900010"))[0]["CONTACT_ACTION"] == "route"


async def test_slow_peer_is_cut_off_at_the_deadline(agi, conn):
    reader, writer = await asyncio.open_connection("127.0.0.1", agi)
    writer.write(b"agi_network: yes\nagi_uniqueid: 1718000000.77\nagi_callerid: 07700900010\n")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without a blank line from us
    assert TIMEOUT_MS / 1000 * 0.8 < time.monotonic() - started < 3
    writer.close()
    (row,) = await logged_contacts(conn, "provider_id = $1", "1718000000.77")
    assert row["status"] == "malformed" and "no complete AGI environment" in row["error"]


async def test_peer_that_stops_replying_is_cut_off(agi, conn):
    reader, writer = await asyncio.open_connection("127.0.0.1", agi)
    writer.write(("\n".join(environment("07700900010", "1718000000.78")) + "\n\n").encode())
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"SET VARIABLE")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # no reply from us: closed
    writer.close()
    assert len(await logged_contacts(conn, "provider_id = $1", "1718000000.78")) == 1


async def test_disallowed_address_is_closed_at_once_and_logged(settings, conn):
    cfg = settings.with_(fastagi_port=0, fastagi_allow=(ip_network("10.0.0.0/8"),))
    async with running(cfg, conn, demo=False) as (_, app):
        reader, writer = await asyncio.open_connection("127.0.0.1", app[FASTAGI].port)
        writer.write(("\n".join(environment("07700900010", "1718000000.99")) + "\n\n").encode())
        # Closed unread: an orderly EOF or, with our bytes still unread there, a reset.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        (row,) = await logged_contacts(conn, "status = 'rejected'")
    assert "127.0.0.1" in row["error"] and "FASTAGI_ALLOW" in row["error"]
    assert not await conn.fetch("SELECT 1 FROM contacts WHERE provider_id = '1718000000.99'")


def test_values_are_quoted_on_one_line():
    quoted = agi_quote('say "hi"\nSET VARIABLE X "1"\\')
    assert "\n" not in quoted
    assert parse_set(f"SET VARIABLE M {quoted}") == ("M", 'say "hi" SET VARIABLE X "1"\\')


def test_a_long_message_keeps_its_end_where_the_emergency_line_is():
    emergency = "In an emergency, such as a gas leak, a flood or no heating, call 0113 496 0999 at any time."
    quoted = agi_quote("We can only accept calls at set times. " * 40 + emergency)
    assert len(quoted) <= 1002 and quoted.endswith(emergency + '"') and " … " in quoted
    assert agi_quote("short") == '"short"'
