"""Case references in subjects: the configurable pattern is vetted at start-up (bounded, no
backtracking), finds references bracketed or not, and the generic decide entry uses it too."""

from __future__ import annotations

import pytest

from gateway.caseref import CaseRefPattern, PatternRejected, resolve, vet
from gateway.settings import Settings, SettingsError
from tests.factory import bearer
from tests.helpers import running


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a+)+b", "upper bound"),
        (r"[A-Z]+-\d+", "upper bound"),
        (r"[A-Z]*-[0-9]{1,5}", "upper bound"),
        (r"(?:ab){1,20}", "single character"),
        (r"(a|aa){1,20}", "single character"),
        (r"(.)\1", "back-references"),
        (r"([A-Z]{2})-([0-9]{2})", "at most one capturing group"),
        (r"[A-Z]{0,3}", "empty string"),
        (r"[A-Z]{1,64}[a-z]{1,64}[0-9]{1,64}", "ways to match"),
        (r"[A-Z]{1,65}", "upper bound"),
        ("(", "not a regular expression"),
        ("x" * 201, "1 to 200"),
    ],
)
def test_patterns_that_could_backtrack_or_cannot_work_are_refused(pattern, why):
    with pytest.raises(PatternRejected, match=why):
        vet(pattern)


def test_a_bad_pattern_stops_start_up_naming_the_setting():
    with pytest.raises(SettingsError, match="GATEWAY_CASE_REF_PATTERN"):
        Settings.from_env({"GATEWAY_CASE_REF_PATTERN": "(a+)+$"})
    assert Settings.from_env({"GATEWAY_CASE_REF_PATTERN": r"(?:CMP|HSG)-[0-9]{1,8}"}).case_ref_pattern


@pytest.mark.parametrize("bad", ["two@one@x.org", "a@b.org, c@d.org", "Housing <a@b.org>", "a@b.org\r\nBcc: c@d"])
def test_ack_from_must_be_one_plain_address(bad):
    with pytest.raises(SettingsError, match="GATEWAY_ACK_FROM"):
        Settings.from_env({"GATEWAY_ACK_FROM": bad})


def test_references_bracketed_first_then_in_order():
    found = CaseRefPattern().candidates("RE: CMP-7301 and [HSG-12], not COVID19")
    assert [(c.reference, c.bracketed) for c in found] == [("HSG-12", True), ("CMP-7301", False)]


def test_a_reference_on_record_wins_over_one_that_is_not():
    on_record = {"CMP-7301"}.__contains__
    assert resolve(CaseRefPattern(), None, "RE: COVID-19 and CMP-7301", on_record) == "CMP-7301"
    assert resolve(CaseRefPattern(), None, "RE: COVID-19", on_record) == "COVID-19"  # the log checks it
    assert resolve(CaseRefPattern(), " CMP-1 ", "RE: CMP-7301", on_record) == "CMP-1"  # the caller's own


async def test_the_generic_entry_finds_an_unbracketed_reference(settings, conn, keys):
    """The issue's own example: an unbracketed reference about an exhausted complaint is filed."""
    async with running(settings, conn) as (client, _):
        body = {"channel": "email", "from": "p.novak@example.com", "subject": "RE: CMP-2041 I still disagree"}
        r = await client.post("/v1/contacts", json=body, headers=bearer(keys["channel"]))
        out = await r.json()
        assert out["action"] == "auto_acknowledge" and out["matched"]["case_id"] is not None
