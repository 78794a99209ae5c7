"""Manager message templates: `{name}` placeholders from a fixed allow-list, substituted once.

No str.format (no attribute or index access), no eval; substituted values are never re-scanned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDERS = frozenset(
    {
        "customer_name",
        "next_allowed",
        "case_ref",
        "provider_name",
        "provider_address",
        "provider_email",
        "provider_phone",
        "emergency_phone",
        "web_form_url",
    }
)
_PLACEHOLDER = re.compile(r"\{([a-z_]{1,40})\}")


def check_template(text: str) -> str:
    """The template unchanged, or ValueError naming the first unknown placeholder or stray brace."""
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{name}}}; allowed: " + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
            )
    rest = _PLACEHOLDER.sub("", text)
    if "{" in rest or "}" in rest:
        raise ValueError("braces are only allowed around a placeholder such as {customer_name}")
    return text


def render(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)
