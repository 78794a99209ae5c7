"""Customer import from a housing-management-system CSV export: good rows kept, bad rows reported.

Columns (header row required, order free): external_ref, name, phones, emails, web_account,
adjustments, adjustment_flags, postal_address. Several phones or emails are separated by ';'; so
are an address's lines, the last one the postcode or ending with it ("1 Mill Lane; Leeds LS1 4AB").
A row whose external_ref already exists updates that customer's name and adds any new identifiers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
import pydantic

from .lifecycle import Actor
from .models.people import Adjustments, IdentifierIn, PostalAddress
from .store.customers import import_row

REQUIRED = ("external_ref", "name")
KNOWN = (
    "external_ref",
    "name",
    "phones",
    "emails",
    "web_account",
    "adjustments",
    "adjustment_flags",
    "postal_address",
)
KIND_OF_COLUMN = {"phones": "phone", "emails": "email", "web_account": "web"}
ADJUSTMENT_PART = {"adjustments": "text", "adjustment_flags": "flags"}
IMPORT_ACTOR = Actor("system:import")
MAX_ROWS = 2_000_000


class ImportRow(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_ref: str = pydantic.Field(min_length=1, max_length=100)
    name: str = pydantic.Field(min_length=1, max_length=200)
    identifiers: list[IdentifierIn]
    adjustments: Adjustments
    postal_address: PostalAddress | None = None
    columns: frozenset[str]  # those the file has: an absent one is left alone

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k for c, k in KIND_OF_COLUMN.items() if c in self.columns)

    def adjustment_parts(self) -> dict[str, Any]:
        given = self.adjustments.model_dump()
        return {part: given[part] for c, part in ADJUSTMENT_PART.items() if c in self.columns}

    def address(self) -> PostalAddress | Literal[""] | None:
        """The address to set; "" (a blank cell) clears it; None: the file has no such column."""
        if "postal_address" not in self.columns:
            return None
        return self.postal_address or ""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "dry_run": self.dry_run,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": len(self.errors),
            "errors": self.errors[:1000],
            "changes": self.changes[:1000],
        }

    def count(self, line: int, change: dict[str, Any]) -> None:
        if change["created"]:
            self.created += 1
        elif len(change) > 4 or change["urgent_review"]:
            self.updated += 1
        else:
            self.unchanged += 1
            return
        self.changes.append({"line": line, **change})


class CsvFormatError(ValueError):
    """The file itself (not one row) cannot be read: no header, a missing column, not CSV."""


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(";") if p.strip()]


def _row_model(raw: dict[str, str | None], columns: frozenset[str]) -> ImportRow:
    idents = [{"kind": "phone", "value": v} for v in _split(raw.get("phones"))]
    idents += [{"kind": "email", "value": v} for v in _split(raw.get("emails"))]
    idents += [{"kind": "web", "value": v} for v in _split(raw.get("web_account"))]
    return ImportRow.model_validate(
        {
            "external_ref": raw.get("external_ref") or "",
            "name": raw.get("name") or "",
            "identifiers": idents,
            "adjustments": {"text": raw.get("adjustments") or "", "flags": _split(raw.get("adjustment_flags"))},
            "postal_address": (raw.get("postal_address") or "").strip() or None,
            "columns": columns,
        }
    )


def _field_name(loc: tuple[Any, ...], raw: dict[str, str | None]) -> str:
    if loc and loc[0] == "identifiers" and len(loc) > 1:
        n_phone = len(_split(raw.get("phones")))
        n_email = len(_split(raw.get("emails")))
        i = int(loc[1])
        return "phones" if i < n_phone else "emails" if i < n_phone + n_email else "web_account"
    if loc and loc[0] == "adjustments":
        return "adjustment_flags" if len(loc) > 1 and loc[1] == "flags" else "adjustments"
    return str(loc[0]) if loc else "row"


def parse(text: str) -> Iterator[tuple[int, ImportRow | dict[str, Any]]]:
    """Yield (line number, row) or (line number, error dict) for each data row."""
    # newline="": the csv module reads line endings itself, so a bare CR (an old Mac export) or a
    # line break inside a quoted field is data, not a crash.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise CsvFormatError(f"line 1: the header row cannot be read as CSV ({exc})") from None
    header = [h.strip() for h in (fieldnames or [])]
    if not header:
        raise CsvFormatError("the file is empty: expected a header row naming the columns")
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFormatError(f"missing column(s) {', '.join(missing)}; expected {', '.join(KNOWN)}")
    for raw in _csv_rows(reader):
        line = reader.line_num
        if None in raw:
            yield line, {"line": line, "field": "row", "message": "more values than header columns"}
            continue
        unstorable = next((c for c in KNOWN if "\x00" in (raw.get(c) or "")), None)
        if unstorable is not None:  # PostgreSQL text holds no NUL: the row is refused, not the file
            yield line, {"line": line, "field": unstorable, "message": "contains a NUL character"}
            continue
        try:
            yield line, _row_model(raw, frozenset(header))
        except pydantic.ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            yield (
                line,
                {
                    "line": line,
                    "field": _field_name(tuple(err["loc"]), raw),
                    "message": err["msg"].removeprefix("Value error, "),
                },
            )


def _csv_rows(reader: csv.DictReader[str]) -> Iterator[dict[str, str | None]]:
    try:
        yield from reader
    except csv.Error as exc:
        raise CsvFormatError(f"line {reader.line_num}: the file cannot be read as CSV past here ({exc})") from None


async def import_csv(
    conn: asyncpg.Connection,
    text: str,
    progress: Callable[[int], None] | None = None,
    *,
    dry_run: bool = False,
    actor: Actor = IMPORT_ACTOR,
) -> ImportReport:
    """Import every row; with `dry_run` the same report, and everything rolled back."""
    report = ImportReport(dry_run=dry_run)
    outer = conn.transaction()
    if dry_run:
        await outer.start()
    try:
        await _rows(conn, text, report, progress, actor)
    finally:
        if dry_run:
            await outer.rollback()
    return report


async def _rows(
    conn: asyncpg.Connection,
    text: str,
    report: ImportReport,
    progress: Callable[[int], None] | None,
    actor: Actor,
) -> None:
    for n, (line, item) in enumerate(parse(text), start=1):
        if n > MAX_ROWS:
            report.errors.append({"line": line, "field": "row", "message": f"more than {MAX_ROWS} rows"})
            break
        if isinstance(item, dict):
            report.errors.append(item)
        else:
            idents: list[tuple[str, str]] = [(i.kind, i.value) for i in item.identifiers]
            try:
                async with conn.transaction():
                    change = await import_row(
                        conn,
                        item.external_ref,
                        item.name,
                        idents,
                        item.kinds,
                        item.adjustment_parts(),
                        actor,
                        item.address(),
                    )
            except asyncpg.UniqueViolationError:
                report.errors.append(
                    {"line": line, "field": "web_account", "message": "web account already belongs to another customer"}
                )
                continue
            report.count(line, change)
        if progress is not None:
            progress(n)


def describe_change(change: dict[str, Any]) -> str:
    """One line for the progress output: what one row changed."""
    parts = ["new customer" if change["created"] else f"customer {change['customer_id']}"]
    parts += [f"+{i}" for i in change.get("identifiers_added", [])]
    parts += [f"-{i}" for i in change.get("identifiers_removed", [])]
    if "adjustments" in change:
        parts.append(f"adjustments now {change['adjustments']['after']}")
    if "postal_address" in change:
        parts.append("postal address changed")
    if change.get("urgent_review"):
        parts.append(f"URGENT REVIEW: {change['urgent_review']}")
    return f"{change['external_ref']}: " + ", ".join(parts)
