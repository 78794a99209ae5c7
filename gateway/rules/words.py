"""Bounded text matching for rules: subjects split into lower-case words, addresses compared as keys.

No rule supplies a pattern: the only regular expression is this module's own word splitter.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
_PHONE_LIKE = re.compile(r"^\+?[0-9 ()./-]{3,40}$")
_MAILBOX = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def phrase_words(text: str) -> tuple[str, ...]:
    """The words of a subject or phrase: runs of letters and digits, case-folded."""
    return tuple(w.casefold() for w in _WORD.findall(text[:2000]))


def contains_phrase(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """Whether `phrase` occurs in `words` as consecutive whole words."""
    n = len(phrase)
    if n == 1:
        return phrase[0] in words
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


def address_keys(text: str | None) -> frozenset[str]:
    """Every number or mailbox in a To field ('a@x.org, Rents <b@x.org>'), each as `address_key`."""
    if not text:
        return frozenset()
    return frozenset(k for part in text.replace(";", ",").split(",")[:50] if (k := address_key(part)))


def address_key(text: str | None) -> str:
    """How a number or mailbox contacted is compared: a number keeps only '+' and digits
    (`+44 20 7946 0000` = `+442079460000`); a mailbox is lower-cased; anything else
    is '' (matches no rule)."""
    if not text:
        return ""
    text = text.strip()
    if "<" in text and text.endswith(">"):  # 'Repairs <repairs@example.org>'
        text = text[text.rindex("<") + 1 : -1].strip()
    if _PHONE_LIKE.match(text):
        return re.sub(r"[^0-9+]", "", text)
    return text.casefold() if _MAILBOX.match(text) else ""
