"""A private, real Postfix for the mail filter tests, and an SMTP sink that catches what it delivers.

Postfix runs as root with its own configuration, queue and log under a temporary directory, on
loopback only: mail submitted on `submission_port` goes through the gateway's content filter on
`filter_port`, comes back on `reinject_port`, and everything Postfix delivers goes to the sink.
Retries are made quick (seconds), so a deferred message is seen to arrive within a test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import tempfile
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers import eventually, free_port


def filter_services(filter_port: int, reinject_port: int, *, listen: str = "127.0.0.1") -> str:
    """The master.cf lines for the content filter, exactly as README's Postfix section gives them."""
    return f"""\
# The gateway's content filter: Postfix hands it each message by SMTP.
contactfilter unix  -       -       n       -       10      smtp
    -o smtp_data_done_timeout=1200s
    -o disable_mime_output_conversion=yes
    -o smtp_generic_maps=
# Where the gateway re-injects each message it decided: no content filter here, or it would loop.
{listen}:{reinject_port} inet n  -       n       -       10      smtpd
    -o content_filter=
    -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
    -o smtpd_helo_restrictions=
    -o smtpd_client_restrictions=
    -o smtpd_sender_restrictions=
    -o smtpd_recipient_restrictions=permit_mynetworks,reject
    -o smtpd_relay_restrictions=permit_mynetworks,reject
    -o mynetworks=127.0.0.0/8,[::1]/128
"""


def filter_main_cf(filter_port: int, *, listen: str = "127.0.0.1") -> str:
    """The main.cf line that sends every message through the gateway."""
    return f"content_filter = contactfilter:[{listen}]:{filter_port}\n"


_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.postfix-test.invalid
mydomain = postfix-test.invalid
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the test instance
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# Retries within seconds. Not 1s: a retry due while the delivery agent still holds the queue file's
# lock is pushed back 60 s by qmgr ("skipped, still being delivered"), which a 1 s backoff can hit.
queue_run_delay = 1s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
"""

_SERVICES = """\
{listen}:{submission_port} inet n - n - - smtpd
    -o receive_override_options=no_address_mappings
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if shutil.which("postfix") is None:
        return "Postfix is not installed (tools/install-test-peers installs it when run as root)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its daemons drop to the postfix user)"
    return None


class PrivatePostfix:
    def __init__(self, filter_port: int, sink_port: int) -> None:
        self.filter_port, self.sink_port = filter_port, sink_port
        self.submission_port, self.reinject_port = free_port(), free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gateway-postfix-"))
        self.conf = self.root / "conf"

    async def start(self) -> None:
        self.root.chmod(0o755)  # the daemons run as postfix
        self.conf.mkdir()
        for sub in ("queue", "data"):
            (self.root / sub).mkdir()
        shutil.chown(self.root / "data", "postfix")
        values = {"root": self.root, "sink_port": self.sink_port, "listen": "127.0.0.1"}
        (self.conf / "main.cf").write_text(_MAIN_CF.format(**values) + filter_main_cf(self.filter_port))
        services = _SERVICES.format(submission_port=self.submission_port, **values)
        (self.conf / "master.cf").write_text(services + filter_services(self.filter_port, self.reinject_port))
        await self._postfix("check")
        await self._postfix("start")
        await eventually(self._listening, timeout=20)

    async def stop(self) -> None:
        await self._postfix("stop")
        shutil.rmtree(self.root, ignore_errors=True)

    async def _postfix(self, command: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "postfix", "-c", str(self.conf), command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"postfix {command} failed: {out.decode(errors='replace')}\n{self.maillog()}")

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.submission_port)
        except OSError:
            return False
        writer.close()
        return True

    def maillog(self, since: int = 0) -> str:
        """The mail log from byte offset `since` (see `log_mark`): what Postfix did, and why."""
        path = self.root / "maillog"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def log_mark(self) -> int:
        path = self.root / "maillog"
        return path.stat().st_size if path.exists() else 0

    def queued(self) -> list[str]:
        """Queue ids of messages Postfix still holds (incoming, active or deferred), each once: a
        message Postfix moves from one queue to the next while they are walked is seen in both."""
        ids: dict[str, None] = {}
        for sub in ("incoming", "active", "deferred"):
            ids.update((p.name, None) for p in (self.root / "queue" / sub).rglob("*") if p.is_file())
        return list(ids)

    async def flush_queue(self) -> None:
        """Delete whatever a test left queued, so the next test starts empty."""
        proc = await asyncio.create_subprocess_exec(
            "postsuper",
            "-c",
            str(self.conf),
            "-d",
            "ALL",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await proc.wait()

    async def send(self, message: EmailMessage | bytes, sender: str, recipients: list[str]) -> None:
        """Submit by SMTP as any mail client or upstream MTA would (smtplib, in a thread)."""
        data = message.as_bytes(policy=policy.SMTP) if isinstance(message, EmailMessage) else message

        def submit() -> None:
            with smtplib.SMTP("127.0.0.1", self.submission_port, timeout=10) as s:
                s.sendmail(sender, recipients, data)

        await asyncio.to_thread(submit)


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[assignment]


class MailSink:
    """An SMTP server catching every message Postfix delivers (relayhost points here)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delivered: list[Delivered] = []
        self.refuse: set[str] = set()  # recipients answered 550, as an unknown mailbox would be
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink", loop=loop, enable_SMTPUTF8=True), "127.0.0.1", self.port
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered.append(
            Delivered(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        return "250 2.0.0 caught"

    def with_message_id(self, message_id: str) -> list[Delivered]:
        return [d for d in self.delivered if d.message["Message-ID"] == message_id]

    async def wait_for(self, message_id: str, timeout: float = 20) -> Delivered:
        async def arrived() -> bool:
            return bool(self.with_message_id(message_id))

        await eventually(arrived, timeout=timeout)
        return self.with_message_id(message_id)[0]
