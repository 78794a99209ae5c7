"""The outbox sender: one task per process delivering due mail through the SMTP relay
(GATEWAY_SMTP_URL), off every request path, with retries and back-off. Rows are leased, so several
processes share the outbox and a process that dies mid-send leaves its rows to be retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg
import redis.asyncio as aioredis

from ..settings import Settings
from ..store import outbox as store
from .acks import ack_address
from .limits import AckLimits
from .message import HeaderInjection, OutgoingAttachment, OutgoingMail, build_email

log = logging.getLogger(__name__)
BATCH = 20
LEASE_SECONDS = 60.0  # how long a claimed row is another sender's to leave alone
POLL_SECONDS = 1.0
SEND_TIMEOUT = 15.0
MAX_ATTEMPTS = 8
FAULTS = (aiosmtplib.SMTPException, OSError, TimeoutError)


def permanent(exc: BaseException) -> bool:
    """A 5xx reply (RFC 5321 §4.2.1: permanent) — a malformed or unknown address, say — would be refused
    again on every try: give up now rather than retry for hours."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(r.code >= 500 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Relay:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if tls else 25),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def backoff(attempts: int) -> float:
    return float(min(5 * 2 ** max(attempts - 1, 0), 3600))


class OutboxSender:
    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis, settings: Settings) -> None:
        self.pool, self.settings = pool, settings
        self.relay = Relay.from_url(settings.smtp_url) if settings.smtp_url else None
        self.limits = AckLimits(redis, pool, settings)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self.relay is not None:
            self._task = asyncio.create_task(self._run(), name="outbox-sender")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        self._closing = True  # ends the loop even if the cancellation below is lost
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._closing:
            try:
                busy = await self.run_once()
            except Exception as exc:  # the database is away: try again on the next round
                log.warning("outbox: round failed (%r)", exc)
                busy = 0
            if not busy:
                # A timeout context, not wait_for: Python 3.11's wait_for loses a cancellation that
                # arrives as the event is set (a wake at shutdown), and close then waited for ever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._wake.wait()
                self._wake.clear()

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were handled."""
        rows = await store.claim_due(self.pool, BATCH, LEASE_SECONDS)
        for row in rows:
            try:
                await self._deliver(row)
            except Exception:  # one message's fault must not hold up the rest: it is retried after its lease
                log.exception("outbox %s: delivery failed unexpectedly", row["id"])
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        mail = await self._mail(row)
        if row["auto_reply"]:
            why = await self.limits.why_not(row["id"], row["to_addr"], row["case_id"])
            if why is not None:
                log.info("acknowledgement %s suppressed: %s", row["id"], why)
                await self._settle(row, "suppressed", why)
                return
        try:
            msg = build_email(mail, ack_address(self.settings), self.settings.provider_name)
        except (HeaderInjection, ValueError) as exc:
            log.warning("outbox %s refused: %s", row["id"], exc)
            await self._settle(row, "refused", str(exc))
            await self.limits.release(row["id"], row["to_addr"], row["case_id"])
            return
        assert self.relay is not None
        try:
            await aiosmtplib.send(
                msg,
                sender=ack_address(self.settings),
                recipients=[mail.to],
                hostname=self.relay.host,
                port=self.relay.port,
                use_tls=self.relay.tls,
                username=self.relay.username,
                password=self.relay.password,
                timeout=SEND_TIMEOUT,
                start_tls=False if not self.relay.tls and self.relay.username is None else None,
            )
        except ValueError as exc:  # an address the SMTP client will not put on the wire: never sendable
            await self._settle(row, "refused", str(exc))
            await self.limits.release(row["id"], row["to_addr"], row["case_id"])
            return
        except FAULTS as exc:
            await self._failed(row, exc)
            return
        await self._settle(row, "sent", f"via {self.relay.host}:{self.relay.port}")

    async def _failed(self, row: asyncpg.Record, exc: BaseException) -> None:
        attempts = row["attempts"]
        if attempts >= MAX_ATTEMPTS or permanent(exc):
            log.error("outbox %s: giving up after %d attempt(s) (%r)", row["id"], attempts, exc)
            await self._settle(row, "failed", f"{attempts} attempts, last: {exc!r}")
            await self.limits.release(row["id"], row["to_addr"], row["case_id"])
            return
        log.warning("outbox %s: attempt %d failed (%r); retrying", row["id"], attempts, exc)
        await self._settle(row, "queued", f"attempt {attempts} failed: {exc!r}", retry_in=backoff(attempts))

    async def _settle(self, row: asyncpg.Record, status: str, note: str, retry_in: float | None = None) -> None:
        async with self.pool.acquire() as conn:
            await store.settle(conn, row["id"], row["contact_id"], status, note, retry_in=retry_in)

    async def _mail(self, row: asyncpg.Record) -> OutgoingMail:
        files = await store.attachments(self.pool, row["id"]) if row["kind"] != "acknowledgement" else []
        return OutgoingMail(
            to=row["to_addr"],
            subject=row["subject"],
            text=row["body"],
            message_id=row["message_id"],
            in_reply_to=row["in_reply_to"],
            references=row["refs"],
            attachments=tuple(OutgoingAttachment(f["name"], f["content_type"], f["content"]) for f in files),
            auto_reply=row["auto_reply"],
        )
