"""What follows a decision once its contact is durable, off the caller's path.

The banner is pushed to agent screens after the reply; committed decisions are remembered for
retries. A lost push costs nothing durable. An email acknowledgement is composed here and written
to the outbox in the same statement as its contact row (so it exists exactly when the contact is
logged, spooled or not); once committed, the outbox sender is woken to deliver it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..contact import Decision, InboundContact
from ..contactlog import ContactRecord
from ..outbox.acks import acknowledgement, as_record, load_template
from ..rediskeys import BANNER_CHANNEL
from ..settings import Settings
from .idempotency import Idempotency

log = logging.getLogger(__name__)


class Effects:
    def __init__(
        self,
        redis: aioredis.Redis,
        idempotency: Idempotency,
        settings: Settings | None = None,
        wake_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.redis, self.idempotency = redis, idempotency
        self.settings = settings or Settings()
        self.wake_outbox = wake_outbox
        self.ack_template = load_template()
        self._background: set[asyncio.Task[None]] = set()

    def acknowledgement(self, contact: InboundContact, decision: Decision) -> tuple[dict[str, Any] | None, str | None]:
        """The acknowledgement to queue with the contact's row, and the note its log row keeps."""
        mail, note = acknowledgement(contact, decision, self.settings, self.ack_template)
        return (as_record(mail) if mail else None), note

    def after_reply(self, contact: InboundContact, decision: Decision, created: bool) -> None:
        """Fan the banner out to agent screens; a repeat of an earlier provider id was pushed already,
        and its answer is remembered for the next repeat."""
        if not created:
            self.idempotency.remember_answer(contact, decision)
            return
        if decision.banner is None:
            return
        answered = decision.answered()
        event = {
            "contact_id": decision.contact_id,
            "channel": contact.channel,
            "customer_ids": decision.matched.customer_ids,
            "target": answered["target"],
            "action": decision.action,
            "banner": answered["banner"],
        }
        self._spawn(self._publish(json.dumps(event)))

    def after_commit(self, records: list[ContactRecord]) -> None:
        """The contact log's hook: these records are durable (committed or spooled)."""
        self.idempotency.remember(records)
        if self.wake_outbox is not None and any(r.ack for r in records):
            self.wake_outbox()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, payload: str) -> None:
        try:
            await self.idempotency.batch.call("publish", BANNER_CHANNEL, payload)  # one round trip with others
        except (RedisError, OSError) as exc:
            log.debug("banner push failed: %r", exc)
