"""The group-commit writer on a real PostgreSQL: what one batch holds, and that a bad record cannot split it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

from prometheus_client import generate_latest

from gateway import db, metrics
from gateway.contact import InboundContact, degraded_decision
from gateway.contactlog import AnswerJson, Appended, ContactLog, ContactRecord, Spool, replay_file, writer
from gateway.contactlog.writer import SLOW_COMMIT, _open
from gateway.decide.records import decided_record
from gateway.identifiers import sender_handle
from gateway.store.contactlog import FIELDS
from tests.helpers import via_proxy


def _record(n: int, **fields: object) -> ContactRecord:
    return ContactRecord(
        id=uuid.uuid4(),
        received_at=datetime.now(UTC),
        channel="phone",
        action="route",
        provider_id=f"batch-{n}",
        **fields,
    )


async def test_a_record_with_unstorable_text_is_written_in_its_batch(settings, conn, tmp_path):
    """Found in review: a lone surrogate in a provider id sent the record to quarantine and its
    batch-mates to one-by-one writes."""
    records = [
        _record(0),
        _record(1, sender_raw="07700\x00900123", reasons=[{"because": "half a pair \udc00"}]),
        _record(2),
    ]
    records[1].provider_id = "batch-\ud800"
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    try:
        appends = [asyncio.create_task(log.append(r, wait=5)) for r in records]
        await asyncio.sleep(0)  # all three are queued before the writer takes its first batch
        log.start()
        results = await asyncio.gather(*appends)
    finally:
        await log.close()
        await pool.close()
    assert not any(r.spooled for r in results)
    rows = await conn.fetch(
        "SELECT provider_id, sender_raw, reasons, logged_at FROM contacts WHERE id = ANY($1::uuid[]) ORDER BY 1",
        [r.id for r in records],
    )
    assert [r["provider_id"] for r in rows] == ["batch-0", "batch-2", "batch-\ufffd"]
    assert rows[2]["sender_raw"] == "07700\ufffd900123"
    assert rows[2]["reasons"] == [{"because": "half a pair \ufffd"}]
    assert len({r["logged_at"] for r in rows}) == 1  # now() of one transaction: one batch
    assert not list(tmp_path.iterdir())  # nothing quarantined, nothing spooled


async def test_text_and_values_come_back_exactly_as_written(settings, conn, tmp_path):
    """The batch travels as JSON: every kind of value a row holds must survive it unchanged."""
    text = 'Flat 2, "Ty Newydd" \\u0000 not a NUL\nna\u00efve caf\u00e9 \U0001f3e0 \x01 end'
    record = _record(
        0,
        subject=text,
        body_excerpt="line one\r\nline two\ttabbed",
        customer_ids=[3, 1],
        representative_of=[7],
        target={"type": "queue", "id": "general", "note": text},
        reasons=[{"because": "\U0001f4de only on Tuesdays", "n": 2}],
        ruleset_version=4,
        latency_us=123,
        flagged=True,
    )
    record.received_at = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    try:
        appended = await log.append(record, wait=5)
    finally:
        await log.close()
        await pool.close()
    assert not appended.spooled
    row = await conn.fetchrow("SELECT * FROM contacts WHERE id = $1", record.id)
    assert row["subject"] == text  # a backslash and "u0000" in text is text, not a NUL to clean
    assert row["body_excerpt"] == "line one\r\nline two\ttabbed"
    assert row["customer_ids"] == [1, 3]
    assert row["representative_of"] == [7]
    assert row["target"] == {"type": "queue", "id": "general", "note": text}
    assert row["reasons"] == [{"because": "\U0001f4de only on Tuesdays", "n": 2}]
    assert (row["ruleset_version"], row["latency_us"], row["flagged"]) == (4, 123, True)
    assert row["received_at"] == record.received_at


async def test_one_commit_in_flight_at_a_time_still_logs_every_contact(settings, conn, tmp_path):
    """GATEWAY_LOG_FLUSHES_IN_FLIGHT=1: what arrives during a commit waits for it and goes in the next batch."""
    records = [_record(n) for n in range(60)]
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path), log_flushes_in_flight=1))
    log.start()
    try:
        results = []
        for start in range(0, len(records), 20):  # three waves, each arriving while the last commits
            results += await asyncio.gather(*(log.append(r, wait=5) for r in records[start : start + 20]))
    finally:
        await log.close()
        await pool.close()
    assert not any(r.spooled or r.duplicate_of for r in results)
    logged = await conn.fetch("SELECT id, logged_at FROM contacts WHERE id = ANY($1::uuid[])", [r.id for r in records])
    assert {r["id"] for r in logged} == {r.id for r in records}
    assert len({r["logged_at"] for r in logged}) < len(records)  # batched, not one commit each


async def _hold_provider_id(conn, record: ContactRecord) -> None:
    """An open transaction that has claimed this record's provider id: the record's commit waits on
    it (as it would on another batch holding the same provider id) until it rolls back."""
    await conn.execute("BEGIN")
    await conn.execute(
        "INSERT INTO contact_provider_ids (channel, provider_id, contact_id, decision) VALUES ($1, $2, $3, '{}')",
        record.channel,
        record.provider_id,
        uuid.uuid4(),
    )


@contextlib.asynccontextmanager
async def _held_commit(
    settings, conn, tmp_path, second_commit_after_ms: int
) -> AsyncIterator[tuple[ContactLog, ContactRecord, asyncio.Task[Appended]]]:
    """A running log whose first commit is held (its provider id claimed by `conn`'s open
    transaction) and under way for 50 ms; the test rolls `conn` back to let it finish."""
    held = _record(0)
    # Three connections made up front: a commit beside the held one does not wait to connect.
    pool = await db.create_pool(settings.database_url, min_size=3, max_size=3)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path), log_second_commit_after_ms=second_commit_after_ms))
    log.start()
    try:
        await _hold_provider_id(conn, held)
        first = asyncio.create_task(log.append(held, wait=5))
        await asyncio.sleep(0.05)  # its commit is under way, waiting on the held provider id
        yield log, held, first
    finally:
        await log.close()
        await pool.close()


async def test_what_arrives_while_a_commit_is_under_way_waits_for_it_and_goes_in_one_batch(settings, conn, tmp_path):
    """Fewer, larger commits: contacts arriving one by one during a commit start no commit of their
    own (until it has run log_second_commit_after_ms); once it ends, they are committed together."""
    arriving = [_record(n) for n in range(1, 6)]
    async with _held_commit(settings, conn, tmp_path, 5_000) as (log, held, first):
        later = []
        for record in arriving:
            later.append(asyncio.create_task(log.append(record, wait=5)))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.03)  # the commit held ~0.13 s in all, well inside SLOW_COMMIT: nothing is spooled
        assert not first.done()
        assert not any(t.done() for t in later)  # none was committed beside the commit under way
        await conn.execute("ROLLBACK")
        results = await asyncio.gather(first, *later)
    assert not any(r.spooled or r.duplicate_of for r in results)
    ids = [held.id] + [r.id for r in arriving]
    rows = await conn.fetch("SELECT id, logged_at FROM contacts WHERE id = ANY($1::uuid[])", ids)
    logged = {r["id"]: r["logged_at"] for r in rows}
    assert len({logged[r.id] for r in arriving}) == 1  # one commit for all five
    assert logged[held.id] < logged[arriving[0].id]


async def test_a_commit_slower_than_the_second_commit_wait_does_not_hold_back_what_arrives(settings, conn, tmp_path):
    """A commit still under way after log_second_commit_after_ms may be stuck: what arrives then is
    committed beside it, not made to wait for it (nor spooled)."""
    after = _record(1)
    async with _held_commit(settings, conn, tmp_path, 20) as (log, held, first):  # held 50 ms: past 20
        started = asyncio.get_running_loop().time()
        result = await asyncio.wait_for(log.append(after, wait=5), timeout=SLOW_COMMIT * 0.8)
        assert asyncio.get_running_loop().time() - started < 0.2  # committed at once, not after a wait
        assert not result.spooled
        assert not first.done()
        await conn.execute("ROLLBACK")
        assert not (await first).spooled
    assert await conn.fetchval("SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[])", [held.id, after.id]) == 2


async def test_what_arrives_before_the_second_commit_wait_is_over_is_committed_when_it_is(settings, conn, tmp_path):
    """A contact that arrives while a commit has run less than log_second_commit_after_ms waits for
    it only that long: if the commit is still under way then, the contact is committed beside it."""
    after = _record(1)
    async with _held_commit(settings, conn, tmp_path, 150) as (log, _held, first):  # held 50 ms of 150
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await asyncio.wait_for(log.append(after, wait=5), timeout=SLOW_COMMIT * 0.7)
        waited = loop.time() - started
        assert waited >= 0.08  # it waited for the rest of the 150 ms (100 more), not 0
        assert not result.spooled
        assert not first.done()  # committed beside the held commit, not after it
        await conn.execute("ROLLBACK")
        assert not (await first).spooled


async def test_a_contact_whose_caller_went_away_behind_a_hung_commit_is_still_logged(settings, conn, proxy, tmp_path):
    """Its caller went away (a call hung up, a shutdown) while it queued behind a commit that hangs.
    The commit's watchdog spools what waits behind it, and that contact must be among them: taken
    from the queue and not spooled, it would be in neither the log nor the spool."""
    pool = await db.create_pool(via_proxy(settings.database_url, proxy.port), min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path), log_flushes_in_flight=1))
    log.start()
    hung, next_up, gone = _record(1), _record(2), _record(3)
    try:
        await log.append(_record(0), wait=5)  # the pool holds a live connection before the hang
        proxy.freeze()
        first = asyncio.create_task(log.append(hung, wait=5))
        await asyncio.sleep(0.1)  # its commit is under way, and hangs
        second = asyncio.create_task(log.append(next_up, wait=5))  # the writer holds it for the next slot
        caller = asyncio.create_task(log.append(gone, wait=5))  # queued behind both
        await asyncio.sleep(0.1)
        caller.cancel()
        assert (await first).spooled  # the watchdog answered them from the spool
        assert (await second).spooled
    finally:
        proxy.thaw()
        await log.close()
        await pool.close()
    for path in Spool(tmp_path).files():
        await replay_file(conn, path)
    records = [hung, next_up, gone]
    logged = await conn.fetch("SELECT id FROM contacts WHERE id = ANY($1::uuid[])", [r.id for r in records])
    assert {r["id"] for r in logged} == {r.id for r in records}


async def test_only_rows_with_a_customer_are_in_the_customer_index_and_both_lookups_use_it(settings, conn, tmp_path):
    """Migration 020: an unmatched contact (nearly all) adds nothing to the GIN index on customer_ids,
    yet a customer's contacts and their count (the counters' fallback) are found through it."""
    from gateway.store.contacts import CONTACTS_OF, DECIDED_SINCE, contacts_of, decided_since

    records = [_record(n) for n in range(40)] + [_record(100, customer_ids=[7]), _record(101, customer_ids=[7, 8])]
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    try:
        await asyncio.gather(*(log.append(r, wait=5) for r in records))
    finally:
        await log.close()
        await pool.close()
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert [r["provider_id"] for r in await contacts_of(conn, 7, None, 10)] == ["batch-101", "batch-100"]
    assert await decided_since(conn, 8, since) == 1
    # Every partition's index holds only the rows with a customer ...
    predicates = await conn.fetch(
        "SELECT DISTINCT pg_get_expr(i.indpred, i.indrelid) AS p FROM pg_index i "
        "JOIN pg_inherits h ON h.inhrelid = i.indexrelid WHERE h.inhparent = 'contacts_customers'::regclass"
    )
    assert [r["p"] for r in predicates] == ["(customer_ids <> '{}'::bigint[])"]
    # ... and the lookups can use it (on a table this small the planner must be told not to scan it).
    await conn.execute("SET enable_seqscan = off")
    for sql, args in ((CONTACTS_OF, (7, None, 10)), (DECIDED_SINCE, (7, since))):
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
        assert "customer_ids_idx" in plan, plan


def test_a_records_json_names_every_field_and_reads_back_the_same():
    """The row of a batch and the line of the spool: every field by name, the time in UTC when none
    was given, and the same record read back, on the fast path and on the one that keeps odd text."""
    plain = replace(
        _record(1, customer_ids=[3], target={"type": "queue", "id": "x"}), received_at=datetime(2026, 3, 2, 9, 30)
    )
    odd = _record(2, subject="half a pair \ud800", reasons=[{"n": 2**70}])
    for record in (plain, odd):
        line = record.to_json()
        assert list(json.loads(line)) == list(FIELDS)
        back = ContactRecord.from_json(line)
        assert back.received_at.tzinfo is not None
        assert back.received_at == record.received_at.replace(tzinfo=record.received_at.tzinfo or UTC)
        assert back == replace(record, received_at=back.received_at)
    assert json.loads(plain.to_json())["received_at"] == "2026-03-02T09:30:00+00:00"


def test_a_decision_already_serialised_is_carried_as_it_is():
    """The reply's own JSON goes into the row and the spool line unchanged, on both paths; JSON with
    an escape PostgreSQL's jsonb refuses is not carried that way (it stays data, to be cleaned)."""
    answer = b'{"action":"route","because":"\xc3\xa9crivez","contact_id":"x"}'
    plain, odd = _record(1, decision=AnswerJson(answer)), _record(2, subject="half \ud800", decision=AnswerJson(answer))
    for record in (plain, odd):
        line = record.to_json()
        assert json.loads(line)["decision"] == json.loads(answer)
        assert ContactRecord.from_json(line).decision == json.loads(answer)
    assert b'"decision":' + answer in _record(3, decision=AnswerJson(answer)).to_json().encode()
    contact = InboundContact.model_validate({"channel": "phone", "from": "07700 900123", "provider_id": "p-1"})
    handle, now = sender_handle("phone", contact.sender), datetime.now(UTC)
    for message, carried in (("Please write to us", AnswerJson), ("a NUL \x00", dict), ("half \ud800", dict)):
        decision = degraded_decision(str(uuid.uuid4()), "a test")
        decision.customer_message = message
        assert type(decided_record(contact, decision, handle, now, 0.0).decision) is carried, message


