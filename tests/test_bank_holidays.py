"""Each UK nation's bank holidays: the provider's (GATEWAY_BANK_HOLIDAYS) close its set-times windows.

St Patrick's Day is a bank holiday in Northern Ireland and an ordinary Tuesday in England in 2026;
2 January and St Andrew's Day are Scotland's own.
"""

from __future__ import annotations

from datetime import date

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.rules.calendar import Calendar
from tests.factory import Api, bearer

ST_PATRICKS_DAY = "2026-03-17T10:30:00+00:00"  # a Tuesday, in a window open Tuesdays 09:00–12:00
WINDOWS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "12:00"}]


def test_each_nation_has_its_own_days():
    england, scotland, ni = Calendar(), Calendar(nation="SCT"), Calendar(nation="NIR")
    assert ni.is_holiday(date(2026, 3, 17)) and not england.is_holiday(date(2026, 3, 17))
    assert scotland.is_holiday(date(2026, 11, 30)) and not england.is_holiday(date(2026, 11, 30))
    assert england.is_holiday(date(2026, 4, 6)) and not scotland.is_holiday(date(2026, 4, 6))  # Easter Monday
    # An appeal's working days, say, count past the nation's own holidays only.
    assert ni.working_days_after(date(2026, 3, 16), 1) == date(2026, 3, 18)
    assert england.working_days_after(date(2026, 3, 16), 1) == date(2026, 3, 17)


async def _call_on_st_patricks_day(settings, keys, nation: str) -> dict:
    async with TestClient(TestServer(create_app(settings.with_(bank_holidays=nation)))) as client:
        api = Api(client, keys)
        team = await api.team()
        cid = await api.customer("Orla Byrne", ("phone", "07700 900777"))
        await api.restriction(cid, "set_times", params={"windows": WINDOWS}, deciders=team.deciders)
        await api.enforced(cid, team.agent)
        body = {"channel": "phone", "from": "07700 900777", "received_at": ST_PATRICKS_DAY}
        r = await client.post("/v1/contacts", headers=bearer(keys["channel"]), json=body)
        assert r.status == 201, await r.text()
        return await r.json()


async def test_a_provider_in_northern_ireland_is_closed_on_st_patricks_day(settings, keys):
    d = await _call_on_st_patricks_day(settings, keys, "NIR")
    assert d["action"] == "deflect"
    assert "The next time you can call is tomorrow at 9am" in d["customer_message"]


async def test_a_provider_in_england_takes_the_same_call(settings, keys):
    assert (await _call_on_st_patricks_day(settings, keys, "ENG"))["action"] == "route"
