"""What every request model shares: unknown fields refused, text trimmed; a schema helper."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class In(BaseModel):
    """A request body: unknown fields are an error, surrounding white space is dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def given(field: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON Schema for "`field` is given and not null", to state a cross-field rule in the schema."""
    return {"required": [field], "properties": {field: schema or {"not": {"type": "null"}}}}
