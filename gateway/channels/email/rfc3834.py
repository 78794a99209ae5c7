"""RFC 3834: which inbound mail must never get an automatic acknowledgement, and why.

A table of named rules read top to bottom (the first that fires gives the reason logged with the
suppressed acknowledgement). Pure: reads only the MailMessage.
"""

from __future__ import annotations

from collections.abc import Callable

from ...contact import LOOP_HEADER
from .mime import MailMessage

# Local parts that are machines, not people (RFC 3834 §2; common no-reply spellings).
AUTOMATIC_SENDERS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply"}
)
AUTOREPLY_MARKERS = ("x-autoreply", "x-autorespond", "x-autoreply-from", "x-mail-autoreply")


def _auto_submitted(m: MailMessage) -> str | None:
    value = m.control.get("auto-submitted")
    if value is None:
        return None
    token = value.split(";", 1)[0].strip().lower()
    return None if token == "no" else f"Auto-Submitted: {value[:60]}"


def _precedence(m: MailMessage) -> str | None:
    value = m.control.get("precedence", "").strip().lower()
    return f"Precedence: {value}" if value in ("bulk", "list", "junk") else None


def _list(m: MailMessage) -> str | None:
    return f"list mail ({', '.join(m.list_headers[:3])})" if m.list_headers else None


def _suppress(m: MailMessage) -> str | None:
    return "X-Auto-Response-Suppress present" if "x-auto-response-suppress" in m.control else None


def _null_sender(m: MailMessage) -> str | None:
    return_path = m.control.get("return-path")
    if m.envelope_sender == "" or (return_path is not None and return_path.strip() in ("", "<>")):
        return "empty Return-Path (null sender)"
    return None


def _automatic_sender(m: MailMessage) -> str | None:
    local = m.sender.rsplit("@", 1)[0].strip('"').lower()
    if local in AUTOMATIC_SENDERS or local.startswith(("noreply", "no-reply", "donotreply")):
        return f"automatic sender {local}@"
    return None


def _our_loop(m: MailMessage) -> str | None:
    return f"our own {LOOP_HEADER} header" if LOOP_HEADER.lower() in m.control else None


def _autoreply_marker(m: MailMessage) -> str | None:
    found = [h for h in AUTOREPLY_MARKERS if h in m.control]
    return f"auto-reply header {found[0]}" if found else None


def _report(m: MailMessage) -> str | None:
    return (
        "delivery report (multipart/report)"
        if m.control.get("content-type", "").lower().startswith("multipart/report")
        else None
    )


def _no_address(m: MailMessage) -> str | None:
    return None if "@" in m.sender and " " not in m.sender else "no address to answer"


RULES: tuple[tuple[str, Callable[[MailMessage], str | None]], ...] = (
    ("our_loop", _our_loop),
    ("auto_submitted", _auto_submitted),
    ("precedence", _precedence),
    ("list", _list),
    ("suppress", _suppress),
    ("null_sender", _null_sender),
    ("automatic_sender", _automatic_sender),
    ("autoreply_marker", _autoreply_marker),
    ("report", _report),
    ("no_address", _no_address),
)


def why_not_acknowledged(m: MailMessage) -> str | None:
    """The reason this message must get no automatic reply, or None when one is allowed."""
    for _, rule in RULES:
        reason = rule(m)
        if reason is not None:
            return reason
    return None


def is_automatic(m: MailMessage) -> bool:
    """Bounces, auto-replies and bulk mail (what never gets an acknowledgement, bar a missing address)."""
    return any(rule(m) is not None for name, rule in RULES if name != "no_address")
