"""Whether customers told to write in are told where: enforced restrictions whose deflections send
the customer to write (written_only, no_personal_contact) while the provider has configured no
address, email or web form. Said by /readyz and in the start-up log; read from the in-memory index."""

from __future__ import annotations

from collections import Counter

from .index import RestrictionIndex
from .lifecycle import ENFORCED
from .rules.context import Provider
from .rules.registry import REGISTRY

ASKS_TO_WRITE = frozenset(k.name for k in REGISTRY if k.asks_to_write)
SETTINGS_TO_SET = "GATEWAY_PROVIDER_ADDRESS, GATEWAY_PROVIDER_EMAIL or GATEWAY_PROVIDER_WEB_FORM_URL"


def nowhere_to_write(index: RestrictionIndex, provider: Provider) -> str | None:
    """A plain sentence when some customer would be told to write with nowhere named; else None."""
    if provider.can_be_written_to:
        return None
    found = Counter(
        r.kind
        for bundle in index.bundles.values()
        for r in bundle.restrictions
        if r.kind in ASKS_TO_WRITE and r.status in ENFORCED
    )
    if not found:
        return None
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
    return (
        f"{sum(found.values())} enforced restriction(s) ({kinds}) tell customers to write to us, but no "
        f"way to write is configured, so they are told only 'Please write to us': set {SETTINGS_TO_SET}"
    )


class WaysToWriteCheck:
    """`nowhere_to_write`, worked out again only when the index has changed."""

    def __init__(self, index: RestrictionIndex, provider: Provider) -> None:
        self.index, self.provider = index, provider
        self._version: int | None = None
        self._said: str | None = None

    def __call__(self) -> str | None:
        if self._version != self.index.version:
            self._version, self._said = self.index.version, nowhere_to_write(self.index, self.provider)
        return self._said
