"""The in-memory restriction index: normalised identifier → the restricted customers it reaches
(and, for an identifier several customers hold, who else it is: the decision says it was ambiguous).

Only customers with an enforced restriction are held (a fraction of a percent), so every decision
is a dictionary lookup. Writes swap in whole per-customer entries without awaiting, so a reader
never sees half a change; the keeper (keeper.py) decides when and what to load.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable
from datetime import date

from .. import metrics
from ..identifiers import IdentifierError, normalise
from ..rules.context import Bundle, CaseView, Match, StaffView
from ..store.index import Link, Loaded, handle_key

log = logging.getLogger(__name__)
# The match of a sender no customer is linked to, by kind (Match is immutable, so one serves all).
_NO_ONE = {kind: Match(sender_kind=kind) for kind in ("phone", "email", "web")}


class RestrictionIndex:
    """One per process. Reads are plain dict lookups; writes swap in whole per-customer entries."""

    def __init__(self) -> None:
        self.loaded = False
        self.bundles: dict[int, Bundle] = {}
        self.links: dict[str, tuple[Link, ...]] = {}
        self.staff: dict[int, StaffView] = {}
        self.cases_by_ref: dict[str, CaseView] = {}
        self.cases_by_id: dict[int, CaseView] = {}
        self.external_refs: dict[str, int] = {}
        self.flags: dict[int, frozenset[str]] = {}  # customer → recorded adjustment flags
        # Identifiers more than one customer holds as their own → those customers (id, name); read
        # only for identifiers in `links`. `_sharing`: customer → the keys naming them there.
        self.shared: dict[str, tuple[tuple[int, str], ...]] = {}
        self._sharing: dict[int, set[str]] = {}
        self.closures: frozenset[date] = frozenset()
        self._handles: dict[int, set[str]] = {}
        self._ref_of: dict[int, str] = {}
        self.version = 0  # bumped on every change; lets tests and the benchmark see propagation
        self.last_change = 0.0

    # -- reads (the decide path) ---------------------------------------------------------------
    def match(
        self, kind: str | None, value: str | None, *, withheld: bool = False, on_behalf_of: str | None = None
    ) -> Match:
        if withheld or kind is None or value is None:
            return Match(withheld=withheld, sender_kind="withheld" if withheld else "none")
        if kind == "ref":
            cid = self.external_refs.get(value)
            return Match(bundles=(self.bundles[cid],) if cid in self.bundles else (), sender_kind="ref")
        key = handle_key(kind, value)
        links = self.links.get(key, ())
        if not links and not on_behalf_of:  # nearly every sender: no customer of ours holds this identifier
            return _NO_ONE.get(kind) or Match(sender_kind=kind)
        direct = [lk.customer_id for lk in links if lk.representative_id is None]
        acting_for = [lk.customer_id for lk in links if lk.representative_id is not None]
        on_behalf = bool(acting_for)
        named = self._customer_named(on_behalf_of)
        if named is not None:
            acting_for = [c for c in acting_for if c == named]
            if named not in direct and named not in acting_for:
                direct.append(named)  # an unregistered third party: treated as the customer
        ids = list(dict.fromkeys([*direct, *acting_for]))
        # Customers linked only for their adjustment flags have no bundle: they are not restricted.
        flags = [self.flags[c] for c in ids if c in self.flags]
        bundles = tuple(self.bundles[c] for c in ids if c in self.bundles)
        # Other customers whose own identifier this is too: the caller may be any of them. Only
        # for an identifier a customer of the index holds as their own (a full load knows no other).
        shared = self.shared.get(key, ()) if any(lk.representative_id is None for lk in links) else ()
        return Match(
            bundles=bundles,
            representative_of=tuple(dict.fromkeys(c for c in acting_for if c in self.bundles)),
            sender_kind=kind,
            adjustments=frozenset().union(*flags),
            on_behalf=on_behalf,
            shared_with=tuple(h for h in shared if h[0] not in self.bundles),
        )

    def _customer_named(self, text: str | None) -> int | None:
        if not text:
            return None
        cid = self.external_refs.get(text.strip().lower())
        if cid is not None:
            return cid
        for kind in ("phone", "email", "web"):
            try:
                links = self.links.get(handle_key(kind, normalise(kind, text)), ())
            except IdentifierError:
                continue
            for lk in links:
                if lk.representative_id is None and lk.customer_id in self.bundles:
                    return lk.customer_id
        return None

    def case(self, reference: str | None) -> CaseView | None:
        return self.cases_by_ref.get(reference.upper()) if reference else None

    # -- writes ---------------------------------------------------------------------------------
    def replace_all(self, loaded: Loaded, staff: dict[int, StaffView], closures: frozenset[date]) -> None:
        """Swap in a full load: every customer, the staff and the closure days."""
        self.bundles, self.links, self._handles = {}, {}, {}
        self.cases_by_ref, self.cases_by_id, self.external_refs, self._ref_of, self.flags = {}, {}, {}, {}, {}
        self.shared, self._sharing = {}, {}
        self.staff, self.closures = staff, closures
        self.install(loaded, ())
        self.loaded = True
        # The index is long-lived: keep the cyclic collector from walking it on every full collection.
        gc.freeze()
        log.info("restriction index loaded: %d customers, %d identifiers", len(self.bundles), len(self.links))

    def install(self, loaded: Loaded, customer_ids: Iterable[int]) -> None:
        """Replace these customers' entries with `loaded` (no await inside: atomic for readers)."""
        for cid in customer_ids:
            self._remove(cid)
        for key, new_links in loaded.links.items():
            self.links[key] = (*self.links.get(key, ()), *new_links)
        for cid, keys in loaded.handles.items():
            self._handles[cid] = keys
        self.flags.update(loaded.flags)
        for cid, bundle in loaded.bundles.items():
            self.bundles[cid] = bundle
            for c in bundle.cases:
                self.cases_by_ref[c.reference.upper()] = c
                self.cases_by_id[c.id] = c
        for ref, cid in loaded.external_refs.items():
            self.external_refs[ref] = cid
            self._ref_of[cid] = ref
        for key, holders in loaded.shared.items():  # who holds each, as the database has it now
            if key not in self.links:  # no customer of the index holds it: never read (see match)
                continue
            self.shared[key] = holders
            for cid, _ in holders:
                self._sharing.setdefault(cid, set()).add(key)
        self._changed()

    def _remove(self, cid: int) -> None:
        for key in self._handles.pop(cid, set()):
            rest = tuple(lk for lk in self.links.get(key, ()) if lk.customer_id != cid)
            if rest:
                self.links[key] = rest
            else:
                self.links.pop(key, None)
        self.flags.pop(cid, None)
        old = self.bundles.pop(cid, None)
        if old is not None:
            for c in old.cases:
                self.cases_by_ref.pop(c.reference.upper(), None)
                self.cases_by_id.pop(c.id, None)
        ref = self._ref_of.pop(cid, None)
        if ref is not None:
            self.external_refs.pop(ref, None)
        for key in self._sharing.pop(cid, set()):  # the load that follows names them again where they still are
            holders = tuple(h for h in self.shared.get(key, ()) if h[0] != cid)
            if len(holders) > 1:
                self.shared[key] = holders
            else:
                self.shared.pop(key, None)

    def set_staff(self, staff: dict[int, StaffView]) -> None:
        self.staff = staff
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.last_change = time.monotonic()
        metrics.INDEX_SIZE.set(len(self.links))
