"""Who sent a contact: the raw sender normalised into a handle the index can look up."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .identity import IdentifierError, is_withheld, normalise_email, normalise_phone, normalise_web

# An explicit case reference in an email subject, e.g. "Re: [CMP-1234] my complaint".
_REFERENCE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9/_.-]{0,99}$")
CASE_IN_SUBJECT = re.compile(r"\[([A-Za-z]{2,8}-[0-9]{1,12})\]")


@dataclass(frozen=True, slots=True)
class SenderHandle:
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


def sender_handle(channel: str, raw: str) -> SenderHandle:
    """Phones: withheld placeholders first, never matched. Written channels: email, then web id.
    Visits and letters: a phone number, else the customer's housing-system reference."""
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


def case_reference(case_ref: str | None, subject: str | None) -> str | None:
    if case_ref:
        return case_ref.strip()
    if subject:
        m = CASE_IN_SUBJECT.search(subject[:1000])
        if m:
            return m.group(1)
    return None
