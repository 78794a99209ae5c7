"""Reads across restrictions: letter facts, the review-due rows, and the subject-access export."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from .. import lifecycle as lc
from ..letters import LetterFacts, Outcome
from ..postal import Address
from ..reviews import ReviewRow
from ..rules.registry import REGISTRY
from .people import get_customer
from .restrictions import event, get, load_records

OPEN_STATUSES = ["proposed", "active", "under_appeal"]


async def letter_facts(conn: asyncpg.Connection, restriction_id: int, policy: lc.Policy, today: date) -> LetterFacts:
    record = await get(conn, restriction_id, policy)
    customer = await conn.fetchrow(
        """SELECT name, address_lines, postcode, adjustments->'flags' ? 'needs_large_print' AS large_print
           FROM customers WHERE id = $1""",
        record.customer_id,
    )
    # The staff and cases the kind's params name, for its wording (a named contact who has left too).
    refs = REGISTRY[record.kind].references(record.params)
    records = await load_records(conn, refs, active_only=False)
    lines = tuple(customer["address_lines"])
    return LetterFacts(
        restriction=record,
        customer_name=customer["name"],
        today=today,
        records=records,
        address=Address(lines, customer["postcode"] or "") if lines else None,
        large_print=bool(customer["large_print"]),
        outcome=await _outcome(conn, restriction_id, record.status, record.valid_to, today),
        others_in_force=await conn.fetchval(
            "SELECT count(*) FROM restrictions WHERE customer_id = $1 AND id <> $2 AND status = ANY($3::text[])",
            record.customer_id,
            restriction_id,
            list(lc.ENFORCED),
        ),
    )


# The latest decision the customer is to be told of: an appeal decided since the restriction was
# last made, amended or renewed (a new decision, told in a letter of its own), if any.
_LATEST_APPEAL = """
SELECT a.outcome, a.lodged_on, a.decided_on FROM appeals a
JOIN restriction_events e ON e.restriction_id = a.restriction_id AND e.kind = 'appeal_decided'
                         AND (e.after->>'appeal_id')::bigint = a.id
WHERE a.restriction_id = $1 AND a.outcome IN ('upheld', 'varied', 'lifted')
  AND e.id > coalesce((SELECT max(d.id) FROM restriction_events d WHERE d.restriction_id = $1
                        AND (d.kind IN ('created', 'amended', 'review_period_approved')
                             OR (d.kind = 'reviewed' AND d.after->>'outcome' = 'renew'))), 0)
