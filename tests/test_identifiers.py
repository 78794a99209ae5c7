"""Phone numbers reach the same E.164 form whichever way they are written, and whether or not the
quick path for whole UK numbers takes them: it must agree with libphonenumber exactly."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from gateway.identifiers import IdentifierError, normalise_phone

plain = normalise_phone.__wrapped__  # without the cache: every call takes its path again


def libphonenumber(text: str) -> str | None:
    """What libphonenumber alone makes of a number (None: not a possible number)."""
    number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, "GB")
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_whole_uk_numbers_in_every_common_form_agree_with_libphonenumber():
    rng = random.Random(11)
    for first in "123456789":
        for _ in range(300):
            nsn = first + "".join(rng.choice("0123456789") for _ in range(9))
            for text in (f"+44{nsn}", f"0{nsn}", f"0{nsn[:4]} {nsn[4:]}", f"+44 {nsn[:4]} {nsn[4:]}", f"0044{nsn}"):
                assert plain(text) == libphonenumber(text) == f"+44{nsn}", text


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("+44 (0)20 7946 0000", "+442079460000"),
        ("020-7946-0000", "+442079460000"),
        ("+1 415 555 0100", "+14155550100"),
        ("０２０ ７９４６ ００００", "+442079460000"),
        ("tel:+442079460000", "+442079460000"),
        ("01632 96000", "+44163296000"),  # nine digits: possible in the UK, not taken by the quick path
    ],
)
def test_numbers_outside_the_quick_path_still_normalise(text, e164):
    assert plain(text) == normalise_phone(text) == e164


@pytest.mark.parametrize("text", ["012345", "+44 0207 946 0000 0", "07700 9001234"])
def test_a_number_of_the_wrong_length_is_refused_on_either_path(text):
    with pytest.raises(IdentifierError):
        plain(text)
