"""Input an attacker sends at the HTTP edge: each gets a clear 4xx (never a 500), and every attempt
at a channel is in the contact log, even one refused before its body was read."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from tests.factory import bearer, restriction_body
from tests.helpers import eventually, running
from tests.helpers import logged_contacts as rows

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://gateway.example.org"
VOICE, FALLBACK = "/v1/channels/twilio/voice", "/v1/channels/twilio/fallback"
NOT_UTF8_PART = b'--xx\r\nContent-Disposition: form-data; name="From"\r\n\r\n\xff\xfe\r\n--xx--\r\n'
UNREADABLE_FORMS = {
    "multipart without a boundary": ("multipart/form-data", b"From=07700900001"),
    "broken multipart": ("multipart/form-data; boundary=xx", b"garbage"),
    "multipart value not UTF-8": ("multipart/form-data; boundary=xx", NOT_UTF8_PART),
    "raw value not UTF-8": ("application/x-www-form-urlencoded", b"From=\xff\xfe&CallSid=CA1"),
    "escaped value not UTF-8": ("application/x-www-form-urlencoded", b"From=%FF%FE&CallSid=CA1"),
    "unknown charset": ("application/x-www-form-urlencoded; charset=bogus-xyz", b"From=07700900001"),
}


@pytest.fixture
async def twilio(settings, conn):
    async with running(settings.with_(twilio_auth_token=TOKEN, public_url=PUBLIC), conn, demo=False) as (c, _):
        yield c


@pytest.fixture
def admin(keys):
    return bearer(keys["admin"])


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = (await response.json())["error"]
    return body


@pytest.mark.parametrize("path", [VOICE, FALLBACK])
@pytest.mark.parametrize("case", list(UNREADABLE_FORMS))
async def test_an_unreadable_twilio_form_is_400_and_logged(twilio, conn, path, case):
    content_type, body = UNREADABLE_FORMS[case]
    r = await twilio.post(path, data=body, headers={"Content-Type": content_type})
    assert (await error_of(r, 400))["code"] in ("malformed_form", "unsupported_media_type")
    (row,) = await rows(conn, "status = 'malformed'")
    assert row["channel"] == "phone" and row["action"] == "hold" and row["error"]


@pytest.mark.parametrize("path", ["/v1/contacts", "/v1/channels/flat", "/v1/cases"])
async def test_a_json_integer_of_5001_digits_is_malformed_json(client, admin, conn, path):
    body = '{"channel": "phone", "from": "07700 900001", "contact_id": "c1", "provider_id": ' + "7" * 5001 + "}"
    r = await client.post(path, data=body, headers={**admin, "Content-Type": "application/json"})
    assert (await error_of(r, 400))["code"] == "malformed_json"
    if path != "/v1/cases":  # a channel: the attempt is a contact, and logged
        (row,) = await rows(conn, "status = 'malformed'")
        assert "digits" in row["error"]


@pytest.mark.parametrize("path", ["/v1/restrictions/{}/events", "/v1/customers/{}", "/v1/rulesets/{}"])
@pytest.mark.parametrize("raw", ["%C2%B2", "%D9%A1", "%EF%BC%91", "0", "-1", "1.0", "9223372036854775808"])
async def test_ids_in_paths_are_ascii_digits_in_range(client, admin, path, raw):
    r = await client.get(path.format(raw), headers=admin)
    err = await error_of(r, 422)
    assert err["details"][0]["field"] in ("id", "version")


async def test_ids_in_paths_are_bounded_by_their_columns(client, admin):
    for path in ("/v1/customers/9223372036854775807", "/v1/rulesets/2147483647"):
        assert (await error_of(await client.get(path, headers=admin), 404))["code"] == "not_found"
    assert (await error_of(await client.get("/v1/rulesets/2147483648", headers=admin), 422))["details"]


@pytest.mark.parametrize("raw", ["%D9%A1", "%EF%BC%91", "1_0", "%2B1", "%201", "9223372036854775808"])
async def test_query_integers_are_ascii_digits_in_range(client, admin, raw):
    r = await client.get(f"/v1/contacts?customer_id={raw}", headers=admin)
    assert (await error_of(r, 422))["details"][0]["field"] == "customer_id"


BIG = 2**63
INTEGER_FIELDS = [
    ("/v1/cases", {"customer_id": BIG, "reference": "C-1", "subject": "s"}, "customer_id"),
    ("/v1/restrictions", {"customer_id": BIG}, "customer_id"),
    ("/v1/restrictions", {"deciders": [1, BIG]}, "deciders.1"),
    ("/v1/restrictions", {"review_approver": BIG}, "review_approver"),
    ("/v1/restrictions", {"params": {"kind": "named_contact", "staff_id": BIG}}, "params.named_contact.staff_id"),
    ("/v1/restrictions", {"params": {"kind": "closed_issue", "case_id": BIG}}, "params.closed_issue.case_id"),
    ("/v1/restrictions", {"equality_note": {"staff_id": BIG, "note": "n"}}, "equality_note.staff_id"),
    ("/v1/restrictions/1/decide", {"staff_id": BIG}, "staff_id"),
    ("/v1/restrictions/1/lift", {"staff_id": BIG, "reason": "r"}, "staff_id"),
    ("/v1/restrictions/1/review", {"outcome": "lift", "staff_id": BIG}, "staff_id"),
    ("/v1/restrictions/1/appeal/decision", {"staff_id": BIG, "outcome": "upheld", "notes": "n"}, "staff_id"),
]


@pytest.mark.parametrize(("path", "body", "field"), INTEGER_FIELDS)
async def test_integers_beyond_their_column_are_422_naming_the_field(client, admin, team, path, body, field):
    # Restriction steps are a person's (an admin key is no one): a caution lead, a manager for appeals.
    person = team.manager if path.endswith("/appeal/decision") else team.cl1
    r = await client.post(path, json=body, headers=person.headers if "/restrictions" in path else admin)
    err = await error_of(r, 422)
    assert field in [d["field"] for d in err["details"]], err


async def test_a_json_body_over_the_limit_is_413_and_logged_unread(client, keys, conn):
    body = json.dumps({"channel": "phone", "from": "07700 900001", "body": "x" * 2_500_000}).encode()
    headers = {**bearer(keys["channel"]), "Content-Type": "application/json"}
    r = await client.post("/v1/contacts", data=io.BytesIO(body), headers=headers)
    assert (await error_of(r, 413))["code"] == "too_large"
    (row,) = await rows(conn, "status = 'malformed'")
    assert str(len(body)) in row["error"] and "127.0.0.1" in row["error"]


async def test_a_twilio_form_of_100000_fields_is_413_and_logged(twilio, conn):
    form = "&".join(f"f{i}=1" for i in range(100_000))
    r = await twilio.post(VOICE, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (await error_of(r, 413))["code"] == "too_large"
    (row,) = await rows(conn, "status = 'malformed'")
    assert row["channel"] == "phone" and "fields" in row["error"]


async def test_a_forbidden_role_is_not_told_who_is_allowed(client, team):
    r = await client.get("/v1/staff/1", headers=team.agent.headers)
    err = await error_of(r, 403)
    assert err["details"] is None
    assert not any(role in err["message"] for role in ("admin", "agent", "caution_lead", "manager"))


async def test_an_unsigned_twilio_request_is_not_told_the_signed_url(twilio, conn):
    r = await twilio.post(VOICE, data={"From": "07700 900001", "CallSid": "CA1"})
    err = await error_of(r, 403)
    assert PUBLIC not in err["message"] and "gateway.example.org" not in json.dumps(err)
    (row,) = await rows(conn, "provider_id = 'CA1'")
    assert row["status"] == "rejected"


async def test_database_constraints_are_not_named_to_the_caller(client, admin, api, conn):
    """A duplicate the store did not foresee (two cases racing for one reference) reaches the
    database's unique constraint: the caller is told which field, not the constraint's name."""
    cid = await api.customer("Dup")
    await conn.execute("ALTER TABLE cases ADD CONSTRAINT cases_subject_once UNIQUE (subject)")
    try:
        case = {"customer_id": cid, "reference": "R-1", "subject": "s"}
        assert (await client.post("/v1/cases", json=case, headers=admin)).status == 201
        r = await client.post("/v1/cases", json={**case, "reference": "R-2"}, headers=admin)
        err = await error_of(r, 409)
    finally:
        await conn.execute("ALTER TABLE cases DROP CONSTRAINT cases_subject_once")
    assert "cases_subject_once" not in json.dumps(err) and "constraint" not in json.dumps(err)


@pytest.mark.parametrize(
    "sender", ["０７７００９００００３", "０７７００ ９００００３", "٠٧٧٠٠٩٠٠٠٠٣", "００４４７７００９００００３"]
)
async def test_unicode_digits_reach_the_restricted_customer(client, api, team, keys, sender):
    cid = await api.customer("Aisha", ("phone", "07700 900003"))
    await api.restriction(cid, "written_only", deciders=team.deciders)

    async def deflected() -> bool:
        r = await client.post(
            "/v1/contacts", json={"channel": "phone", "from": sender}, headers=bearer(keys["channel"])
        )
        d = await r.json()
        return bool(d["action"] == "deflect" and d["matched"]["customer_ids"] == [cid])

    await eventually(deflected, timeout=2.0)


@pytest.mark.parametrize("sender", ["＋２６６６９６６８７", "２６６６９６６８７", "٠"])
async def test_a_withheld_placeholder_in_other_digits_is_withheld(client, keys, conn, sender):
    """Twilio's placeholder for a withheld number, written in fullwidth digits, once parsed as the
    (possible) UK number +44266696687 and was looked up as if it were someone's."""
    r = await client.post("/v1/contacts", json={"channel": "phone", "from": sender}, headers=bearer(keys["channel"]))
    assert r.status == 201, await r.text()
    (row,) = await rows(conn, "status = 'decided'")
    assert row["sender_kind"] == "withheld"


