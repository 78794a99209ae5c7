"""Identifiers: phone numbers to E.164, email addresses to lower case, web account ids; and who sent a
contact, as a handle the restriction index can look up.

The same functions serve the admin API (what is stored) and the decide path (what is looked up),
so a number typed by a caution lead and the number a telephony platform sends always meet.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from email.utils import parseaddr
from typing import Literal, NamedTuple

import phonenumbers

Kind = Literal["phone", "email", "web"]
DEFAULT_REGION = "GB"

# What telephony platforms send for a caller who withheld their number; never matched to anyone.
WITHHELD_PLACEHOLDERS = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "unknown",
        "unavailable",
        "private",
        "withheld",
        "+266696687",
        "266696687",
        "0",
        "+0",
    }
)

_WEB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
# A bare address of dot-separated atoms, which the standard library's parser (pure Python, and the
# costliest step of an email sender on the decide path) gives back unchanged: it is not asked.
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# Such an address after a plain display name (words and spaces, none of the parser's specials), as
# mail clients write a sender: the parser gives back the address (measured: 12.5 µs to ask it).
_NAMED_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*<(" + _BARE_ADDRESS.pattern + r")>")


class IdentifierError(ValueError):
    """A handle that cannot be normalised; the message says why in words for a caller."""


def ascii_digits(text: str) -> str:
    """Decimal digits of any script (fullwidth ０, Arabic-Indic ٠, ...) and the fullwidth plus as
    ASCII, so a number meets its stored form however the caller's system wrote it."""
    if text.isascii():
        return text
    folded = (str(d) if (d := unicodedata.decimal(c, None)) is not None else c for c in text)
    return "".join(folded).replace("\uff0b", "+")


def is_withheld(raw: str | None) -> bool:
    if raw is None:
        return True
    cleaned = ascii_digits(raw).strip().lower()
    if cleaned.startswith(("sip:", "tel:")):
        cleaned = cleaned.split(":", 1)[1].split("@", 1)[0]
    return cleaned in WITHHELD_PLACEHOLDERS


# A whole UK number (ten digits after the 0 or +44, the first not 0) in its commonest written forms:
# always possible, and its E.164 form is +44 and those ten digits.
_UK_WHOLE = re.compile(r"(?:\+44|0)([1-9][0-9]{9})")


