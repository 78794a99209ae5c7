"""The letter as the customer gets it: an A4 PDF on the provider's letterhead, read back with
Debian's poppler-utils (pdftotext, pdfinfo, pdftoppm) as a customer's reader would read it.

Page 1 of each kind's letter is saved as a PNG under test-artefacts/ to be looked at."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.letters import keep_together
from gateway.lifecycle import APPEAL_WINDOW_WORKING_DAYS
from gateway.rules.calendar import Calendar, format_date
from gateway.rules.registry import KINDS
from gateway.settings import Settings
from gateway.store.index import load_closures
from tests.factory import PHONE, Api, Team, today

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(
        shutil.which("pdftotext") is None, reason="needs poppler-utils (tools/install-test-peers installs it)"
    ),
]

ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts"
MM = 72 / 25.4  # PDF points per millimetre
# Where a DL window envelope (window 90 x 45 mm, 20 mm in, 15 mm up) shows the sheet, allowing for
# the folded A4 to settle anywhere in the 110 mm-high envelope: 20-100 mm across, 50-84 mm down.
WINDOW_X, WINDOW_Y = (20 * MM, 100 * MM), (50 * MM, 84 * MM)
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
    '<rect width="40" height="40" rx="6" fill="#0b5"/><path d="M8 22 L20 10 L32 22 V32 H8 Z" fill="#fff"/></svg>'
)
ADDRESS = {"lines": ["Flat 3, Oak Court", "12 Beech Road", "Leeds"], "postcode": "LS6 2AB"}
PARAMS: dict[str, dict[str, Any]] = {
    "caution": {"note": "Lone working: visit in pairs."},
    "contact_limit": {"limit": 3, "period": "week"},
    "set_times": {"windows": [{"days": ["tue", "thu"], "start": "10:00", "end": "12:00"}]},
}


@pytest.fixture
async def provider_client(settings: Settings, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    logo = tmp_path / "logo.svg"
    logo.write_text(LOGO)
    named = settings.with_(
        provider_name="Riverside Homes",
        provider_address="Riverside House\n1 Mill Lane\nLeeds\nLS1 4AB",
        provider_email="contact@riverside.example",
        provider_web_form_url="https://riverside.example/contact",
        provider_phone="0113 496 0000",
        provider_logo=str(logo),
    )
    async with TestClient(TestServer(create_app(named))) as client:
        yield client


def pdf_text(pdf: bytes, *args: str) -> str:
    out = subprocess.run(["pdftotext", *args, "-", "-"], input=pdf, capture_output=True, check=True)
    return out.stdout.decode()


def words(text: str) -> str:
    return " ".join(text.split())


def pdf_info(pdf: bytes) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def word_boxes(pdf: bytes) -> list[tuple[str, float, float, float, float]]:
    """(word, xMin, yMin, xMax, yMax) in points from the top left of page 1."""
    html = pdf_text(pdf, "-bbox", "-f", "1", "-l", "1")
    found = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', html)
    return [(w, float(a), float(b), float(c), float(d)) for a, b, c, d, w in found]


def screenshot(pdf: bytes, name: str) -> Path:
    ARTEFACTS.mkdir(exist_ok=True)
    source = ARTEFACTS / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", "-singlefile", source, ARTEFACTS / name])
    return ARTEFACTS / f"{name}.png"


async def letter_pdf(client: Any, team: Team, rid: int, query: str = "") -> bytes:
    resp = await client.get(
        f"/v1/restrictions/{rid}/letter{query}", headers={**team.cl1.headers, "Accept": "application/pdf"}
    )
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/pdf"
    return bytes(await resp.read())


async def test_each_kinds_letter_prints_with_all_a_customer_needs(
    provider_client: Any, keys: dict[str, str], conn: asyncpg.Connection
) -> None:
    api = Api(provider_client, keys)
    team = await api.team()
    cid = await api.customer("Aisha Rahman", PHONE, postal_address=ADDRESS)
    await api.change_customer(
        team.cl1, cid, representatives={"add": [{"name": "Ruth Adeyemi", "relationship": "advocate"}]}
    )
    case_id = await api.case(cid, "CMP-77", "exhausted")
    params = {**PARAMS, "named_contact": {"staff_id": team.cl3.id}, "closed_issue": {"case_id": case_id}}
    calendar = Calendar(ZoneInfo("Europe/London"), await load_closures(conn))
    appeal_by = format_date(calendar.working_days_after(today(), APPEAL_WINDOW_WORKING_DAYS))
    for kind in KINDS:
        r = await api.restriction(cid, kind, params=params.get(kind, {}), deciders=team.deciders)
        pdf = await letter_pdf(provider_client, team, r["id"])
        text = words(pdf_text(pdf))
        plain = await (
            await provider_client.get(f"/v1/restrictions/{r['id']}/letter?format=text", headers=team.cl1.headers)
        ).text()
        restricted = words(plain.split("What is restricted\n", 1)[1].split("\n\n", 1)[0])
        for needed in (
            "Aisha Rahman",
            "Flat 3, Oak Court",
            "12 Beech Road",
            "LS6 2AB",
            restricted,
            f"We will review it by {format_date(date.fromisoformat(r['review_due']))}",
            f"Please write to us by {appeal_by}",
            "Housing Ombudsman Service",
            "0300 111 3000",
            "info@housing-ombudsman.org.uk",
            "PO Box 1484, Unit D, Preston, PR2 0ET",
            # The letterhead: who it is from and every way to reach them.
            "Riverside Homes",
            "1 Mill Lane",
            "LS1 4AB",
            "0113 496 0000",
            "contact@riverside.example",
            "https://riverside.example/contact",
        ):
            assert needed in text, (kind, needed)
        info = pdf_info(pdf)
        assert info["Tagged"].strip() == "yes" and "A4" in info["Page size"]
        assert info["Title"].strip() == f"Decision to restrict your contact with us (R{r['id']})"
        pages = int(info["Pages"])
        for page in range(1, pages + 1):
            footer = words(pdf_text(pdf, "-f", str(page), "-l", str(page)))
            assert f"Our reference: R{r['id']}" in footer and f"Page {page} of {pages}" in footer
        # The customer's name and address are where the envelope's window shows them.
        block = {"Aisha", "Rahman", "Oak", "Beech", "LS6", "2AB"}
        boxes = [b for b in word_boxes(pdf) if b[0] in block and b[2] < 90 * MM]  # above "Dear ..."
        assert len(boxes) == 6, boxes
        for word, x0, y0, x1, y1 in boxes:
            assert WINDOW_X[0] <= x0 and x1 <= WINDOW_X[1], (word, x0 / MM, x1 / MM)
            assert WINDOW_Y[0] <= y0 and y1 <= WINDOW_Y[1], (word, y0 / MM, y1 / MM)
        assert screenshot(pdf, f"letter-{kind}").stat().st_size > 10_000


async def test_large_print_on_request_or_by_the_customers_adjustments(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Eileen Murphy", PHONE, postal_address="Flat 1, Larch House\nLeeds LS12 3QG")
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    standard = await letter_pdf(client, team, rid)
    large = await letter_pdf(client, team, rid, "?large_print=1")
    assert type_size(large) >= 1.4 * type_size(standard)
    assert type_size(large) >= 15  # 16 pt type: a word box at least 15 pt tall
    screenshot(large, "letter-large-print")
    # A customer whose adjustments ask for large print gets it without asking.
    await api.change_customer(team.cl1, cid, adjustments={"text": "Partially sighted", "flags": ["needs_large_print"]})
    assert type_size(await letter_pdf(client, team, rid)) == type_size(large)
    assert type_size(await letter_pdf(client, team, rid, "?large_print=0")) == type_size(standard)


def type_size(pdf: bytes) -> float:
    """The height of the word "Dear" on page 1, in points: the size of the body's type."""
    ((_, _, top, _, bottom),) = [b for b in word_boxes(pdf) if b[0] == "Dear"]
    return round(bottom - top, 1)


