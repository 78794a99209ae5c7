"""The in-memory restriction index: normalised identifier → the restricted customers it reaches.

Only customers with an enforced restriction are held (a fraction of a percent), so every decision
is a dictionary lookup. Loaded at start, refreshed per customer on invalidation messages (Redis
pub/sub, and PostgreSQL LISTEN/NOTIFY when Redis is down) and rebuilt by a periodic full resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from pydantic import TypeAdapter

from . import metrics
from .rediskeys import INVALIDATE_CHANNEL, PG_INVALIDATE_CHANNEL
from .rules.context import (
    Bundle,
    CaseView,
    CustomerView,
    Match,
    RepresentativeView,
    RestrictionView,
    StaffView,
)
from .rules.params import Window
from .rules.registry import Params

log = logging.getLogger(__name__)
_PARAMS: TypeAdapter[Any] = TypeAdapter(Params)
_WINDOWS: TypeAdapter[list[Window]] = TypeAdapter(list[Window])
ENFORCED = ("active", "under_appeal")
DAY_CHECK_SECONDS = 30.0


def handle_key(kind: str, value: str) -> str:
    return f"{kind}:{value}"


@dataclass(frozen=True, slots=True)
class Link:
    customer_id: int
    representative_id: int | None = None


@dataclass
class _Loaded:
    """What one load query set returns, for all customers or a few."""

    bundles: dict[int, Bundle] = field(default_factory=dict)
    handles: dict[int, set[str]] = field(default_factory=dict)
    links: dict[str, list[Link]] = field(default_factory=dict)
    external_refs: dict[str, int] = field(default_factory=dict)


_RESTRICTIONS = """
    SELECT r.id, r.customer_id, r.kind, r.params, r.channels, r.status, r.review_due
    FROM restrictions r
    WHERE r.status = ANY($1::text[]) AND r.valid_from <= $2 AND (r.valid_to IS NULL OR r.valid_to >= $2)
      AND ($3::bigint[] IS NULL OR r.customer_id = ANY($3::bigint[]))"""


async def _restrictions(
    conn: asyncpg.Connection, today: date, only: Sequence[int] | None
) -> dict[int, list[RestrictionView]]:
    rows = await conn.fetch(_RESTRICTIONS, list(ENFORCED), today, None if only is None else list(only))
    by_customer: dict[int, list[RestrictionView]] = {}
    for n, r in enumerate(rows):
        if n % 500 == 499:
            await asyncio.sleep(0)  # a full resync must not stall the decisions being served
        by_customer.setdefault(r["customer_id"], []).append(
            RestrictionView(
                id=r["id"],
                customer_id=r["customer_id"],
                kind=r["kind"],
                params=_PARAMS.validate_python(r["params"]),
                channels=frozenset(r["channels"]),
                status=r["status"],
                review_due=r["review_due"],
            )
        )
    return by_customer


_CUSTOMERS = "SELECT id, name, external_ref, adjustments FROM customers WHERE id = ANY($1::bigint[])"
_REPRESENTATIVES = """SELECT id, customer_id, name, relationship FROM representatives
                      WHERE customer_id = ANY($1::bigint[])"""
_IDENTIFIERS = """SELECT kind, value, customer_id, NULL::bigint AS representative_id
                  FROM identifiers WHERE customer_id = ANY($1::bigint[])
                  UNION ALL
                  SELECT i.kind, i.value, r.customer_id, i.representative_id
                  FROM representatives r JOIN identifiers i ON i.representative_id = r.id
                  WHERE r.customer_id = ANY($1::bigint[])"""
_CASES = """SELECT id, reference, customer_id, status, closed_on, subject
            FROM cases WHERE customer_id = ANY($1::bigint[])"""


async def _load(conn: asyncpg.Connection, today: date, only: Sequence[int] | None) -> _Loaded:
    """Bundles and identifier links for customers with an enforced restriction (all, or `only`)."""
    by_customer = await _restrictions(conn, today, only)
    out = _Loaded()
    if not by_customer:
        return out
    ids = list(by_customer)
    reps_of: dict[int, list[RepresentativeView]] = {}
    for r in await conn.fetch(_REPRESENTATIVES, ids):
        reps_of.setdefault(r["customer_id"], []).append(RepresentativeView(r["id"], r["name"], r["relationship"]))
    cases_of: dict[int, list[CaseView]] = {}
    for c in await conn.fetch(_CASES, ids):
        cases_of.setdefault(c["customer_id"], []).append(
            CaseView(c["id"], c["reference"], c["customer_id"], c["status"], c["closed_on"], c["subject"])
        )
    for c in await conn.fetch(_CUSTOMERS, ids):
        flags = frozenset((c["adjustments"] or {}).get("flags", []))
        out.bundles[c["id"]] = Bundle(
            customer=CustomerView(c["id"], c["name"], flags),
            restrictions=tuple(by_customer[c["id"]]),
            representatives=tuple(reps_of.get(c["id"], ())),
            cases=tuple(cases_of.get(c["id"], ())),
        )
        if c["external_ref"]:
            out.external_refs[c["external_ref"].lower()] = c["id"]
    for i in await conn.fetch(_IDENTIFIERS, ids):
        key = handle_key(i["kind"], i["value"])
        out.links.setdefault(key, []).append(Link(i["customer_id"], i["representative_id"]))
        out.handles.setdefault(i["customer_id"], set()).add(key)
    return out


async def load_staff(conn: asyncpg.Connection | asyncpg.Pool) -> dict[int, StaffView]:
    rows = await conn.fetch(
        "SELECT id, name, role, line, voicemail, mailbox, queue, working_hours FROM staff WHERE active"
    )
    return {
        r["id"]: StaffView(
            r["id"],
            r["name"],
            r["role"],
            r["line"],
            r["voicemail"],
            r["mailbox"],
            r["queue"],
            tuple(_WINDOWS.validate_python(r["working_hours"] or [])),
        )
        for r in rows
    }


class RestrictionIndex:
    """One per process. Reads are plain dict lookups; writes swap in whole per-customer entries."""

    def __init__(self) -> None:
        self.loaded = False
        self.bundles: dict[int, Bundle] = {}
        self.links: dict[str, tuple[Link, ...]] = {}
        self.staff: dict[int, StaffView] = {}
        self.cases_by_ref: dict[str, CaseView] = {}
        self.external_refs: dict[str, int] = {}
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
        links = self.links.get(handle_key(kind, value), ())
        direct = [lk.customer_id for lk in links if lk.representative_id is None]
        acting_for = [lk.customer_id for lk in links if lk.representative_id is not None]
        named = self._customer_named(on_behalf_of)
        if named is not None:
            acting_for = [c for c in acting_for if c == named]
            if named not in direct and named not in acting_for:
                direct.append(named)  # an unregistered third party: treated as the customer
        ids = list(dict.fromkeys([*direct, *acting_for]))
        return Match(
            bundles=tuple(self.bundles[c] for c in ids if c in self.bundles),
            representative_of=tuple(dict.fromkeys(acting_for)),
            sender_kind=kind,
        )

    def _customer_named(self, text: str | None) -> int | None:
        if not text:
            return None
        cid = self.external_refs.get(text.strip().lower())
        if cid is not None:
            return cid
        from .identity import IdentifierError, normalise

        for kind in ("phone", "email", "web"):
            try:
                links = self.links.get(handle_key(kind, normalise(kind, text)), ())
            except IdentifierError:
                continue
            for lk in links:
                if lk.representative_id is None:
                    return lk.customer_id
        return None

    def case(self, reference: str | None) -> CaseView | None:
        return self.cases_by_ref.get(reference.upper()) if reference else None

    # -- writes ---------------------------------------------------------------------------------
    def _install(self, loaded: _Loaded, customer_ids: Iterable[int]) -> None:
        """Replace these customers' entries with `loaded` (no await inside: atomic for readers)."""
        for cid in customer_ids:
            for key in self._handles.pop(cid, set()):
                rest = tuple(lk for lk in self.links.get(key, ()) if lk.customer_id != cid)
                if rest:
                    self.links[key] = rest
                else:
                    self.links.pop(key, None)
            old = self.bundles.pop(cid, None)
            if old is not None:
                for c in old.cases:
                    self.cases_by_ref.pop(c.reference.upper(), None)
            ref = self._ref_of.pop(cid, None)
            if ref is not None:
                self.external_refs.pop(ref, None)
        for key, new_links in loaded.links.items():
            self.links[key] = (*self.links.get(key, ()), *new_links)
        for cid, keys in loaded.handles.items():
            self._handles[cid] = keys
        for cid, bundle in loaded.bundles.items():
            self.bundles[cid] = bundle
            for c in bundle.cases:
                self.cases_by_ref[c.reference.upper()] = c
        for ref, cid in loaded.external_refs.items():
            self.external_refs[ref] = cid
            self._ref_of[cid] = ref
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.last_change = time.monotonic()
        metrics.INDEX_SIZE.set(len(self.links))

    async def load_all(self, pool: asyncpg.Pool, today: date) -> None:
        async with pool.acquire() as conn:
            loaded = await _load(conn, today, None)
            staff = await load_staff(conn)
            closures = frozenset(r["day"] for r in await conn.fetch("SELECT day FROM closures"))
        self.bundles, self.links, self._handles = {}, {}, {}
        self.cases_by_ref, self.external_refs, self._ref_of = {}, {}, {}
        self.staff, self.closures = staff, closures
        self._install(loaded, ())
        self.loaded = True
        # The index is long-lived: keep the cyclic collector from walking it on every full collection.
        gc.freeze()
        log.info("restriction index loaded: %d customers, %d identifiers", len(self.bundles), len(self.links))

    async def refresh_customers(self, pool: asyncpg.Pool, today: date, ids: Sequence[int]) -> None:
        async with pool.acquire() as conn:
            loaded = await _load(conn, today, ids)
        self._install(loaded, ids)

    async def refresh_staff(self, pool: asyncpg.Pool) -> None:
        self.staff = await load_staff(pool)
        self._changed()