ORDER BY a.id DESC LIMIT 1"""


# The day the latest lift took effect, as its event says (lifts before this was recorded: none).
_LIFTED_ON = """SELECT after->>'lifted_on' FROM restriction_events
                WHERE restriction_id = $1 AND kind = 'lifted' ORDER BY id DESC LIMIT 1"""


async def _outcome(
    conn: asyncpg.Connection, restriction_id: int, status: str, valid_to: date | None, today: date
) -> Outcome | None:
    """What the restriction's letter tells of: None for the decision itself; else the outcome of the
    appeal decided since, or the lift (policy 000 §6.3 and §7.1: told in writing)."""
    appeal = await conn.fetchrow(_LATEST_APPEAL, restriction_id)
    if status == "lifted":
        if appeal is not None and appeal["outcome"] == "lifted":
            return Outcome("lifted", appeal["decided_on"], appeal["lodged_on"])
        lifted_on = await conn.fetchval(_LIFTED_ON, restriction_id)
        return Outcome("lifted", date.fromisoformat(lifted_on) if lifted_on else valid_to or today)
    if appeal is not None:
        return Outcome(appeal["outcome"], appeal["decided_on"], appeal["lodged_on"])
    return None


async def review_rows(conn: asyncpg.Connection | asyncpg.Pool) -> list[ReviewRow]:
    rows = await conn.fetch(
        """SELECT r.id, r.customer_id, c.name, r.kind, r.status, r.review_due, r.valid_to,
                  r.letter_sent_on, r.urgent_review_since, r.urgent_review_why,
                  (SELECT min(a.due_on) FROM appeals a
                    WHERE a.restriction_id = r.id AND a.outcome IS NULL) AS appeal_due,
                  -- The latest letter, if emailed, that the outbox gave up on or refused.
                  (SELECT coalesce(o.status IN ('failed', 'refused'), false)
                     FROM restriction_letters l LEFT JOIN outbox o ON o.id = l.outbox_id
                    WHERE l.restriction_id = r.id ORDER BY l.id DESC LIMIT 1) AS letter_undelivered,
                  (r.equality_note_asked->>'staff_id')::bigint AS note_asked_of,
                  (r.review_period_asked->>'approver')::bigint AS period_asked_of,
                  -- Proposed, its equality note declined and none signed or asked since.
                  (r.status = 'proposed' AND r.equality_note IS NULL AND r.equality_note_asked IS NULL
                   AND EXISTS (SELECT 1 FROM restriction_events e
                                WHERE e.restriction_id = r.id AND e.kind = 'equality_note_declined')) AS note_declined
           FROM restrictions r JOIN customers c ON c.id = r.customer_id
           WHERE r.status = ANY($1::text[])
              -- Lifted, and the customer (who had a letter, or appealed) not told yet, or the
              -- letter telling them emailed and not delivered.
              OR (r.status = 'lifted'
                  AND (EXISTS (SELECT 1 FROM restriction_letters l WHERE l.restriction_id = r.id)
                       OR EXISTS (SELECT 1 FROM appeals a WHERE a.restriction_id = r.id))
                  AND (r.letter_sent_on IS NULL OR coalesce((
                      SELECT o.status IN ('failed', 'refused') FROM restriction_letters l
                      LEFT JOIN outbox o ON o.id = l.outbox_id
                      WHERE l.restriction_id = r.id ORDER BY l.id DESC LIMIT 1), false)))
           ORDER BY r.review_due, r.id""",
        OPEN_STATUSES,
    )
    return [
        ReviewRow(
            r["id"],
            r["customer_id"],
            r["name"],
            r["kind"],
            r["status"],
            r["review_due"],
            r["valid_to"],
            r["letter_sent_on"],
            r["appeal_due"],
            r["urgent_review_since"],
            r["urgent_review_why"],
            bool(r["letter_undelivered"]),
            r["note_asked_of"],
            r["period_asked_of"],
            bool(r["note_declined"]),
        )
        for r in rows
    ]


async def _json_rows(conn: asyncpg.Connection, sql: str, *args: Any) -> list[Any]:
    # to_jsonb keeps the export complete when later migrations add columns.
    return [r[0] for r in await conn.fetch(sql, *args)]


_RESTRICTION_IDS = "(SELECT id FROM restrictions WHERE customer_id = $1)"
# A contact from an identifier other customers share (a household phone), or made for others too,
# may carry their restrictions in its banner and reasons: not this customer's data (UK GDPR Art.
# 15(4)). Where the banner names a restriction of anyone else, what the decision took from it (the
# banner, the reasons, the message the caller was given, the target, the case) and the other
# customers' ids are left out, and the export says so.
_CONTACT_AS_EXPORTED = """CASE
    WHEN EXISTS (SELECT 1 FROM jsonb_array_elements_text(coalesce(k.banner->'restriction_ids', '[]')) x
                 WHERE x::bigint NOT IN (SELECT id FROM restrictions WHERE customer_id = $1))
    THEN to_jsonb(k) - 'banner' - 'reasons' - 'customer_message' - 'target' - 'case_id' - 'case_ref'
         || jsonb_build_object(
        'customer_ids', CASE WHEN k.customer_ids @> ARRAY[$1]::bigint[] THEN ARRAY[$1]::bigint[] ELSE '{}' END,
        'representative_of', CASE WHEN k.representative_of @> ARRAY[$1]::bigint[] THEN ARRAY[$1] ELSE '{}' END,
        'redacted', 'What this contact says of other customers (their restrictions) is left out.')
    ELSE to_jsonb(k) END"""
# What a subject-access export holds beside the customer record: section → rows, each as JSON.
_EXPORT_SECTIONS: tuple[tuple[str, str], ...] = (
    ("restrictions", "SELECT to_jsonb(r) FROM restrictions r WHERE customer_id = $1 ORDER BY id"),
    ("appeals", f"SELECT to_jsonb(a) FROM appeals a WHERE restriction_id IN {_RESTRICTION_IDS} ORDER BY id"),
    (
        "letters",
        # The PDF as sent is left out of the JSON (its text and HTML are in it); ask for the letter itself.
        f"SELECT to_jsonb(l) - 'body_pdf' FROM restriction_letters l WHERE restriction_id IN {_RESTRICTION_IDS} "
        "ORDER BY id",
    ),
    ("events", "SELECT to_jsonb(e) FROM restriction_events e WHERE customer_id = $1 ORDER BY id"),
    ("customer_events", "SELECT to_jsonb(e) FROM customer_events e WHERE customer_id = $1 ORDER BY id"),
    ("cases", "SELECT to_jsonb(c) FROM cases c WHERE customer_id = $1 ORDER BY id"),
    (
        "contacts",
        f"SELECT {_CONTACT_AS_EXPORTED} FROM contacts k WHERE customer_ids @> ARRAY[$1]::bigint[] "
        "OR representative_of @> ARRAY[$1]::bigint[] ORDER BY received_at",
    ),
)


async def export_customer(
    conn: asyncpg.Connection, customer_id: int, actor: lc.Actor, why: str | None
) -> dict[str, Any]:
    """Everything held about one customer (UK GDPR Art. 15), and an audit event saying so."""
    async with conn.transaction(isolation="repeatable_read"):
        customer = await get_customer(conn, customer_id)
        doc: dict[str, Any] = {"customer": customer.model_dump(mode="json")}
        for section, sql in _EXPORT_SECTIONS:
            doc[section] = await _json_rows(conn, sql, customer_id)
        subject = {"id": None, "customer_id": customer_id}
        await event(conn, subject, actor, "exported", why=why or "subject access export")
    return doc