async def test_text_no_record_can_hold_is_422_naming_the_field(client, admin, api, team):
    """Found by schemathesis: NUL or a lone surrogate reached PostgreSQL and came back as a 500."""
    for raw, field in (('"Ann\\u0000"', "representatives.0.name"), ('"\\udead"', "representatives.0.name")):
        body = '{"name": "A", "representatives": [{"name": ' + raw + ', "relationship": "son"}]}'
        r = await client.post("/v1/customers", data=body, headers={**admin, "Content-Type": "application/json"})
        assert (await error_of(r, 422))["details"][0]["field"] == field
    cid = await api.customer("B")
    restriction = await api.restriction(cid, "caution", deciders=team.deciders, params={"note": "n"})
    r = await client.get(f"/v1/restrictions/{restriction['id']}/events?why=audit%00check", headers=admin)
    assert (await error_of(r, 422))["details"][0]["field"] == "why"


async def test_a_case_patch_cannot_null_the_subject_or_status(client, admin, api):
    cid = await api.customer("Pat")
    r = await client.post("/v1/cases", json={"customer_id": cid, "reference": "P-1", "subject": "s"}, headers=admin)
    case_id = (await r.json())["id"]
    for field in ("subject", "status"):
        r = await client.patch(f"/v1/cases/{case_id}", json={field: None}, headers=admin)
        assert (await error_of(r, 422))["details"][0]["field"] == field


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00"])
async def test_a_since_at_the_ends_of_the_calendar_is_422(client, admin, since):
    r = await client.get(f"/v1/contacts?customer_id=1&since={since}", headers=admin)
    assert (await error_of(r, 422))["details"][0]["field"] == "since"