async def test_a_decision_carried_as_json_is_stored_as_answered(settings, conn):
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings)
    log.start()
    try:
        answer = {"action": "route", "target": {"type": "queue", "id": "general"}, "note": "écrivez ☎"}
        record = _record(int(uuid.uuid4()), decision=AnswerJson(json.dumps(answer).encode()))
        assert await log.append(record, wait=5) == Appended()
        stored = await conn.fetchval(
            "SELECT decision FROM contact_provider_ids WHERE channel = 'phone' AND provider_id = $1", record.provider_id
        )
        assert stored == answer
    finally:
        await log.close()
        await pool.close()


async def test_a_caller_that_waits_less_than_a_slow_commit_is_answered_from_the_spool_in_its_wait(
    settings, conn, proxy, tmp_path
):
    """GATEWAY_LOG_WAIT_MS may be shorter than the commit watchdog's half second: each caller's own
    deadline answers it from the spool within its own wait, long before the watchdog would."""
    pool = await db.create_pool(via_proxy(settings.database_url, proxy.port), min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    loop = asyncio.get_running_loop()
    try:
        await log.append(_record(0), wait=5)  # the pool holds a live connection before the hang
        proxy.freeze()
        started = loop.time()
        answered: dict[str, float] = {}

        async def timed(record: ContactRecord, wait: float) -> bool:
            result = await log.append(record, wait=wait)
            answered[record.provider_id or ""] = loop.time() - started
            return result.spooled

        spooled = await asyncio.gather(timed(_record(1), 0.3), timed(_record(2), 0.1))
        assert spooled == [True, True]
        # The 0.1 s caller is answered well inside the watchdog's half second (4x late would not be);
        # the 0.3 s one is only bounded loosely, since spooling takes its own time on a busy machine.
        assert answered["batch-2"] < 0.3 and answered["batch-1"] < 2 * SLOW_COMMIT
    finally:
        proxy.thaw()
        await log.close()
        await pool.close()


async def test_the_writer_keeps_its_connection_between_commits_and_replaces_one_the_server_closed(
    settings, conn, tmp_path
):
    """Commits one after another go over one connection, not one taken from the pool each time; one
    the server ended between commits is noticed and replaced, so the next contact is committed, not
    spooled; at close the writer gives its connections back."""
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=4)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    try:
        pids = []
        for n in range(3):
            assert await log.append(_record(100 + n), wait=5) == Appended()
            pids.append(
                await conn.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%jsonb_to_recordset%' "
                    "AND pid <> pg_backend_pid() ORDER BY query_start DESC LIMIT 1"
                )
            )
        assert len(set(pids)) == 1 and pool.get_idle_size() == pool.get_size() - 1
        await conn.execute("SELECT pg_terminate_backend($1)", pids[0])
        for _ in range(100):  # the writer's connection hears of it
            if not any(_open(c) for c, _ in log._kept):
                break
            await asyncio.sleep(0.02)
        after = await log.append(_record(103), wait=5)
        assert after == Appended()  # committed on a new connection: not spooled
        assert not list(tmp_path.iterdir())
    finally:
        await log.close()
    assert pool.get_idle_size() == pool.get_size()  # nothing kept after close
    await asyncio.wait_for(pool.close(), 5)
    logged = await conn.fetchval(
        "SELECT count(*) FROM contacts WHERE provider_id = ANY($1)", [f"batch-{n}" for n in range(100, 104)]
    )
    assert logged == 4


