"""The fault harness's own parts: its load generator against a real gateway, and how it counts defects."""

from __future__ import annotations

import asyncio

from faults.inject import Window
from faults.load import Answer, Spec, is_retried, run
from faults.measure import LogRow, measure, render


async def test_the_load_retries_one_contact_in_twenty_and_every_answer_is_in_the_log(client, keys, conn, tmp_path):
    url = str(client.make_url("/v1/contacts"))
    spec = Spec(url, keys["channel"], "smoke-", rate=40, out=str(tmp_path / "answers.jsonl"))
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    answers = await run(spec, stop)

    firsts = [a for a in answers if not a.retry]
    retries = [a for a in answers if a.retry]
    assert len(firsts) >= 40
    assert {a.provider_id for a in retries} == {a.provider_id for a in firsts if is_retried(int(a.provider_id[6:]))}
    assert all(a.status == 201 and not a.degraded for a in firsts)
    assert all(a.status == 200 for a in retries)  # the retry is recognised as the same contact
    rows = [
        LogRow(r["id"], r["provider_id"], r["status"])
        for r in await conn.fetch("SELECT id::text, provider_id, status FROM contacts WHERE provider_id LIKE 'smoke-%'")
    ]
    window = Window(answers[0].sent, answers[0].sent + 0.5, "none")
    result = measure("smoke", answers, rows, window, drained=True)
    assert (result.rows, result.lost, result.duplicated, result.split) == (len(firsts), 0, 0, 0)
    assert result.ok and result.recovery_s is not None


def _answer(
    pid: str, cid: str, sent: float, *, retry: bool = False, degraded: bool = False, status: int = 201
) -> Answer:
    return Answer(pid, retry, sent, 20.0, status, cid, "route", degraded)


def test_lost_duplicated_and_split_contacts_are_each_counted():
    answers = [
        _answer("p-1", "c1", 100.0, degraded=True),
        _answer("p-1", "c1b", 100.5, retry=True, degraded=True),  # split: another contact id, and not logged
        _answer("p-2", "c2", 101.0),  # acknowledged, never logged: lost
        _answer("p-3", "c3", 102.0),  # logged twice: duplicated
        _answer("p-4", "", 103.0, status=0),  # no answer: neither acknowledged nor lost
        _answer("p-5", "c5", 111.0),  # the first healthy answer after the fault
    ]
    rows = [LogRow("c1", "p-1", "decided"), LogRow("c3", "p-3", "decided"), LogRow("c3x", "p-3", "decided")]
    rows.append(LogRow("c5", "p-5", "decided"))
    result = measure("t", answers, rows, Window(100.0, 110.0, "t"), drained=True)

    assert (result.lost, result.duplicated, result.split) == (2, 1, 1)  # c1b and c2; p-3; p-1
    assert (result.acked, result.failed, result.degraded) == (5, 1, 2)
    assert (result.unlogged_ids, result.dropped) == (1, 1)  # p-2 acknowledged, p-4 unanswered: neither logged
    assert result.recovery_s is not None and abs(result.recovery_s - 1.02) < 1e-6
    assert not result.ok
    assert any("p-1: first 201 c1" in e and "c1b (not in the log)" in e for e in result.examples)
    assert "| t | 5 + 1 | 5 | 1 | 4 | 2 | 1 | 1 | 2 |" in render([result])
