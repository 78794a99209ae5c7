"""Reading an inbound email: raw RFC 5322 bytes (or a provider's fields) → one MailMessage.

Tolerant by design: `read_message` never raises. Broken MIME, unknown charsets, 8-bit headers and
headers the standard library cannot parse are read as far as they can be, and what was wrong is
kept in `defects`. Work is bounded: parts, depth, text and header values are all capped.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses

from ...contact import LOOP_HEADER
from .htmltext import html_to_text

# The headers the acknowledgement rules read (RFC 3834 and the common auto-reply markers).
CONTROL = (
    "auto-submitted",
    "precedence",
    "x-auto-response-suppress",
    "return-path",
    "x-autoreply",
    "x-autorespond",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-loop",
    LOOP_HEADER.lower(),
    "content-type",
)
# Who a message is from, in order: a message with no usable From is answered where it asks.
SENDER_HEADERS = ("from", "reply-to", "sender", "return-path")
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_SURROGATES = re.compile("[\udc80-\udcff]")
HEADER_CHARS = 1000
PROVIDER_ID_CHARS = 200


@dataclass(frozen=True)
class MailLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_text_chars: int = 100_000
    max_parts: int = 500
    max_depth: int = 50
    max_attachments: int = 100
    max_ids: int = 50  # message ids kept from References


@dataclass(frozen=True)
class Attachment:
    name: str
    type: str
    size: int


@dataclass(frozen=True)
class MailMessage:
    """What the gateway reads from one email. Addresses are addr-specs (`who@example.org`)."""

    sender: str = ""
    sender_name: str = ""
    recipients: tuple[str, ...] = ()
    subject: str = ""
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    control: dict[str, str] = field(default_factory=dict)  # lower-cased name → value (CONTROL only)
    list_headers: tuple[str, ...] = ()  # the List-* headers present
    header_count: int = 0
    defects: tuple[str, ...] = ()
    size: int = 0
    envelope_sender: str | None = None  # MAIL FROM, when the transport says it ('' is the null sender)

    @property
    def to(self) -> str | None:
        return self.recipients[0] if self.recipients else None

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """The message ids this one answers, nearest first (In-Reply-To, then References newest first)."""
        return tuple(dict.fromkeys([*self.in_reply_to, *reversed(self.references)]))

    @property
    def provider_id(self) -> str | None:
        """The idempotency key: the Message-ID (see message_key)."""
        return message_key(self.message_id) if self.message_id else None


def message_key(message_id: str) -> str:
    """A message id as the log keeps it: itself, or its hash when longer than a provider id may be."""
    if len(message_id) <= PROVIDER_ID_CHARS:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()


# Charsets that mail declares but writes in a superset of (what every mail client reads them as).
SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-2022-jp": "cp932",
    "shift_jis": "cp932",
    "iso-8859-1": "cp1252",
    "us-ascii": "cp1252",
}
_SINGLE_BYTE = ("cp1252", "iso-8859", "windows-", "koi8", "cp125")


def _superset(charset: str) -> str:
    """An encoded word's charset as its superset. ISO-2022-JP stays: its 7-bit escapes are not CP932."""
    lowered = charset.lower()
    return charset if lowered == "iso-2022-jp" else SUPERSETS.get(lowered, charset)


def charset_candidates(declared: list[str]) -> list[str]:
    """The charsets to try on raw 8-bit text: multi-byte ones first (they fail loudly when wrong)."""
    named = list(dict.fromkeys(SUPERSETS.get(c.lower(), c.lower()) for c in declared if c))
    return sorted(named, key=lambda c: c.startswith(_SINGLE_BYTE))


def clean_text(value: str, limit: int = HEADER_CHARS, charsets: tuple[str, ...] = ()) -> str:
    """One header value as text: raw 8-bit bytes read as UTF-8, else in a charset the message
    declares for its text (`charsets`), else Windows-1252; control characters (CR, LF, NUL, ...)
    made spaces, so no value read here can break a header we write later."""
    if _SURROGATES.search(value):
        raw = value.encode("utf-8", "surrogateescape")
        value = raw.decode("cp1252", "replace")
        for candidate in ("utf-8", *charsets):
            try:
                value = raw.decode(candidate)
                break
            except (UnicodeDecodeError, LookupError):
                continue
    return _CONTROL_CHARS.sub(" ", value).strip()[:limit]


def message_ids(value: str, limit: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_MSGID.findall(value[: limit * 260])))[:limit]