async def test_each_commit_is_counted_with_its_rows_and_time(settings, tmp_path):
    """The writer's histograms (scraped at /metrics) see every committed batch: its rows and its time."""
    batches, rows, commit_seconds = (
        metrics.LOG_BATCH.counts[:],
        metrics.LOG_BATCH.sum,
        sum(metrics.LOG_COMMIT_SECONDS.counts),
    )
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    try:
        appends = [asyncio.create_task(log.append(_record(200 + n), wait=5)) for n in range(3)]
        await asyncio.sleep(0)  # all three are queued before the writer takes its first batch
        log.start()
        await asyncio.gather(*appends)
        await log.append(_record(203), wait=5)
    finally:
        await log.close()
        await pool.close()
    assert metrics.LOG_BATCH.sum - rows == 4
    assert sum(metrics.LOG_BATCH.counts) - sum(batches) == 2  # a batch of three, then one of one
    assert sum(metrics.LOG_COMMIT_SECONDS.counts) - commit_seconds == 2
    exposed = generate_latest(metrics.REGISTRY).decode()
    assert f"gateway_contact_log_batch_rows_sum {float(metrics.LOG_BATCH.sum)}" in exposed


async def test_a_record_appended_after_close_is_still_answered_within_its_wait(settings, conn, tmp_path):
    """No writer takes it any more: its deadline still falls due, and it is spooled, not left waiting."""
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    await log.append(_record(300), wait=5)
    await log.close()
    try:
        late = await asyncio.wait_for(log.append(_record(301), wait=0.1), timeout=3)
    finally:
        await log.breaker.close()
        await pool.close()
    assert late.spooled
    spooled = [
        json.loads(line)["provider_id"] for path in Spool(tmp_path).files() for line in path.read_text().splitlines()
    ]
    assert spooled == ["batch-301"]


