"""Header surgery on a raw message, byte for byte: remove every inbound `X-Contact-*` field and put
our own on top, leaving the rest of the message (and so any DKIM signature over it) untouched.

No parsing into a message object and back: re-serialising would rewrap, re-encode and reorder.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.policy import SMTP

from .email.mime import clean_text

CONTROL_PREFIX = b"x-contact-"
_MAX_VALUE = 2000
_CONTINUATION = (b" ", b"\t")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with its last line ending) and the rest (the blank line and the body)."""
    if raw.startswith((b"\r\n", b"\n")):  # no header at all
        return b"", raw
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    if not ends:
        return raw, b""
    cut = min(ends)
    cut += 2 if raw.startswith(b"\r\n", cut) else 1
    return raw[:cut], raw[cut:]


def strip_control_headers(head: bytes) -> bytes:
    """The header block without any `X-Contact-*` field, continuation lines included."""
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line.startswith(_CONTINUATION):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name.startswith(CONTROL_PREFIX)
        if not dropping:
            kept.append(line)
    return b"".join(kept)


def header_safe(value: str) -> str:
    """One line of text: control characters (CR, LF among them) flattened, runs of space collapsed."""
    return " ".join(clean_text(value, _MAX_VALUE).split())


def header_lines(fields: Iterable[tuple[str, str]], linesep: bytes = b"\r\n") -> bytes:
    """Each field folded to 78 columns, non-ASCII text as RFC 2047 encoded words."""
    policy = SMTP.clone(linesep=linesep.decode())
    return b"".join(policy.fold_binary(name, header_safe(value)) for name, value in fields)


def rewrite(raw: bytes, fields: Iterable[tuple[str, str]]) -> bytes:
    """The message with inbound control headers removed and `fields` added above the rest."""
    head, rest = split_head(raw)
    linesep = b"\r\n" if head.endswith(b"\r\n") or not head else b"\n"
    return header_lines(fields, linesep) + strip_control_headers(head) + rest
