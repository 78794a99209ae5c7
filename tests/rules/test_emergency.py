"""Anyone turned away is told how to report an emergency, when the provider has an emergency line;
without one, nothing promises help the gateway does not give (the contact-limit letter included)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.rules.context import Match
from gateway.rules.engine import decide
from gateway.rules.kind import LetterWords
from gateway.rules.kinds.contact_limit import ContactLimit
from gateway.rules.kinds.contact_limit import letter as limit_letter

from .factories import PROVIDER, TUE_1030, TUE_1500, bundle, context, restriction
from .factories import contact as make_contact

LINE = "0113 496 0999"


def _verdict(emergency: str, now):
    ctx = context(Match((bundle(restriction("set_times")),)))
    ctx = dataclasses.replace(ctx, provider=dataclasses.replace(PROVIDER, emergency_phone=emergency))
    return decide(make_contact("phone"), ctx, now)


def test_a_call_turned_away_is_told_the_emergency_line_after_the_restrictions_own_words() -> None:
    verdict = _verdict(LINE, TUE_1500)  # outside the Tuesday and Thursday 10:00-12:00 window
    assert verdict.action == "deflect" and verdict.customer_message is not None
    own, _, added = verdict.customer_message.partition(" In an emergency")
    assert own.startswith("We can only accept calls") and own.endswith("Thursday at 10am.")  # unchanged
    assert added == f", such as a gas leak, a flood or no heating, call {LINE} at any time."


@pytest.mark.parametrize(("emergency", "now"), [("", TUE_1500), (LINE, TUE_1030)])
def test_no_line_or_no_deflection_no_emergency_words(emergency: str, now) -> None:
    message = _verdict(emergency, now).customer_message or ""
    assert "emergency" not in message.lower()


def test_the_contact_limit_letter_promises_only_what_is_done() -> None:
    params = ContactLimit(limit=3, period="week")
    words = LetterWords("telephone and email", "Write to us.", covered=frozenset({"phone", "email"}))
    without = " ".join(limit_letter(params, words))
    assert "emergency" not in without.lower() and "always dealt with" not in without
    assert "calls will be declined" in without  # as they are: a call over the limit is deflected
    assert "emails acknowledged" in without and "web forms" not in without  # only what it covers
    phone_only = limit_letter(params, LetterWords("telephone", "Write to us.", covered=frozenset({"phone"})))
    assert "calls will be declined" in phone_only[0] and "acknowledged" not in phone_only[0]
    emergency = dataclasses.replace(PROVIDER, emergency_phone=LINE).emergency_sentence()
    with_line = " ".join(limit_letter(params, LetterWords("telephone and email", "Write to us.", emergency=emergency)))
    assert with_line.endswith(f"call {LINE} at any time.")