async def test_format_and_flags_are_checked(api: Api, client: Any, team: Team) -> None:
    cid = await api.customer("Margaret Hughes", PHONE)
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    for query, field in (("?format=docx", "format"), ("?large_print=maybe", "large_print")):
        resp = await client.get(f"/v1/restrictions/{rid}/letter{query}", headers=team.cl1.headers)
        assert resp.status == 422, query
        assert (await resp.json())["error"]["details"][0]["field"] == field
    # No address on record: the letter says so where the address would be, rather than print blank.
    pdf = await letter_pdf(client, team, rid, "?format=pdf")
    assert "No postal address on record" in words(pdf_text(pdf))


async def test_printing_leaves_the_event_loop_free(api: Api, client: Any, team: Team) -> None:
    """PDFs are printed on worker threads: a health check answers while several print."""
    cid = await api.customer("Margaret Hughes", PHONE)
    rid = (await api.restriction(cid, deciders=team.deciders))["id"]
    loop = asyncio.get_running_loop()
    printing = [asyncio.ensure_future(letter_pdf(client, team, rid)) for _ in range(4)]
    await asyncio.sleep(0.05)  # the requests are in: their handlers are printing
    start = loop.time()
    assert (await client.get("/healthz")).status == 200
    answered = loop.time() - start
    pdfs = await asyncio.gather(*printing)
    printed = loop.time() - start
    assert all(p.startswith(b"%PDF-") for p in pdfs)
    assert answered < printed / 2, (answered, printed)