@functools.lru_cache(maxsize=65_536)
def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 for anything that could be a number ("possible", not "valid": drama numbers count)."""
    text = ascii_digits(raw).strip()
    if text.lower().startswith(("sip:", "tel:")):
        text = text.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]
    if len(text) > 40:
        raise IdentifierError("a phone number is at most 40 characters")
    if text.startswith("00"):
        text = "+" + text[2:]
    if region == DEFAULT_REGION and (whole := _UK_WHOLE.fullmatch(text.replace(" ", ""))):
        return "+44" + whole[1]  # what libphonenumber makes of it (tests/test_identifiers.py), ~20x sooner
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise IdentifierError(f"not a phone number ({exc.args[0] if exc.args else 'unparsable'})") from None
    # "Possible" (right length for the country), not "valid": Ofcom's drama numbers must match too.
    # A local-only number (no area code) cannot be matched reliably, so it is refused.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise IdentifierError("not a possible phone number for its country (check the area code and length)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    """Lower-cased address with the domain in IDNA form; display names and `+tags` removed."""
    address = raw.strip()
    if not _BARE_ADDRESS.fullmatch(address):
        named = _NAMED_ADDRESS.fullmatch(address)
        address = named[1] if named else parseaddr(address)[1].strip().strip("<>")
    if address.count("@") != 1:
        raise IdentifierError("not an email address (expected name@domain)")
    local, domain = address.rsplit("@", 1)
    local = local.split("+", 1)[0] if "+" in local[1:] else local
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith("."):
        raise IdentifierError("the part before @ is not a valid mailbox name")
    domain = domain.rstrip(".")
    if not domain.isascii():  # an ASCII name the codec gives back as it is, after checks made below too
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise IdentifierError("the domain is not a valid internet domain name") from None
    if "." not in domain or len(domain) > 253 or any(not 0 < len(p) <= 63 for p in domain.split(".")):
        raise IdentifierError("the domain is not a valid internet domain name")
    return f"{local}@{domain}".lower()


def normalise_web(raw: str) -> str:
    value = raw.strip()
    if not _WEB_ID.match(value):
        raise IdentifierError("a web account id is 1-128 letters, digits or . _ : @ -")
    return value.lower()


def normalise(kind: str, raw: str) -> str:
    if kind == "phone":
        return normalise_phone(raw)
    if kind == "email":
        return normalise_email(raw)
    if kind == "web":
        return normalise_web(raw)
    raise IdentifierError(f"unknown identifier kind {kind!r} (phone, email or web)")


_REFERENCE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9/_.-]{0,99}$")


class SenderHandle(NamedTuple):
    """Who sent a contact, as the index knows senders. A named tuple: the handles kept for senders
    seen lately (`sender_handle`) are plain tuples, which the cyclic collector leaves alone, and a
    handle is made from one (`_make`) and back (`tuple`) cheaply."""

    kind: str | None  # phone | email | web, or None when nothing could be read
    value: str | None
    withheld: bool = False

    @property
    def log_kind(self) -> str:
        return "withheld" if self.withheld else (self.kind or "none")


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "phone": normalise_phone,
    "email": normalise_email,
    "web": normalise_web,
}


def _try(kind: str, raw: str) -> SenderHandle | None:
    norm = _NORMALISERS[kind]
    try:
        return SenderHandle(kind, norm(raw))
    except IdentifierError:
        return None


def _reference(raw: str) -> SenderHandle:
    """Reception and the post room identify people by their housing-system reference."""
    text = raw.strip()
    if _REFERENCE.match(text):
        return SenderHandle("ref", text.lower())
    return SenderHandle(None, None)


# The handles of senders seen lately, as plain tuples: tuples of text the collector stops tracking,
# where a kept object of a class of our own would be walked by every full collection (measured on
# 2026-11-27: 20,000 kept handles made each full collection of a worker under load take 6–14 ms,
# every ~2 s). Forgotten all at once when full.
_KEPT: dict[tuple[str, str], tuple[str | None, str | None, bool]] = {}
_KEPT_MAX = 65_536


def sender_handle(channel: str, raw: str) -> SenderHandle:
    """Phones: withheld placeholders first, never matched. Written channels: email, then web id.
    Visits and letters: a phone number, else the customer's housing-system reference. Kept for the
    senders seen lately, so a caller is read once, not on every contact; only senders of a usual
    length, so that a flood of long made-up ones holds little memory."""
    if len(raw) > 100:
        return _handle(channel, raw)
    kept = _KEPT.get((channel, raw))
    if kept is not None:
        return SenderHandle._make(kept)
    if len(_KEPT) >= _KEPT_MAX:
        _KEPT.clear()
    handle = _handle(channel, raw)
    _KEPT[(channel, raw)] = (handle.kind, handle.value, handle.withheld)
    return handle


def _handle(channel: str, raw: str) -> SenderHandle:
    if channel == "phone":
        if is_withheld(raw):
            return SenderHandle(None, None, withheld=True)
        return _try("phone", raw) or SenderHandle(None, None)
    if channel == "visit":
        return _try("phone", raw) or _reference(raw)
    if channel == "letter" and "@" not in raw:
        return _try("phone", raw) or _reference(raw)
    if not raw.strip():
        return SenderHandle(None, None)
    order = ("email", "web", "phone") if "@" in raw else ("web", "phone")
    for kind in order:
        found = _try(kind, raw)
        if found is not None:
            return found
    return SenderHandle(None, None)