def read_message(raw: bytes, limits: MailLimits | None = None) -> MailMessage:
    """Parse raw RFC 5322 bytes. Never raises: what cannot be read is left empty and noted in defects."""
    limits = limits or MailLimits()
    defects: list[str] = []
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient, but a bug in it must not lose the contact
        return MailMessage(defects=(f"unparseable: {type(exc).__name__}",), size=len(raw))
    reader = _Reader(msg, defects)
    text, attachments = _body(msg, limits, defects)
    mid_raw = reader.header("message-id")
    mids = message_ids(mid_raw, 1)
    return MailMessage(
        sender=next((a for a in map(reader.first_address, SENDER_HEADERS) if a), ""),
        sender_name=reader.display_name("from"),
        recipients=reader.addresses("to") + reader.addresses("cc"),
        subject=reader.header("subject"),
        message_id=mids[0] if mids else (mid_raw[:HEADER_CHARS] or None),
        in_reply_to=message_ids(reader.header("in-reply-to", 10_000), limits.max_ids),
        references=message_ids(reader.header("references", 100_000), limits.max_ids),
        text=text,
        attachments=attachments,
        control={name: reader.header(name) for name in CONTROL if name in reader.names},
        list_headers=tuple(sorted(n for n in reader.names if n.startswith("list-")))[:20],
        header_count=reader.count,
        defects=tuple(dict.fromkeys([*reader.defects, *defects]))[:20],
        size=len(raw),
    )


class _Reader:
    """Header values from a parsed message; a header policy.default cannot parse is read raw."""

    def __init__(self, msg: Message, defects: list[str]) -> None:
        self.msg = msg
        keys = [k.lower() for k in msg]
        self.count, self.names = len(keys), frozenset(keys)
        self.defects = [type(d).__name__ for d in msg.defects[:20]]
        self._defects = defects
        self.charsets = tuple(charset_candidates(_declared_charsets(msg)))

    def header(self, name: str, limit: int = HEADER_CHARS) -> str:
        """An unstructured header's text, read from its raw value: encoded words decoded (each
        charset as its superset), raw 8-bit text in the message's charsets. (The library's header
        objects parse each value in full, several times slower, for structure we do not use.)"""
        if name not in self.names:
            return ""
        raw = _FOLD.sub("", self._raw(name, decode=False)[: limit * 100])
        return clean_text(_decoded(raw) if "=?" in raw else raw, limit, self.charsets)

    def _raw(self, name: str, decode: bool = True) -> str:
        found = self._raws(name)
        if not found:
            return ""
        return _decoded(found[0]) if decode else found[0]

    def _raws(self, name: str) -> list[str]:
        return [str(v) for k, v in self.msg.raw_items() if k.lower() == name][:5]

    def _parsed(self, name: str) -> list[tuple[str, str]]:
        """(display name, addr-spec) pairs from the first header of that name holding an address."""
        if name not in self.names:
            return []
        found: list[tuple[str, str]] = []
        for raw in self._raws(name):
            found = self._addresses_in(raw[:100_000])
            if any("@" in a for _, a in found):
                break
        return [(clean_text(n, charsets=self.charsets), clean_text(a, 320)) for n, a in found[:50]]

    def _addresses_in(self, raw: str) -> list[tuple[str, str]]:
        if "=?" not in raw:  # no encoded word: the plain parser reads it alike, and much faster
            quick = getaddresses([raw])
            if quick and all("@" in a for _, a in quick):
                return quick
        try:
            header = policy.default.header_factory("from", raw)
            parsed = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
        except Exception as exc:
            self._defects.append(f"address: {type(exc).__name__}")
            parsed = []
        plain = [(_decoded(n), a) for n, a in getaddresses([raw]) if "@" in a]
        # RFC 2047 forbids encoded words in an address, but the library decodes them there too, so
        # "=?utf-8?Q?someone=40example.org?=@attacker.example" could pass for another sender. An
        # address is taken only as it is written in the header; a decoded one is read as written.
        literal = raw.lower()
        with_at = [(n, a) for n, a in parsed if "@" in a]
        trusted = [(n, a) for n, a in with_at if a.lower() in literal]
        if trusted and len(trusted) == len(with_at):
            return trusted
        return plain or trusted

    def addresses(self, name: str) -> tuple[str, ...]:
        return tuple(a for _, a in self._parsed(name) if a and a != "<>")

    def first_address(self, name: str) -> str:
        found = self.addresses(name)
        return found[0] if found else ""

    def display_name(self, name: str) -> str:
        found = self._parsed(name)
        return found[0][0] if found else ""


