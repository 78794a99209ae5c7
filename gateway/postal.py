"""UK postal addresses: up to six lines and a postcode, read from text or from their parts, checked.

One reader for every way an address comes in (the admin API's text or parts, the CSV import's
column), so a letter's address block is always lines plus a well-formed postcode on its own line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINES = 6  # Royal Mail: at most seven lines under the name, the postcode on the last
MAX_LINE = 60
# The outward code (area, district) then the inward code (sector, unit): "LS1 4AB", "SW1A 1AA".
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")
_TRAILING = re.compile(r"^(.*?)[\s,]*\b([A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})$", re.IGNORECASE)


class AddressError(ValueError):
    """The address cannot be read; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Address:
    lines: tuple[str, ...]
    postcode: str

    def text(self) -> str:
        """As printed in a window: one line each, the postcode last."""
        return "\n".join((*self.lines, self.postcode))

    def one_line(self) -> str:
        return ", ".join((*self.lines, self.postcode))


def postcode(raw: str) -> str:
    """'ls14ab' → 'LS1 4AB'; anything else that is not a UK postcode is refused."""
    match = _POSTCODE.match(re.sub(r"\s+", "", raw.upper()))
    if not match:
        raise AddressError(f"{raw.strip()!r} is not a UK postcode (e.g. LS1 4AB)")
    return f"{match.group(1)} {match.group(2)}"


def from_parts(lines: list[str] | tuple[str, ...], code: str) -> Address:
    kept = tuple(" ".join(line.split()) for line in lines if line.strip())
    if not kept:
        raise AddressError("give at least one address line above the postcode")
    if len(kept) > MAX_LINES:
        raise AddressError(f"at most {MAX_LINES} address lines above the postcode")
    long = [line for line in kept if len(line) > MAX_LINE]
    if long:
        raise AddressError(f"address lines are at most {MAX_LINE} characters: {long[0][:20]!r}...")
    return Address(kept, postcode(code))


def from_text(text: str) -> Address:
    """Lines separated by new lines or ';', the last one the postcode or ending with it
    ("Leeds LS1 4AB")."""
    lines = [line.strip() for line in re.split(r"[\n;]", text) if line.strip()]
    if not lines:
        raise AddressError("the address is empty")
    last = _TRAILING.match(lines[-1])
    if last is None:
        raise AddressError("the last line must be the postcode or end with it (e.g. 'Leeds LS1 4AB')")
    town = last.group(1).strip(" ,")
    return from_parts([*lines[:-1], *([town] if town else [])], last.group(2))