@pytest.mark.parametrize("path", ["/v1/contacts", "/v1/channels/flat", "/v1/channels/email", "/v1/channels/webform"])
@pytest.mark.parametrize("authorization", [None, "Bearer gwk_not-a-key", "Basic abc", "Bearer gwk_ünïcode"])
async def test_a_contact_refused_for_its_key_is_401_and_logged(client, conn, path, authorization):
    """A platform left on a rotated key must not lose its contacts from the log (as a bad Twilio
    signature does not); a key that is not even UTF-8 is refused the same way, not a 500."""
    headers = {} if authorization is None else {"Authorization": authorization}
    r = await client.post(path, json={"channel": "phone", "from": "07700 900001"}, headers=headers)
    await error_of(r, 401)
    logged = await rows(conn, "status = 'rejected'")
    assert len(logged) == 1 and "API key" in logged[0]["error"]


async def test_an_empty_email_is_400_and_logged(client, keys, conn):
    headers = {**bearer(keys["channel"]), "Content-Type": "message/rfc822"}
    assert (await error_of(await client.post("/v1/channels/email", data=b"", headers=headers), 400))["code"] == (
        "empty_message"
    )
    assert [r["status"] for r in await rows(conn, "channel = 'email'")] == ["malformed"]


@pytest.mark.parametrize("next_path", ["http://[", "//[", "http://[::1"])
async def test_a_sign_in_next_that_is_no_url_goes_to_the_agent_screen(client, next_path):
    r = await client.get("/sign-in", params={"next": next_path})
    assert r.status == 200
    assert 'name="next" value="/agent"' in await r.text()


