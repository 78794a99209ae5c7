"""Readable text from an HTML-only email: tags dropped, blocks on their own lines, scripts skipped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "hr"})
_HIDDEN = frozenset({"script", "style", "head", "title"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_LINES = re.compile(r"\n\s*\n+")


class _Text(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size, self.limit, self.hidden = 0, limit, 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden and self.size < self.limit:
            self.parts.append(data)
            self.size += len(data)


def html_to_text(html: str, limit: int = 200_000) -> str:
    """The text a reader of `html` sees, at most about `limit` characters. Never raises."""
    parser = _Text(limit)
    try:
        parser.feed(html[: limit * 4])
        parser.close()
    except Exception:  # html.parser is lenient; anything it still refuses leaves what was read
        pass
    text = _SPACES.sub(" ", "".join(parser.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _LINES.sub("\n\n", text).strip()[:limit]
