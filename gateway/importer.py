"""Customer import from a housing-management-system CSV export: good rows kept, bad rows reported.

Columns (header row required, order free): external_ref, name, phones, emails, web_account,
adjustments, adjustment_flags. Several phones or emails are separated by ';'. A row whose
external_ref already exists updates that customer's name and adds any new identifiers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pydantic

from .models.people import Adjustments, IdentifierIn
from .store.people import upsert_imported

REQUIRED = ("external_ref", "name")
KNOWN = ("external_ref", "name", "phones", "emails", "web_account", "adjustments", "adjustment_flags")
MAX_ROWS = 2_000_000


class ImportRow(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_ref: str = pydantic.Field(min_length=1, max_length=100)
    name: str = pydantic.Field(min_length=1, max_length=200)
    identifiers: list[IdentifierIn]
    adjustments: Adjustments


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "rejected": len(self.errors),
            "errors": self.errors[:1000],
        }


class CsvFormatError(ValueError):
    """The file itself (not one row) cannot be read: no header, a missing column, not CSV."""


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(";") if p.strip()]


def _row_model(raw: dict[str, str | None]) -> ImportRow:
    idents = [{"kind": "phone", "value": v} for v in _split(raw.get("phones"))]
    idents += [{"kind": "email", "value": v} for v in _split(raw.get("emails"))]
    idents += [{"kind": "web", "value": v} for v in _split(raw.get("web_account"))]
    return ImportRow.model_validate(
        {
            "external_ref": raw.get("external_ref") or "",
            "name": raw.get("name") or "",
            "identifiers": idents,
            "adjustments": {"text": raw.get("adjustments") or "", "flags": _split(raw.get("adjustment_flags"))},
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
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise CsvFormatError("the file is empty: expected a header row naming the columns")
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvFormatError(f"missing column(s) {', '.join(missing)}; expected {', '.join(KNOWN)}")
    for raw in reader:
        line = reader.line_num
        if None in raw:
            yield line, {"line": line, "field": "row", "message": "more values than header columns"}
            continue
        try:
            yield line, _row_model(raw)
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


async def _save(conn: asyncpg.Connection, row: ImportRow) -> bool:
    """Insert or update one customer; returns True when it was new."""
    idents: list[tuple[str, str]] = [(i.kind, i.value) for i in row.identifiers]
    return await upsert_imported(conn, row.external_ref, row.name, row.adjustments.model_dump(), idents)


async def import_csv(
    conn: asyncpg.Connection, text: str, progress: Callable[[int], None] | None = None
) -> ImportReport:
    report = ImportReport()
    for n, (line, item) in enumerate(parse(text), start=1):
        if n > MAX_ROWS:
            report.errors.append({"line": line, "field": "row", "message": f"more than {MAX_ROWS} rows"})
            break
        if isinstance(item, dict):
            report.errors.append(item)
        else:
            try:
                async with conn.transaction():
                    created = await _save(conn, item)
            except asyncpg.UniqueViolationError:
                report.errors.append(
                    {"line": line, "field": "web_account", "message": "web account already belongs to another customer"}
                )
                continue
            if created:
                report.created += 1
            else:
                report.updated += 1
        if progress is not None:
            progress(n)
    return report
