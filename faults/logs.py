"""What the gateway's log said during one fault: its JSON lines grouped by message shape, most frequent first."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

_VARYING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+(\.\d+)?")


def shape(line: str) -> str:
    """'level logger: message' with ids and numbers made N, so repeats of one event group together."""
    try:
        entry = json.loads(line)
    except ValueError:
        return "(not JSON) " + _VARYING.sub("N", line.strip())[:160]
    if not isinstance(entry, dict):
        return "(not JSON) " + line.strip()[:160]
    msg = _VARYING.sub("N", str(entry.get("msg", "")))[:160]
    return f"{entry.get('level', '?')} {entry.get('logger', '?')}: {msg}"


def summarise(path: Path, offset: int, top: int = 12) -> tuple[int, list[tuple[str, int]]]:
    """Lines logged since byte `offset`, and the `top` most frequent shapes among them."""
    if not path.exists():
        return 0, []
    with path.open("rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    shapes = Counter(shape(line) for line in lines)
    return len(lines), shapes.most_common(top)


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
