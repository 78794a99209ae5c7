"""What follows a decision once its contact is durable, off the caller's path.

The banner is pushed to agent screens after the reply; committed decisions are remembered for
retries. A lost push costs nothing durable. (Email acknowledgements plug in here.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..contact import Decision, InboundContact
from ..contactlog import ContactRecord
from ..rediskeys import BANNER_CHANNEL
from .idempotency import Idempotency

log = logging.getLogger(__name__)


class Effects:
    def __init__(self, redis: aioredis.Redis, idempotency: Idempotency) -> None:
        self.redis, self.idempotency = redis, idempotency
        self._background: set[asyncio.Task[None]] = set()

    def after_reply(self, contact: InboundContact, decision: Decision, created: bool) -> None:
        """Fan the banner out to agent screens; a repeat of an earlier provider id was pushed already,
        and its answer is remembered for the next repeat."""
        if not created:
            self._spawn(self.idempotency.remember_answer(contact, decision))
            return
        if decision.banner is None:
            return
        event = {
            "contact_id": decision.contact_id,
            "channel": contact.channel,
            "customer_ids": decision.matched.customer_ids,
            "target": decision.target.model_dump() if decision.target else None,
            "action": decision.action,
            "banner": decision.banner.model_dump(mode="json"),
        }
        self._spawn(self._publish(json.dumps(event)))

    async def after_commit(self, records: list[ContactRecord]) -> None:
        """The contact log's hook: these records are durable (committed or spooled)."""
        await self.idempotency.remember(records)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, payload: str) -> None:
        try:
            await self.redis.publish(BANNER_CHANNEL, payload)
        except (RedisError, OSError) as exc:
            log.debug("banner push failed: %r", exc)