class IndexKeeper:
    """Keeps an index fresh: listens on Redis and PostgreSQL, and resyncs everything periodically."""

    def __init__(
        self,
        index: RestrictionIndex,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        dsn: str,
        resync_seconds: int,
        today: Any,
        on_other: Any = None,
        day_check_seconds: float = DAY_CHECK_SECONDS,
    ) -> None:
        self.index, self.pool, self.redis, self.dsn = index, pool, redis, dsn
        self.resync_seconds = resync_seconds
        self.day_check_seconds = day_check_seconds
        self.today = today  # () -> date in the provider's time zone
        self.on_other = on_other  # async (payload) -> None, for "ruleset" and the like
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        """Load, then listen. If the database is unreachable, start anyway (decisions are degraded
        until the index loads) and keep trying to load it in the background."""
        loops = [self._apply_loop(), self._redis_loop(), self._pg_loop(), self._resync_loop()]
        try:
            await self.index.load_all(self.pool, self.today())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("restriction index not loaded (%r): answering degraded until it is", exc)
            loops.append(self._load_until_loaded())
        for coro in loops:
            self._tasks.append(asyncio.create_task(coro))

    async def _load_until_loaded(self) -> None:
        while not self.index.loaded:
            await asyncio.sleep(1.0)
            try:
                await self.index.load_all(self.pool, self.today())
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                continue
            if self.on_other is not None:
                await self.on_other("ruleset")  # the published rule set could not be read either

    async def close(self) -> None:
        """Stop listening. Bounded: a client library that swallows cancellation cannot hang shutdown."""
        self._closing = True
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def notify(self, payload: str) -> None:
        self._pending.add(payload)
        self._wake.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, set()
            try:
                await self._apply(batch)
            except Exception as exc:  # put the work back and try again shortly
                log.warning("index refresh failed (%r); retrying in a second", exc)
                self._pending |= batch
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _apply(self, batch: set[str]) -> None:
        customers = sorted({int(p) for p in batch if p.isdigit()})
        if "all" in batch:
            await self.index.load_all(self.pool, self.today())
        elif customers:
            await self.index.refresh_customers(self.pool, self.today(), customers)
        if "staff" in batch:
            await self.index.refresh_staff(self.pool)
        others = batch - {"all", "staff"} - {str(c) for c in customers}
        if self.on_other is not None:
            for payload in others:
                await self.on_other(payload)

    async def _redis_loop(self) -> None:
        while not self._closing:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(INVALIDATE_CHANNEL)
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        data = message["data"]
                        self.notify(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("index: Redis subscription lost (%r); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]

    async def _pg_loop(self) -> None:
        while not self._closing:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener(PG_INVALIDATE_CHANNEL, lambda *a: self.notify(str(a[3])))
                while not conn.is_closed() and not self._closing:
                    await asyncio.sleep(0.5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("index: PostgreSQL LISTEN lost (%r); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 1.0)

    async def _resync_loop(self) -> None:
        """A full resync every resync_seconds, and within half a minute of local midnight, when
        restrictions start (valid_from) and end (valid_to) without anyone changing them."""
        loop = asyncio.get_running_loop()
        while True:
            day, since = self.today(), loop.time()
            while loop.time() - since < self.resync_seconds and self.today() == day:
                await asyncio.sleep(min(self.day_check_seconds, self.resync_seconds))
            self.notify("all")
