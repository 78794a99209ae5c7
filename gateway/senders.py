"""Who sent a contact: the raw sender normalised into a handle the index can look up."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .identity import IdentifierError, is_withheld, normalise_email, normalise_phone, normalise_web

# An explicit case reference in an email subject, e.g. "Re: [CMP-1234] my complaint".
CASE_IN_SUBJECT = re.compile(r"\[([A-Za-z]{2,8}-[0-9]{1,12})\]")


@dataclass(frozen=True, slots=True)
class SenderHandle:
    kind: str | None          # phone | email | web, or None when nothing could be read
    value: str | None
    withheld: bool = False

    @property
    def log_kind(self) -> str:
        return "withheld" if self.withheld else (self.kind or "none")


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "phone": normalise_phone, "email": normalise_email, "web": normalise_web}


def _try(kind: str, raw: str) -> SenderHandle | None:
    norm = _NORMALISERS[kind]
    try:
        return SenderHandle(kind, norm(raw))
    except IdentifierError:
        return None


def sender_handle(channel: str, raw: str) -> SenderHandle:
    """Phones: withheld placeholders first, never matched. Written channels: email, then web id."""
    if channel in ("phone", "visit"):
        if is_withheld(raw):
            return SenderHandle(None, None, withheld=channel == "phone")
        return _try("phone", raw) or SenderHandle(None, None)
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
