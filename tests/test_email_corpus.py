"""Real-world mail: every message of the Zammad helpdesk's test corpus (../shared/corpus/zammad-mail,
read at run time, never copied here) through POST /v1/channels/email: answered without a 5xx,
logged, and the bounces and auto-replies among it never acknowledged.

So that acknowledgements are really at stake, every sender in the corpus is one customer with a
contact limit of one email a day: every message after the first is acknowledged unless RFC 3834
forbids it. The reading is also measured against the corpus's expected.json (how Zammad reads the
sender and subject): agreement may not fall below what it is now (see README, "The email channel").
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest

from gateway.channels.email import read_message
from gateway.demo import load_demo
from gateway.identifiers import IdentifierError, normalise
from gateway.runtime import RUNTIME
from tests.factory import bearer, insert_customer, insert_restriction
from tests.helpers import ROOT, running
from tests.smtpsink import SmtpSink
from tests.test_channel_email import EMAIL

# Read where it lies (it is AGPL test input, never copied into the project): beside the repository,
# or wherever GATEWAY_MAIL_CORPUS points.
CORPUS = Path(os.environ.get("GATEWAY_MAIL_CORPUS") or ROOT.parent / "shared" / "corpus" / "zammad-mail")
SENDERS_AGREED, SUBJECTS_AGREED = 81, 86  # of 85 and 87, measured 2026-11-26
REPEATS = 16  # messages whose Message-ID an earlier one in the corpus has

pytestmark = pytest.mark.skipif(
    not (CORPUS / "expected.json").exists(),
    reason=f"the mail corpus is not at {CORPUS} (beside the repo, or GATEWAY_MAIL_CORPUS)",
)


def expected() -> list[dict]:
    return json.loads((CORPUS / "expected.json").read_text())


def raw_of(entry: dict) -> bytes:
    return (CORPUS / entry["file"]).read_bytes()


def _same_words(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def test_agreement_with_expected_senders_and_subjects():
    senders = subjects = 0
    for e in expected():
        msg = read_message(raw_of(e))
        senders += "from_email" in e and msg.sender.lower() == e["from_email"].lower()
        subjects += "subject" in e and _same_words(msg.subject, e["subject"][:1000])
    assert (senders, subjects) >= (SENDERS_AGREED, SUBJECTS_AGREED), (senders, subjects)


@pytest.mark.timeout(150)
async def test_every_message_through_the_webhook(settings, conn, keys):
    entries = expected()
    await load_demo(conn)
    addresses = set()
    for e in entries:
        try:
            addresses.add(normalise("email", read_message(raw_of(e)).sender))
        except IdentifierError:
            continue
    ordered = sorted(addresses)
    for n in range(0, len(ordered), 40):  # a customer holds at most 50 identifiers
        cid = await insert_customer(conn, f"Corpus Writer {n}", *(("email", a) for a in ordered[n : n + 40]))
        limit = {"kind": "contact_limit", "limit": 1, "period": "day"}
        await insert_restriction(conn, cid, limit, channels=["email"])
    sink = await SmtpSink().start()
    s = settings.with_(smtp_url=sink.url, ack_from="housing@demo-homes.org.uk", ack_daily_cap=1000)
    answers = {}
    async with running(s, conn, demo=False) as (client, app):
        headers = {**bearer(keys["channel"]), "Content-Type": "message/rfc822"}
        for e in entries:
            r = await client.post(EMAIL, data=io.BytesIO(raw_of(e)), headers=headers)
            assert r.status in (200, 201), (e["file"], r.status, await r.text())
            answers[e["file"]] = (r.status, await r.json())

        for _ in range(20):  # drain what is due; a relay slow to answer must not hold the suite
            try:
                if not await asyncio.wait_for(app[RUNTIME].outbox.run_once(), timeout=20):
                    break
            except TimeoutError:
                break
    await sink.close()

    ids = [a["contact_id"] for _, a in answers.values()]
    logged = {str(r["id"]): r for r in await conn.fetch("SELECT * FROM contacts WHERE id = ANY($1::uuid[])", ids)}
    assert set(ids) <= set(logged), "every message answered is on the log"
    created = sum(status == 201 for status, _ in answers.values())
    assert len(logged) == created  # a shared Message-ID is answered as a repeat of the first
    assert created == len({e["file"] for e in entries}) - REPEATS

    acknowledged = {
        str(r["contact_id"]) for r in await conn.fetch("SELECT contact_id FROM outbox WHERE status = 'sent'")
    }
    automatic = [e for e in entries if e["auto_generated"] and answers[e["file"]][0] == 201]
    assert automatic, "the corpus has bounces and auto-replies"
    for e in automatic:
        contact_id = answers[e["file"]][1]["contact_id"]
        assert contact_id not in acknowledged, e["file"]
        note = logged[contact_id]["ack_note"] or ""
        assert not note.startswith(("queued", "sent")), (e["file"], note)
    assert acknowledged, "people's mail over the limit is acknowledged: the rules were really at stake"
    bounced_to = {normalise("email", read_message(raw_of(e)).sender) for e in automatic}
    assert not bounced_to & {r for got in sink.received for r in got.rcpt_tos}