_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:+-]{1,40})""", re.IGNORECASE)


def _declared_charsets(msg: Message) -> list[str]:
    """The charsets the message declares for its text (breadth first, a few parts), read from the
    raw Content-Type values: a hint for raw 8-bit headers, not worth a full header parse."""
    queue, seen, found = [msg], 0, []
    while queue and seen < 20:
        part = queue.pop(0)
        seen += 1
        for k, v in part.raw_items():
            if k.lower() == "content-type":
                m = _CHARSET_PARAM.search(str(v)[:1000])
                if m and m.group(1).lower() not in ("us-ascii", "utf-8"):
                    found.append(m.group(1))
                break
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            queue.extend(c for c in children[:10] if isinstance(c, Message))
    return found


_ENCODED_CHARSET = re.compile(r"=\?([^?*]{1,40})(\*[^?]*)?\?", re.ASCII)


def _decoded(value: str) -> str:
    """Encoded words decoded, each charset read as its superset (a GB2312 word holding GBK)."""
    value = _ENCODED_CHARSET.sub(lambda m: f"=?{_superset(m.group(1))}?", value)
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # an encoded word that does not decode is kept as written
        return value


def _body(msg: Message, limits: MailLimits, defects: list[str]) -> tuple[str, tuple[Attachment, ...]]:
    """The first plain-text part (else the first HTML part, as text) and the attachments, walking
    the parts without recursion and within the limits."""
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < limits.max_parts:
        part, depth = stack.pop()
        seen += 1
        if part.is_multipart():
            if depth >= limits.max_depth:
                defects.append(f"multipart nested deeper than {limits.max_depth}: not read")
                continue
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((c, depth + 1) for c in reversed(children) if isinstance(c, Message))
            continue
        ctype = _content_type(part)
        if _is_attachment(part, ctype):
            if len(attachments) < limits.max_attachments:
                attachments.append(Attachment(_filename(part), ctype, len(_payload(part))))
        elif ctype == "text/plain" and plain is None:
            plain = _text(part, limits.max_text_chars)
        elif ctype == "text/html" and html is None:
            html = _text(part, limits.max_text_chars * 4)
    if stack:
        defects.append(f"more than {limits.max_parts} parts: the rest not read")
    if plain is None and html is not None:
        plain = html_to_text(html, limits.max_text_chars)
    return (plain or "").strip()[: limits.max_text_chars], tuple(attachments)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _is_attachment(part: Message, ctype: str) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return True
    return not ctype.startswith("text/") or (disposition == "inline" and _filename(part) != "")


def _filename(part: Message) -> str:
    try:
        return clean_text(part.get_filename() or "", 255)
    except Exception:
        return ""


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _text(part: Message, limit: int) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return content[:limit]
        except Exception:  # an unknown charset, a broken transfer encoding: decoded by hand below
            pass
    data = _payload(part)[: limit * 4]
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
        return data.decode(charset, "replace")[:limit]
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")[:limit]


def message_from_fields(
    *,
    sender: str,
    recipients: tuple[str, ...] = (),
    subject: str = "",
    message_id: str | None = None,
    in_reply_to: str = "",
    references: str = "",
    text: str = "",
    html: str = "",
    headers: dict[str, str] | None = None,
    envelope_sender: str | None = None,
    limits: MailLimits | None = None,
) -> MailMessage:
    """A MailMessage from fields a provider (or the generic JSON shape) already split out."""
    limits = limits or MailLimits()
    lowered = {clean_text(k).lower(): clean_text(v) for k, v in (headers or {}).items()}
    parsed = getaddresses([sender])
    addr = next((a for _, a in parsed if a), sender)
    mids = message_ids(message_id or "", 1)
    body = text or (html_to_text(html, limits.max_text_chars) if html else "")
    control = {n: lowered[n] for n in CONTROL if n in lowered}
    if envelope_sender is not None:
        control.setdefault("return-path", envelope_sender or "<>")
    return MailMessage(
        sender=clean_text(addr, 320),
        sender_name=clean_text(parsed[0][0]) if parsed else "",
        recipients=tuple(clean_text(a, 320) for r in recipients for _, a in getaddresses([r]) if a)[:50],
        subject=clean_text(subject),
        message_id=mids[0] if mids else (clean_text(message_id or "") or None),
        in_reply_to=message_ids(in_reply_to, limits.max_ids),
        references=message_ids(references, limits.max_ids),
        text=body.strip()[: limits.max_text_chars],
        control=control,
        list_headers=tuple(sorted(n for n in lowered if n.startswith("list-")))[:20],
        header_count=len(lowered),
        envelope_sender=envelope_sender,
    )
