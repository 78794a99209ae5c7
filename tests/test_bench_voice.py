"""The bench's phone mix as Twilio sends it (bench/voice.py): every call it sends is one Twilio's own
validator accepts, each once; wrk reads them all from the file beside its script, and the constant
load (bench/steady.py) sends them to a served worker, whose edge answers them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from bench import steady, voice
from bench.load import Shape
from gateway.channels.twilio import VOICE_PATH
from tests.helpers import serving


def test_every_call_is_signed_as_twilio_signs_and_has_a_call_id_of_its_own(tmp_path: Path):
    script = voice.write_script(tmp_path / "voice.lua", Shape(10_000), "run-voice-", 200)
    lines = script.with_suffix(".calls").read_text().splitlines()
    assert len(lines) == 200
    validator = RequestValidator(voice.TOKEN)
    sids = []
    for line in lines:
        form, signature = line.split("\t")
        fields = dict(parse_qsl(form, keep_blank_values=True))
        assert validator.validate(voice.PUBLIC + VOICE_PATH, fields, signature)
        assert fields["From"] == fields["Caller"] and fields["From"]
        sids.append(fields["CallSid"])
    assert sids == [f"run-voice-{i}" for i in range(200)]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make bench`")
def test_wrk_sends_each_call_once_then_counts_repeats(tmp_path: Path):
    """wrk's Lua reads the calls file (a table literal this long is more than LuaJIT takes) and takes
    the calls in order; past the last one, a call sent again is counted as a repeat. Checked by
    running the script's own request() in wrk's LuaJIT, without a server."""
    script = voice.write_script(tmp_path / "voice.lua", Shape(10_000), "p-", 5)
    calls = script.with_suffix(".calls").read_text().splitlines()
    lua = script.read_text().replace("function request()", "function request_unused()", 1)
    lua += "\nfunction dump()\n  local out = {}\n  for i = 1, 7 do\n    sent, n, repeats = 0, i - 1, 0\n"
    lua += "    request_unused()\n    out[#out + 1] = repeats\n  end\n  return out\nend\n"
    probe = tmp_path / "probe.lua"
    probe.write_text(
        lua.replace("local calls = {}", "calls = {}")
        + "\nfunction setup(t) end\nfunction init(a) sent, n, repeats = 0, 0, 0 end\n"
        + 'local got = dump()\nio.write("REPEATS " .. table.concat(got, ",") .. "\\n")\n'
        + 'io.write("CALLS " .. #calls .. "\\n")\nos.exit(0)\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", "-c1", "-d1s", "-s", str(probe), "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "CALLS 5" in out.stdout, out.stdout + out.stderr
    assert "REPEATS 0,0,0,0,0,1,1" in out.stdout, out.stdout + out.stderr
    assert len(calls) == 5


async def test_the_constant_load_sends_each_signed_call_once_and_the_edge_answers_them(settings, conn, tmp_path):
    """bench/steady.py with a calls file, against a served worker with the Twilio channel set up as
    the bench sets it: every call answered 200 (the edge's own answers), each logged once."""
    calls = voice.write_script(tmp_path / "v.lua", Shape(10_000), "steady-voice-", 100).with_suffix(".calls")
    configured = settings.with_(twilio_auth_token=voice.TOKEN, public_url=voice.PUBLIC)
    async with serving(configured) as (port, edge):
        result = await steady.offer(f"http://127.0.0.1:{port}{VOICE_PATH}", "", [], "steady-voice-", 50, 2, calls=calls)
        assert edge.answered == 100
    assert (result["offered"], result["failed"], sorted(result["created"])) == (
        100,
        0,
        sorted(f"steady-voice-{i}" for i in range(100)),
    )
    logged = await conn.fetch("SELECT provider_id, channel FROM contacts WHERE provider_id LIKE 'steady-voice-%'")
    assert sorted(r["provider_id"] for r in logged) == sorted(result["created"])
    assert {r["channel"] for r in logged} == {"phone"}


async def test_the_constant_load_refuses_to_start_with_fewer_calls_than_it_would_send(tmp_path):
    calls = voice.write_script(tmp_path / "v.lua", Shape(10_000), "few-", 10).with_suffix(".calls")
    with pytest.raises(ValueError, match="fewer than the 20 to send"):
        await steady.run("http://127.0.0.1:9/", "", [], "few-", 10, 2, calls=str(calls))
