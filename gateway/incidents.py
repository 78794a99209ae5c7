"""Incident referrals from agents: what happened, when, on which contact. A referral lands with the
caution leads — on the customer's record and in the review-due report — as the evidence a later
restriction decision needs. It restricts nothing by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from .errors import NotAllowed, field_error
from .lifecycle import Actor
from .models.incidents import IncidentIn, IncidentReferral
from .store import incidents as store
from .store.people import ensure_customer

FUTURE_SLACK = timedelta(minutes=10)  # a desktop's clock may run a little fast
OLDEST = timedelta(days=400)


async def refer(pool: asyncpg.Pool, body: IncidentIn, actor: Actor) -> IncidentReferral:
    """Record a referral by the signed-in staff member `actor`, about the customer the contact matched
    (or the one named)."""
    if actor.staff_id is None:
        raise NotAllowed("an incident is referred by a person: sign in, or use a key of your own")
    now = datetime.now(UTC)
    if body.happened_at > now + FUTURE_SLACK:
        raise field_error("happened_at", "is in the future")
    if body.happened_at < now - OLDEST:
        raise field_error("happened_at", f"is more than {OLDEST.days} days ago")
    customer_id = body.customer_id
    async with pool.acquire() as conn:
        if body.contact_id is not None:
            contact = await store.contact_seen(conn, body.contact_id)
            if contact is None:
                raise field_error("contact_id", "no decided contact has this id")
            matched = list(contact["customer_ids"] or [])
            if customer_id is not None and matched and customer_id not in matched:
                raise field_error("customer_id", "is not a customer this contact matched")
            if customer_id is None and len(matched) > 1:
                raise field_error("customer_id", "the contact matched several customers: say which one it was")
            if customer_id is None and matched:
                customer_id = matched[0]
        if customer_id is not None:
            await ensure_customer(conn, customer_id)
        row = await store.insert_referral(
            conn, customer_id, body.contact_id, body.happened_at, body.what, actor.staff_id
        )
    return IncidentReferral.model_validate(row)