async def test_the_connections_kept_go_back_to_the_pool_when_the_breaker_trips_or_when_idle(
    settings, tmp_path, monkeypatch
):
    """Commits after an outage start on connections the pool hands out, not on one kept from before
    it; and one kept idle past KEPT_IDLE goes back before it is used again."""
    pool = await db.create_pool(settings.database_url, min_size=0, max_size=4)
    given_back = []
    release = type(pool).release

    async def counted(self, conn, *args, **kwargs):
        if self is pool:
            given_back.append(conn)
        return await release(self, conn, *args, **kwargs)

    monkeypatch.setattr(type(pool), "release", counted)
    log = ContactLog(pool, settings.with_(spool_dir=str(tmp_path)))
    log.start()
    try:
        assert await log.append(_record(400), wait=5) == Appended()
        assert len(log._kept) == 1 and given_back == []
        log._trip("a test")
        for _ in range(50):
            if given_back:
                break
            await asyncio.sleep(0.01)
        assert log._kept == [] and len(given_back) == 1
        await log.breaker.close()  # the database answers: commits go on

        monkeypatch.setattr(writer, "KEPT_IDLE", 0.05)
        assert await log.append(_record(401), wait=5) == Appended()
        assert len(given_back) == 1  # kept again
        await asyncio.sleep(0.1)
        assert await log.append(_record(402), wait=5) == Appended()
        assert len(given_back) == 2  # the idle one went back, the commit took one from the pool
    finally:
        await log.close()
        await pool.close()
