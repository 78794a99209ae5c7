"""What every request model shares: unknown fields refused, text trimmed; a schema helper."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# A day a person enters (an incident, a start, a review): within years the calendar code can count
# on from it (a review twelve months after 31 Dec 9999 would be in no year at all).
Day = Annotated[
    date,
    Field(
        ge=date(1900, 1, 1),
        le=date(2199, 12, 31),
        description="a day between 1900-01-01 and 2199-12-31",
        # The same bounds for a client reading the schema (JSON Schema's `date` format has none).
        json_schema_extra={"pattern": r"^(19[0-9]{2}|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
    ),
]


class In(BaseModel):
    """A request body: unknown fields are an error, surrounding white space is dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def given(field: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema for "`field` is given and not null", to state a cross-field rule in the schema."""
    return {"required": [field], "properties": {field: schema or {"not": {"type": "null"}}}}
