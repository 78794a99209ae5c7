"""Phone numbers reach the same E.164 form whichever way they are written, and whether or not the
quick path for whole UK numbers takes them: it must agree with libphonenumber exactly. Email
addresses likewise, whether or not the quick path for bare addresses skips the standard parser."""

from __future__ import annotations

import gc
import random
import re

import phonenumbers
import pytest

from gateway import identifiers
from gateway.identifiers import IdentifierError, SenderHandle, normalise_email, normalise_phone, sender_handle

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


def _through_the_parser(raw: str) -> str:
    """normalise_email with every address taken through the standard library's parser."""
    quick, named = identifiers._BARE_ADDRESS, identifiers._NAMED_ADDRESS
    identifiers._BARE_ADDRESS = identifiers._NAMED_ADDRESS = re.compile(r"(?!)")  # matches nothing
    try:
        return normalise_email(raw)
    finally:
        identifiers._BARE_ADDRESS, identifiers._NAMED_ADDRESS = quick, named


def _outcome(normalise, raw: str) -> str:
    try:
        return normalise(raw)
    except IdentifierError as exc:
        return f"refused: {exc}"


def test_bare_addresses_normalise_as_the_standard_parser_makes_them():
    rng = random.Random(5)
    atoms = ["a", "Jo", "x1", "first_last", "o-k", "100%", "tag+x", "+lead", "trail+", "-", "_", "ÿ"]
    atoms += ['"q"', "<b", "c>", "d e", "(f)", "g,h", "i;j", "k:l", "m\\n", "o[p]"]  # the parser's specials
    domains = ["example.com", "Mail.Example.NET", "a-b.co.uk", "localhost", "x..y", "-bad.com", "é.fr"]
    domains.append("a" * 64 + ".com")  # a label too long
    seen = 0
    for _ in range(6000):
        local = ".".join(rng.choice(atoms) for _ in range(rng.randint(1, 3)))
        raw = f"{rng.choice(['', ' '])}{local}@{rng.choice(domains)}{rng.choice(['', ' ', '.'])}"
        seen += identifiers._BARE_ADDRESS.fullmatch(raw.strip()) is not None
        assert _outcome(normalise_email, raw) == _outcome(_through_the_parser, raw), raw
    assert seen > 600  # the quick path was taken, and agreed


def test_named_addresses_normalise_as_the_standard_parser_makes_them():
    """A display name before the address, as mail clients write a sender: the quick path agrees
    with the parser for plain names, and leaves every other name to it."""
    rng = random.Random(11)
    names = ["", "A Tenant", "Jo", "o'Brien", "Mary-Jane", "A  B", " x ", "100% sure", "a+b", "=?utf-8?q?J=C3=B6?="]
    names += ['"Bloggs, Jo"', "Jo (home)", "J. Bloggs", "a@b", "Jo, Bloggs", "Jo;", "x:y", "[j]", "Jö", "<", "\\"]
    locals_ = ["jo", "Jo.Bloggs", "a+tag", "x_y", "-", "1%", ".dot", "a..b", '"q"']
    domains = ["example.com", "Mail.Example.NET", "localhost", "x..y", "é.fr", "a" * 64 + ".com"]
    seen = 0
    for _ in range(4000):
        address = f"{rng.choice(locals_)}@{rng.choice(domains)}"
        raw = f"{rng.choice(names)}{rng.choice(['', ' '])}<{address}>{rng.choice(['', ' ', '>'])}"
        seen += identifiers._NAMED_ADDRESS.fullmatch(raw.strip()) is not None
        assert _outcome(normalise_email, raw) == _outcome(_through_the_parser, raw), raw
    assert seen > 400  # the quick path was taken, and agreed


def test_ascii_domains_are_checked_as_the_idna_codec_checks_them():
    for domain in ["example.com", "EXAMPLE.com.", "a..b", ".lead", "x" * 63 + ".uk", "x" * 64 + ".uk", "nodot", ""]:
        raw = f"jo@{domain}"
        try:
            expected = "jo@" + domain.rstrip(".").encode("idna").decode("ascii").lower()
            ok = "." in expected and all(0 < len(p) <= 63 for p in expected[3:].split("."))
        except UnicodeError:
            ok = False
        if ok:
            assert normalise_email(raw) == expected
        else:
            with pytest.raises(IdentifierError):
                normalise_email(raw)


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("Jo Bloggs <Jo.Bloggs+repairs@Example.COM>", "jo.bloggs@example.com"),
        ('"Bloggs, Jo" <jo@example.com>', "jo@example.com"),
        ("jo@example.com (Jo)", "jo@example.com"),
        ("<jo@bücher.example>", "jo@xn--bcher-kva.example"),
    ],
)
def test_addresses_outside_the_quick_path_still_normalise(raw, address):
    assert normalise_email(raw) == _through_the_parser(raw) == address


def test_a_sender_is_read_the_same_whether_kept_or_not_and_only_usual_lengths_are_kept(monkeypatch):
    kept: dict = {}
    monkeypatch.setattr(identifiers, "_KEPT", kept)
    long_email = "ann@" + ("b" * 50 + ".") * 2 + "example.org"
    for channel, raw in (("phone", "07700 900123"), ("email", "Ann <ann@example.org>"), ("email", long_email)):
        first, again = sender_handle(channel, raw), sender_handle(channel, raw)
        assert first == again == identifiers._handle(channel, raw) and first.kind is not None
        assert isinstance(again, SenderHandle) and again.log_kind == first.kind
    assert sender_handle("phone", "anonymous").withheld
    assert sender_handle("phone", "anonymous").log_kind == "withheld"
    assert len(kept) == 3  # the two usual senders and "anonymous"; not the long one
    # Kept as plain tuples, which the cyclic collector stops tracking: a full collection never walks them.
    gc.collect()
    assert all(type(v) is tuple and not gc.is_tracked(v) for v in kept.values())


def test_the_kept_senders_are_forgotten_all_at_once_when_full(monkeypatch):
    monkeypatch.setattr(identifiers, "_KEPT", {})
    monkeypatch.setattr(identifiers, "_KEPT_MAX", 4)
    for n in range(10):
        assert sender_handle("phone", f"07700 90{n:04d}").value == f"+4477009{n:05d}"
        assert len(identifiers._KEPT) <= 4
    assert list(identifiers._KEPT) == [
        ("phone", "07700 900008"),
        ("phone", "07700 900009"),
    ]  # forgotten at 4, then kept
