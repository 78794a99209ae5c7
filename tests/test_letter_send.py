"""Sending the letter: emailed with the PDF attached through the outbox (delivered to a real SMTP
server) or posted by the signed-in caution lead; either is recorded with how, when and a copy of the
PDF, and is no longer 'not sent' on the review report. By email only where there is an address to
send it to, else a 409 that says to post it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import lifecycle as lc
from gateway.app import create_app
from gateway.errors import StateConflict
from gateway.letters import render
from gateway.models.restrictions import LetterSentIn
from gateway.rules.calendar import format_date
from gateway.settings import Settings
from gateway.store import reports, transitions
from tests.factory import PHONE, Api, Team, today, yesterday
from tests.helpers import eventually
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.asyncio


async def send(client: Any, by: Any, rid: int, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await client.post(f"/v1/restrictions/{rid}/letter/send", headers=by.headers, json=body)
    return resp.status, await resp.json()


async def issues(client: Any, team: Team, rid: int) -> list[str]:
    due = await (await client.get("/v1/reviews/due", headers=team.cl1.headers)).json()
    return next((i["issues"] for i in due["items"] if i["restriction_id"] == rid), [])


async def test_posting_is_recorded_as_sent_by_whoever_is_signed_in(
    api: Api, client: Any, team: Team, conn: asyncpg.Connection
) -> None:
    cid = await api.customer("Sandra Clarke", PHONE, postal_address="Flat 12, Willow House; Leeds; LS11 5PX")
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    assert "letter_not_sent" in await issues(client, team, rid)

    status, body = await send(client, team.cl3, rid, {"by": "post", "sent_on": yesterday().isoformat()})
    assert status == 200, body
    assert body["letter_sent_on"] == yesterday().isoformat()
    row = await conn.fetchrow("SELECT * FROM restriction_letters WHERE restriction_id = $1", rid)
    assert row["method"] == "post" and row["sent_on"] == yesterday() and row["sent_to"] is None
    assert row["recorded_by"] == f"staff:{team.cl3.id}:Ravi Kumar"
    assert bytes(row["body_pdf"]).startswith(b"%PDF-") and "LS11 5PX" in row["body_text"]
    event = await conn.fetchrow(
        "SELECT * FROM restriction_events WHERE restriction_id = $1 AND kind = 'letter_sent'", rid
    )
    assert event["staff_id"] == team.cl3.id
    assert "letter_not_sent" not in await issues(client, team, rid)
    # The subject-access export lists the letter, without the PDF's bytes.
    doc = await (await client.get(f"/v1/customers/{cid}/export", headers=team.cl1.headers)).json()
    (letter,) = doc["letters"]
    assert letter["method"] == "post" and "body_pdf" not in letter
    assert doc["customer"]["postal_address"] == {"lines": ["Flat 12, Willow House", "Leeds"], "postcode": "LS11 5PX"}


async def test_emailing_delivers_the_pdf_and_records_it_sent(
    settings: Settings, keys: dict[str, str], conn: asyncpg.Connection
) -> None:
    sink = await SmtpSink().start()
    emailing = settings.with_(
        smtp_url=sink.url, provider_name="Riverside Homes", provider_email="letters@riverside.example"
    )
    try:
        async with TestClient(TestServer(create_app(emailing))) as client:
            api = Api(client, keys)
            team = await api.team()
            cid = await api.customer("Peter Novak", PHONE, ("email", "P.Novak@example.com"))
            rid = (await api.restriction(cid, deciders=team.deciders))["id"]
            status, body = await send(client, team.cl2, rid, {"by": "email", "note": "Asked for it by email."})
            assert status == 200, body
            assert body["letter_sent_on"] == today().isoformat()

            async def delivered() -> bool:
                return bool(sink.to("p.novak@example.com"))

            await eventually(delivered, timeout=10.0)
            assert "letter_not_sent" not in await issues(client, team, rid)
    finally:
        await sink.close()
    (got,) = sink.received
    msg = got.message
    assert msg["To"] == "p.novak@example.com" and msg["From"] == "Riverside Homes <letters@riverside.example>"
    assert msg["Subject"] == f"Our letter R{rid}: decision about how you contact us"
    assert "Dear Peter Novak" in msg.get_body(("plain",)).get_content()
    (pdf,) = list(msg.iter_attachments())
    assert pdf.get_content_type() == "application/pdf" and pdf.get_filename() == f"R{rid}.pdf"
    content = pdf.get_content()
    row = await conn.fetchrow("SELECT * FROM restriction_letters WHERE restriction_id = $1", rid)
    assert content.startswith(b"%PDF-") and content == bytes(row["body_pdf"])
    assert (row["method"], row["sent_to"], row["note"]) == ("email", "p.novak@example.com", "Asked for it by email.")
    assert row["recorded_by"] == f"staff:{team.cl2.id}:Grace Okafor"
    assert await conn.fetchval("SELECT status FROM outbox WHERE kind = 'letter'") == "sent"


async def test_a_representative_gets_it_when_named(settings: Settings, keys: dict[str, str]) -> None:
    sink = await SmtpSink().start()
    try:
        relay = settings.with_(smtp_url=sink.url, ack_from="letters@housing.example")
        async with TestClient(TestServer(create_app(relay))) as client:
            api = Api(client, keys)
            team = await api.team()
            advocate = {
                "name": "Ruth Adeyemi",
                "relationship": "advocate",
                "identifiers": [{"kind": "email", "value": "ruth@advocacy.example"}],
            }
            cid = await api.customer("Brian Walsh", PHONE, ("email", "bwalsh@example.com"), representatives=[advocate])
            rep = (await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json())[
                "representatives"
            ][0]
            rid = (await api.restriction(cid, deciders=team.deciders))["id"]
            status, body = await send(client, team.cl1, rid, {"by": "email", "representative_id": rep["id"]})
            assert status == 200, body

            async def delivered() -> bool:
                return bool(sink.to("ruth@advocacy.example"))

            await eventually(delivered, timeout=10.0)
    finally:
        await sink.close()
    assert sink.to("bwalsh@example.com") == []
    assert "Dear Ruth Adeyemi" in sink.received[0].message.get_body(("plain",)).get_content()


async def test_email_without_a_relay_says_to_post_it(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Peter Novak", PHONE, ("email", "p.novak@example.com"))
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    status, body = await send(client, team.cl1, rid, {"by": "email"})
    assert status == 409 and body["error"]["code"] == "email_not_configured"
    assert "GATEWAY_SMTP_URL" in body["error"]["message"] and "post it" in body["error"]["message"]


async def test_email_with_nowhere_to_send_it_says_to_post_it(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Eileen Murphy", PHONE)
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    status, body = await send(client, team.cl1, rid, {"by": "email"})
    assert status == 409 and body["error"]["code"] == "no_email_address"
    assert "has no email address on record: post the letter instead (by: post)" in body["error"]["message"]
    assert "representative" not in body["error"]["message"]

    # A representative with an email address is offered, by id; one without is refused by name.
    await api.change_customer(
        team.cl1,
        cid,
        representatives={
            "add": [
                {"name": "Ruth Adeyemi", "relationship": "advocate"},
                {"name": "Sean Murphy", "relationship": "son", "identifiers": [{"kind": "email", "value": "s@x.org"}]},
            ]
        },
    )
    reps = (await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json())["representatives"]
    ruth, sean = (r["id"] for r in reps)
    status, body = await send(client, team.cl1, rid, {"by": "email"})
    assert status == 409 and f"representative_id {sean} (Sean Murphy)" in body["error"]["message"]
    assert body["error"]["details"] == {"representatives_with_email": [sean]}
    status, body = await send(client, team.cl1, rid, {"by": "email", "representative_id": ruth})
    assert (
        status == 409 and "Ruth Adeyemi" in body["error"]["message"] and "post the letter" in body["error"]["message"]
    )
    status, body = await send(client, team.cl1, rid, {"by": "email", "representative_id": 999999})
    assert status == 422 and body["error"]["details"][0]["field"] == "representative_id"
    # Nothing was recorded as sent.
    assert "letter_not_sent" in await issues(client, team, rid)


async def test_send_is_refused_for_a_draft_and_for_a_bad_body(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    draft = (await api.restriction(cid, deciders=[team.cl1], status="proposed"))["id"]
    status, body = await send(client, team.cl1, draft, {"by": "post"})
    assert status == 409 and body["error"]["code"] == "wrong_status"
    for bad in ({"by": "pigeon"}, {"by": "post", "representative_id": 1}, {"by": "email", "sent_on": str(today())}):
        status, body = await send(client, team.cl1, draft, bad)
        assert status == 422, bad
    # An agent may read banners, not send letters.
    status, _ = await send(client, team.agent, draft, {"by": "post"})
    assert status == 403


async def test_postal_addresses_are_checked_and_read_from_text(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Kevin Doyle", PHONE)
    for bad, says in (
        ("1 Mill Lane, Leeds", "postcode"),
        ({"lines": ["1 Mill Lane"], "postcode": "LS1"}, "not a UK postcode"),
        ({"lines": [], "postcode": "LS1 4AB"}, "at least 1"),
        ({"lines": ["x"] * 7, "postcode": "LS1 4AB"}, "at most 6"),
    ):
        resp = await client.patch(f"/v1/customers/{cid}", headers=team.cl1.headers, json={"postal_address": bad})
        err = (await resp.json())["error"]
        assert resp.status == 422 and err["details"][0]["field"].startswith("postal_address"), bad
        assert says in err["message"], (bad, err["message"])
    got = await api.change_customer(team.cl1, cid, postal_address={"lines": [" 1  Mill Lane "], "postcode": "ls14ab"})
    assert got["postal_address"] == {"lines": ["1 Mill Lane"], "postcode": "LS1 4AB"}
    # Left alone unless given; "" clears it.
    assert (await api.change_customer(team.cl1, cid, name="Kevin Doyle"))["postal_address"] is not None
    assert (await api.change_customer(team.cl1, cid, postal_address=""))["postal_address"] is None


async def test_the_import_reads_a_postal_address_column(api: Api, client: Any, team: Team) -> None:
    header = "external_ref,name,phones,postal_address\n"
    report = await api.import_csv(header + 'HMS-7,Ann Jones,07700 900001,"2 Poplar Way; Leeds LS15 7NB"\n')
    cid = report["changes"][0]["customer_id"]
    got = await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json()
    assert got["postal_address"] == {"lines": ["2 Poplar Way", "Leeds"], "postcode": "LS15 7NB"}
    report = await api.import_csv(header + "HMS-8,Bob Jones,07700 900002,Somewhere without a postcode\n")
    assert report["errors"][0]["field"] == "postal_address" and "postcode" in report["errors"][0]["message"]
    # A file without the column leaves the address alone.
    await api.import_csv("external_ref,name\nHMS-7,Ann Jones\n")
    got = await (await client.get(f"/v1/customers/{cid}", headers=team.cl1.headers)).json()
    assert got["postal_address"]["postcode"] == "LS15 7NB"


async def test_an_email_the_outbox_gave_up_on_is_on_the_report_until_posted(
    settings: Settings, keys: dict[str, str], conn: asyncpg.Connection
) -> None:
    sink = await SmtpSink().start()
    relay = settings.with_(smtp_url=sink.url, ack_from="letters@housing.example")
    try:
        async with TestClient(TestServer(create_app(relay))) as client:
            api = Api(client, keys)
            team = await api.team()
            cid = await api.customer("Peter Novak", PHONE, ("email", "p.novak@example.com"))
            rid = (await api.restriction(cid, deciders=team.deciders))["id"]
            status, _ = await send(client, team.cl1, rid, {"by": "email"})
            assert status == 200 and await issues(client, team, rid) == []

            async def settled() -> bool:
                return await conn.fetchval("SELECT status FROM outbox WHERE kind = 'letter'") == "sent"

            await eventually(settled, timeout=10.0)
            # As the sender leaves a message it could not deliver after its last attempt.
            await conn.execute("UPDATE outbox SET status = 'failed' WHERE kind = 'letter'")
            assert "letter_email_failed" in await issues(client, team, rid)
            status, _ = await send(client, team.cl1, rid, {"by": "post"})
            assert status == 200 and await issues(client, team, rid) == []
    finally:
        await sink.close()


async def _text(client: Any, team: Team, rid: int) -> str:
    resp = await client.get(f"/v1/restrictions/{rid}/letter?format=text", headers=team.cl1.headers)
    assert resp.status == 200
    return await resp.text()


async def _appeal(client: Any, team: Team, rid: int, outcome: str) -> Any:
    grounds = {"lodged_on": yesterday().isoformat(), "grounds": "I was provoked."}
    r = await client.post(f"/v1/restrictions/{rid}/appeal", headers=team.cl1.headers, json=grounds)
    assert r.status == 200, await r.text()
    decision = {"outcome": outcome, "notes": "Considered with the recordings."}
    r = await client.post(f"/v1/restrictions/{rid}/appeal/decision", headers=team.senior.headers, json=decision)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_an_upheld_appeal_makes_a_letter_due_that_gives_the_outcome(api: Api, client: Any, team: Team) -> None:
    """Policy 000 §6.3: the appeal's outcome is told in writing, whatever it is. The letter due after
    an upheld appeal gives the outcome and the arrangements, and no second right of appeal."""
    cid = await api.customer("Sandra Clarke", PHONE, postal_address="Flat 12, Willow House; Leeds; LS11 5PX")
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    first = await _text(client, team, rid)
    assert "Decision to restrict your contact with us" in first and "Your right to appeal" in first
    assert (await send(client, team.cl3, rid, {"by": "post"}))[0] == 200

    upheld = await _appeal(client, team, rid, "upheld")
    assert upheld["status"] == "active" and upheld["letter_sent_on"] is None
    assert "letter_not_sent" in await issues(client, team, rid)
    text = await _text(client, team, rid)
    assert "Your appeal: our decision" in text and "the arrangements still apply" in text
    assert "What is restricted" in text and "This is our final decision on your appeal" in text
    assert "Your right to appeal" not in text and "Why we have made this decision" not in text
    status, body = await send(client, team.cl3, rid, {"by": "post"})
    assert status == 200 and body["letter_sent_on"] == today().isoformat()
    assert "letter_not_sent" not in await issues(client, team, rid)
    # Sent: the letter read now is the outcome's still (nothing has happened since).
    assert "Your appeal: our decision" in await _text(client, team, rid)


async def test_a_lift_makes_a_letter_due_that_says_contact_is_restored(
    api: Api, client: Any, team: Team, conn: asyncpg.Connection
) -> None:
    """Lifted on appeal, or by a caution lead: the customer who was told of the restriction is told
    it is lifted (policy 000 §6.3, §7.1). The report lists it until the letter is recorded, once."""
    cid = await api.customer("Sandra Clarke", PHONE, postal_address="Flat 12, Willow House; Leeds; LS11 5PX")
    on_appeal = (await api.restriction(cid, deciders=team.deciders))["id"]
    assert (await send(client, team.cl3, on_appeal, {"by": "post"}))[0] == 200
    lifted = await _appeal(client, team, on_appeal, "lifted")
    assert lifted["status"] == "lifted" and lifted["letter_sent_on"] is None
    assert await issues(client, team, on_appeal) == ["letter_not_sent"]
    text = await _text(client, team, on_appeal)
    assert "Your appeal: the restriction is lifted" in text and "the restriction no longer applies" in text
    assert "What is restricted" not in text and "DRAFT" not in text
    assert (await send(client, team.cl3, on_appeal, {"by": "post"}))[0] == 200
    assert await issues(client, team, on_appeal) == []
    status, body = await send(client, team.cl3, on_appeal, {"by": "post"})
    assert status == 409 and body["error"]["code"] == "letter_already_sent"

    by_lead = (await api.restriction(cid, "appointment_only", deciders=team.deciders))["id"]
    assert (await send(client, team.cl3, by_lead, {"by": "post"}))[0] == 200
    r = await client.post(f"/v1/restrictions/{by_lead}/lift", headers=team.cl1.headers, json={"reason": "Calmer."})
    assert r.status == 200
    text = await _text(client, team, by_lead)
    assert "The restriction on your contact with us is lifted" in text and "appeal of" not in text
    # Proposed and lifted before anyone decided it: the customer was never told, nothing is due.
    never = await api.restriction(cid, "caution", params={"note": "x"}, deciders=team.deciders[:1], status="proposed")
    r = await client.post(f"/v1/restrictions/{never['id']}/lift", headers=team.cl1.headers, json={"reason": "No."})
    assert r.status == 200 and await issues(client, team, never["id"]) == []
    status, body = await send(client, team.cl3, never["id"], {"by": "post"})
    assert status == 409 and body["error"]["code"] == "no_letter_due"


async def test_a_letter_made_before_the_restriction_changed_is_not_recorded(
    api: Api, client: Any, team: Team, conn: asyncpg.Connection, settings: Settings
) -> None:
    """The letter is made, then recorded under the restriction's lock: an appeal decided or a lift in
    between would have it record a letter that no longer says what holds."""
    cid = await api.customer("Sandra Clarke", PHONE, postal_address="Flat 12, Willow House; Leeds; LS11 5PX")
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    pol = lc.Policy(rule=lc.parse_rule(settings.activation_rule), calendar=settings.calendar())
    facts = await reports.letter_facts(conn, rid, pol, today())
    letter = render(facts, pol.calendar)
    await conn.execute("UPDATE restrictions SET updated_at = now() WHERE id = $1", rid)  # changed meanwhile
    with pytest.raises(StateConflict) as refused:
        await transitions.record_letter(
            conn,
            rid,
            LetterSentIn(method="post"),
            letter,
            pol,
            lc.Actor(f"staff:{team.cl3.id}:x", team.cl3.id),
            today(),
            made_from=facts.restriction.updated_at,
        )
    assert refused.value.code == "letter_outdated"
    assert await conn.fetchval("SELECT count(*) FROM restriction_letters") == 0


async def test_the_lift_letter_gives_the_day_it_was_lifted(api: Api, client: Any, team: Team) -> None:
    """A restriction due to start tomorrow, lifted today: its last day is kept as tomorrow (it may not
    end before it starts), but the customer is told it no longer applies from today."""
    cid = await api.customer("Sandra Clarke", PHONE, postal_address="Flat 12, Willow House; Leeds; LS11 5PX")
    tomorrow = (today() + timedelta(days=1)).isoformat()
    rid = (await api.restriction(cid, deciders=team.deciders, valid_from=tomorrow))["id"]
    assert (await send(client, team.cl3, rid, {"by": "post"}))[0] == 200
    r = await client.post(f"/v1/restrictions/{rid}/lift", headers=team.cl1.headers, json={"reason": "Calmer."})
    assert r.status == 200 and (await r.json())["valid_to"] == tomorrow
    assert f"From {format_date(today())} the restriction no longer applies" in await _text(client, team, rid)