async def test_a_customer_import_row_with_a_nul_is_refused_and_the_rest_kept(client, admin, conn):
    text = "external_ref,name\nN1,An\x00n\nN2,Bea\n"
    r = await client.post("/v1/customers/import", headers={**admin, "Content-Type": "text/csv"}, data=text)
    assert r.status == 200, await r.text()
    report = await r.json()
    assert report["errors"] == [{"line": 2, "field": "name", "message": "contains a NUL character"}]
    assert await conn.fetchval("SELECT count(*) FROM customers WHERE external_ref IN ('N1', 'N2')") == 1


@pytest.mark.parametrize("day", ["9999-06-01", "1066-10-14"])
async def test_a_restriction_day_beyond_the_calendar_is_422(client, team, api, day):
    cid = await api.customer("Edith", ("phone", "07700 900321"))
    body = restriction_body(cid, "written_only", valid_from=day)
    r = await client.post("/v1/restrictions", headers=team.cl1.headers, json=body)
    assert (await error_of(r, 422))["details"][0]["field"] == "valid_from"


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
async def test_a_rule_test_case_at_the_ends_of_the_calendar_fails_and_says_why(client, team, at):
    """It was a 500 on test and publish (a review or counter period around year 1 or 9999 is in no
    year), for good once saved in a draft. It is a failed case now, so the draft cannot be published."""
    published = await (await client.get("/v1/rulesets/1", headers=team.manager.headers)).json()
    case = {
        "name": "t",
        "contact": {"channel": "phone", "from": "07700900001"},
        "situation": {"at": at, "restrictions": [{"params": {"kind": "written_only"}}]},
        "expect": {"action": "route"},
    }
    r = await client.post(
        "/v1/rulesets/1/test", headers=team.manager.headers, json={"rules": published["rules"], "tests": [case]}
    )
    assert r.status == 200, await r.text()
    out = await r.json()
    assert not out["passed"] and "not between 1900 and 2199" in out["results"][0]["problems"][0]


async def test_an_api_key_that_is_not_utf8_is_401_not_a_server_error(client, conn):
    """Header bytes that are not UTF-8 reach the gateway as lone surrogates, which no key hashes."""
    body = b'{"channel": "phone", "from": "07700 900001"}'
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /v1/contacts HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer \xff\xfe\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    reply = await reader.read()
    writer.close()
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert len(await rows(conn, "status = 'rejected'")) == 1


async def test_a_stored_day_from_before_the_bounds_still_reads(client, team, api, conn):
    """Days are bounded as people enter them, not as they are read back: a restriction saved before
    the bounds, with an incident in 1850, is still shown, reviewed and lifted."""
    cid = await api.customer("Ada", ("phone", "07700 900654"))
    made = await api.restriction(cid, "written_only", deciders=team.deciders)
    await conn.execute(
        "UPDATE restrictions SET incidents = jsonb_set(incidents, '{0,on}', '\"1850-01-01\"') WHERE id = $1", made["id"]
    )
    r = await client.get(f"/v1/restrictions/{made['id']}", params={"why": "check"}, headers=team.cl1.headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["incidents"][0]["on"] == "1850-01-01"
    lifted = await client.post(f"/v1/restrictions/{made['id']}/lift", headers=team.cl1.headers, json={"reason": "done"})
    assert lifted.status == 200, await lifted.text()