async def test_postcodes_and_web_addresses_are_kept_whole_and_text_escaped() -> None:
    html = str(keep_together("Write to 1 Mill Lane, Leeds, LS1 4AB or https://x.example/a?b=1&c=2. <b>"))
    assert '<span class="unbroken">LS1 4AB</span>' in html
    assert '<span class="unbroken">https://x.example/a?b=1&amp;c=2</span>.' in html
    assert html.endswith("&lt;b&gt;")


async def test_the_letters_after_an_appeal_print_their_outcome(provider_client: Any, keys: dict[str, str]) -> None:
    """An upheld appeal's letter and a lift's, as the customer reads them on paper (page 1 of each
    is saved to look at): the outcome, its date, and the address in the envelope's window."""
    api = Api(provider_client, keys)
    team = await api.team()
    cid = await api.customer("Aisha Rahman", PHONE, postal_address=ADDRESS)
    kept = (await api.restriction(cid, "set_times", params=PARAMS["set_times"], deciders=team.deciders))["id"]
    lifted = (await api.restriction(cid, "appointment_only", deciders=team.deciders))["id"]
    for rid, outcome in ((kept, "upheld"), (lifted, "lifted")):
        grounds = {"lodged_on": today().isoformat(), "grounds": "I only call about repairs."}
        r = await provider_client.post(f"/v1/restrictions/{rid}/appeal", headers=team.cl1.headers, json=grounds)
        assert r.status == 200, await r.text()
        r = await provider_client.post(
            f"/v1/restrictions/{rid}/appeal/decision",
            headers=team.senior.headers,
            json={"outcome": outcome, "notes": "Considered with the call recordings."},
        )
        assert r.status == 200, await r.text()
    upheld = await letter_pdf(provider_client, team, kept)
    text = words(pdf_text(upheld))
    for needed in (
        "Your appeal: our decision",
        "the arrangements still apply",
        "Tuesdays and Thursdays",
        "This is our final decision on your appeal",
        "Housing Ombudsman",
        "LS6 2AB",
    ):
        assert needed in text, needed
    assert "Your right to appeal" not in text
    screenshot(upheld, "letter-appeal-upheld")
    ended = await letter_pdf(provider_client, team, lifted)
    text = words(pdf_text(ended))
    assert "Your appeal: the restriction is lifted" in text and f"From {format_date(today())}" in text
    assert "What is restricted" not in text and "DRAFT" not in text
    # Only this restriction ends: the set times upheld above still apply, and the letter says so.
    assert "you can contact us again by visits to our offices" in text
    assert "Any other arrangement we have written to you about still applies" in text
    screenshot(ended, "letter-appeal-lifted")
