"""The one decide service every channel goes through. It reads in the order a contact travels:
lookup (the index) → claim and count, when the rules count this contact → rules (pure) → log (which
claims the provider id of every other contact, a batch at a time) → effects.

A contact that needs no counter (most: no restriction that counts) is decided without a Redis
round trip or a timer of its own. Bounded by the settings' deadline (a longer one for written
contacts, whose senders' systems can wait): on a fault or a slow dependency the contact is routed to
the general queue with `degraded: true`, and still logged. The reply waits until the row is
durable; a retry hears the answer its first attempt got.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError

from .. import metrics
from ..caseref import CaseRefPattern, resolve
from ..contact import Decision, InboundContact, degraded_decision
from ..contactlog import Appended, ContactLog, ContactRecord
from ..identifiers import SenderHandle, sender_handle
from ..index import RestrictionIndex
from ..randomid import new_contact_id
from ..rules.context import Match
from ..rules.engine import Verdict
from ..rules.engine import decide as rules_decide
from ..rules.params import WRITTEN
from ..settings import RETRY_SLACK_MS, Settings
from .context import Contexts
from .counting import Counting
from .effects import Effects
from .idempotency import Idempotency
from .records import Rejected, decided_record, rejected_record
from .refusals import RefusalLimit
from .unmatched import UnmatchedVerdicts

log = logging.getLogger(__name__)
# Faults the safe answer expects; anything else is also answered safely but logged with its trace.
EXPECTED_FAULTS = (TimeoutError, RedisError, OSError, asyncpg.PostgresConnectionError)


class IndexNotLoaded(Exception):
    """The restriction index has not loaded (the database was unreachable at start-up)."""


class DecideService:
    def __init__(
        self,
        settings: Settings,
        index: RestrictionIndex,
        contexts: Contexts,
        claims: Idempotency,
        counting: Counting,
        contact_log: ContactLog,
        effects: Effects,
    ) -> None:
        self.index, self.contexts, self.claims, self.counting = index, contexts, claims, counting
        self.log, self.effects = contact_log, effects
        self.case_refs = CaseRefPattern(settings.case_ref_pattern)
        self.unmatched = UnmatchedVerdicts()
        self._decisions: dict[tuple[str, str], metrics.Count] = {}
        self.deadline = settings.decide_deadline_ms / 1000
        self.written_deadline = settings.written_deadline_ms / 1000
        self.log_wait = settings.log_wait_ms / 1000
        self.refusals = RefusalLimit(self._log_rejected_now)

    def deadline_for(self, channel: str) -> float:
        """Who waits for the answer. A caller on the line or at the desk (phone, visit) hears the safe
        answer within the decide deadline. A mail server, a web page or the post room can wait longer
        (Microsoft Graph gives 3 s, Postfix tens of seconds): written contacts have a deadline of their
        own, so that a moment of load does not answer them degraded, unchecked against their sender's
        restrictions."""
        return self.written_deadline if channel in WRITTEN else self.deadline

    def retry_patience(self, channel: str) -> float:
        """How long a retry waits for the attempt in flight: its decision, then its row made durable."""
        return self.deadline_for(channel) + self.log_wait + RETRY_SLACK_MS / 1000

    async def decide(self, contact: InboundContact) -> tuple[Decision, bool]:
        """The decision, and whether it is new (False: a repeat of an earlier provider id)."""
        started = time.perf_counter()
        contact = self.with_case_ref(contact)
        received = contact.received_at or datetime.now(UTC)
        contact_id = new_contact_id()
        handle = sender_handle(contact.channel, contact.sender)
        claimed = False  # its provider id claimed before deciding (only when the rules count it)
        try:
            decision = self._decide_now(contact, contact_id, handle, received)
            if decision is None:  # the rules count this contact: claim first, so a retry is not counted twice
                claimed = True
                async with asyncio.timeout(self.deadline_for(contact.channel)) as budget:
                    earlier = await self.claims.earlier(contact, budget, self.retry_patience(contact.channel))
                    if earlier is not None:
                        return earlier, False
                    decision = await self._counted(contact, contact_id, handle, received, budget.when())
        except Exception as exc:  # the safe answer, whatever failed: never hang, never 500
            decision = self._degraded(contact, contact_id, received, exc)
        ack, ack_note = self.effects.acknowledgement(contact, decision)
        record = decided_record(contact, decision, handle, received, started, ack=ack, ack_note=ack_note)
        appended = await self.log.append(record, wait=self.log_wait, claimed=claimed)
        if appended.in_flight:  # another attempt holds this provider id: its answer is ours
            appended = await self._answer_of_attempt_in_flight(contact, record)
        decision, created = self.claims.settle(decision, appended)
        self.effects.after_reply(contact, decision, created)
        counted = self._decisions.get((contact.channel, decision.action))
        if counted is None:  # looked up once per pair, not per contact
            counted = self._decisions[(contact.channel, decision.action)] = metrics.DECISIONS.labels(
                contact.channel, decision.action
            )
        counted.n += 1
        metrics.DECIDE_SECONDS.observe(time.perf_counter() - started)
        return decision, created

    def _decide_now(
        self, contact: InboundContact, contact_id: str, handle: SenderHandle, received: datetime
    ) -> Decision | None:
        """The decision, when the rules need no counter for this contact; None when they do."""
        if not self.index.loaded:
            raise IndexNotLoaded("restriction index not loaded yet")
        match = self.index.match(handle.kind, handle.value, withheld=handle.withheld, on_behalf_of=contact.on_behalf_of)
        if self.counting.needed(self.contexts.rules.compiled, match, contact.channel, received):
            return None
        return self._rules(contact, contact_id, match, {}, received)

    async def _counted(
        self, contact: InboundContact, contact_id: str, handle: SenderHandle, received: datetime, until: float | None
    ) -> Decision:
        # Read again after the claim's await: a restriction changed meanwhile is in force for this contact.
        match = self.index.match(handle.kind, handle.value, withheld=handle.withheld, on_behalf_of=contact.on_behalf_of)
        compiled = self.contexts.rules.compiled
        specs = self.counting.needed(compiled, match, contact.channel, received)
        counts = await self.counting.count(compiled, match, specs, received, until)
        return self._rules(contact, contact_id, match, counts, received)

    def _rules(
        self, contact: InboundContact, contact_id: str, match: Match, counts: dict[str, int], received: datetime
    ) -> Decision:
        case = self.index.case(contact.case_ref)

        def verdict() -> Verdict:
            ctx = self.contexts.build(match, counts=counts, case=case, appointment=contact.appointment)
            return rules_decide(contact, ctx, received)

        rules = self.contexts.rules.compiled
        key = UnmatchedVerdicts.key(contact, match, case is not None, rules)
        if key is not None:
            return self.unmatched.decision(rules, self.contexts.calendar(), key, received, verdict, contact_id)
        return verdict().to_decision(contact_id, received_at=received)

    async def _answer_of_attempt_in_flight(self, contact: InboundContact, record: ContactRecord) -> Appended:
        """Wait for the answer of the attempt that holds this provider id; if none comes in time (that
        attempt was lost), log ours after all and let the log's unique key decide. If that answer can
        no longer be given (Redis lost its template), the provider id is claimed for ours: logged."""
        try:
            async with asyncio.timeout(self.retry_patience(contact.channel)):
                earlier = await self.claims.answer_of(contact, str(record.id))
            if earlier is not None:
                return Appended(duplicate_of=earlier.model_dump(mode="json"))
        except (TimeoutError, RedisError, OSError):
            pass
        return await self.log.append(record, wait=self.log_wait, claimed=True)

    def with_case_ref(self, contact: InboundContact) -> InboundContact:
        """The contact with the case it is about, found in its subject when the caller named none."""
        if contact.case_ref or not contact.subject:
            return contact
        ref = resolve(self.case_refs, None, contact.subject, self.index.case)
        return contact if ref is None else contact.model_copy(update={"case_ref": ref})

    def _degraded(self, contact: InboundContact, contact_id: str, received: datetime, exc: Exception) -> Decision:
        why = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        expected = isinstance(exc, (*EXPECTED_FAULTS, IndexNotLoaded))
        log.warning("decide degraded (%s) for a %s contact", why, contact.channel, exc_info=not expected)
        metrics.DEGRADED.labels(why).inc()
        decision = degraded_decision(contact_id, f"restriction check unavailable ({why})")
        decision.received_at = received
        return decision

    async def log_rejected(self, rejected: Rejected) -> None:
        """Log an attempt we could not decide (malformed or refused), so that nothing is lost; one
        refused from an address that sent many this minute is counted, and logged with its count."""
        if self.refusals.applies(rejected) and not self.refusals.admit(rejected):
            return
        await self._log_rejected_now(rejected)

    async def _log_rejected_now(self, rejected: Rejected) -> None:
        await self.log.append(rejected_record(rejected), wait=self.log_wait)

    async def log_answered(self, contact: InboundContact, decision: Decision, error: str) -> None:
        """Log a contact a channel answered without deciding (a platform's fallback call)."""
        received = contact.received_at or datetime.now(UTC)
        decision.received_at = received
        record: ContactRecord = decided_record(
            contact,
            decision,
            sender_handle(contact.channel, contact.sender),
            received,
            time.perf_counter(),
            error=error[:2000],
        )
        await self.log.append(record, wait=self.log_wait)
