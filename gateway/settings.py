"""One typed settings object, read once from the environment and passed in explicitly."""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from .caseref import DEFAULT_PATTERN, PatternRejected, vet
from .identifiers import IdentifierError, normalise_phone
from .lifecycle import parse_rule
from .rules.calendar import NATIONS, Calendar
from .rules.context import Provider

DEFAULT_TZ = "Europe/London"
# A retry waits for the attempt in flight up to that attempt's deadline + the log wait + this
# (decide/service.py); a batch's Redis claim may take as long again before the log goes on without it.
RETRY_SLACK_MS = 1000
# What the mail filter's time-out leaves, beyond deciding, for re-injecting a message into Postfix.
REINJECT_ALLOWANCE_MS = 5000


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what is expected."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number (expected {low}..{high})") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range (expected {low}..{high})")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(tuple(f"{s}://" for s in schemes)):
        raise SettingsError(f"{name}={raw!r} must be a URL starting with {' or '.join(schemes)}://")
    return raw


def _networks(env: Mapping[str, str], name: str, default: str) -> tuple[IPv4Network | IPv6Network, ...]:
    raw = env.get(name) or default
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not an IP address or CIDR range") from None
    return tuple(out)


HostPort = tuple[str, int]


def _host_ports(env: Mapping[str, str], name: str) -> tuple[HostPort, ...]:
    """`127.0.0.1:10025,[::1]:10025`: IP addresses only, so a listener never binds a name's guess."""
    out = []
    for part in (env.get(name) or "").split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ip_address(host)
            number = int(port)
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not ADDRESS:PORT (e.g. 127.0.0.1:10025 or [::1]:10025)") from None
        if not sep or not 1 <= number <= 65535:
            raise SettingsError(f"{name}: {part!r} needs a port in 1..65535")
        out.append((host, number))
    return tuple(out)


NO_REINJECT = "GATEWAY_MAIL_REINJECT is not set (expected 127.0.0.1:10026): the mail filter needs it"
_CASE_PLACEHOLDER = "{case}"
_MAILBOX = re.compile(r"^[^@\s<>,;\"()\[\]\\]+@[A-Za-z0-9.-]+$")


def _case_mailbox(env: Mapping[str, str]) -> str | None:
    """One address for every case file, or a template with `{case}` in its local part."""
    raw = (env.get("GATEWAY_CASE_MAILBOX") or "").strip()
    if not raw:
        return None
    local = raw.rpartition("@")[0]
    if raw.count(_CASE_PLACEHOLDER) > 1 or (_CASE_PLACEHOLDER in raw and _CASE_PLACEHOLDER not in local):
        raise SettingsError(f"GATEWAY_CASE_MAILBOX={raw!r}: {{case}} may appear once, before the @")
    if not _MAILBOX.match(raw.replace(_CASE_PLACEHOLDER, "case")):
        raise SettingsError(f"GATEWAY_CASE_MAILBOX={raw!r} is not a mail address (e.g. cases+{{case}}@example.org)")
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    tz: str = DEFAULT_TZ
    bank_holidays: str = "ENG"
    max_body_bytes: int = 1024 * 1024
    decide_deadline_ms: int = 500
    written_deadline_ms: int = 1500
    log_wait_ms: int = 1000
    log_flush_max_rows: int = 500
    log_flushes_in_flight: int = 2
    log_second_commit_after_ms: int = 20
    lean_edge: bool = True  # gateway.edge answers plain POST /v1/contacts calls; 0: aiohttp answers all
    data_dir: str = ".gateway"
    spool_dir: str = ".gateway/spool"
    resync_seconds: int = 300
    review_default_months: int = 12
    activation_rule: str = "service_caution_lead:1,caution_lead:2"
    twilio_auth_token: str | None = None
    public_url: str | None = None
    fastagi_port: int | None = None  # None: no FastAGI server; 0: any free port (tests)
    fastagi_host: str = "127.0.0.1"
    fastagi_timeout_ms: int = 3000  # per read of the AGI environment and per command reply
    fastagi_allow: tuple[IPv4Network | IPv6Network, ...] = field(
        default_factory=lambda: (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    )
    # The Postfix after-queue content filter (channels/mailfilter.py): off unless LISTEN is set.
    mail_filter_listen: tuple[HostPort, ...] = ()
    mail_filter_allow: tuple[IPv4Network | IPv6Network, ...] = field(
        default_factory=lambda: (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    )
    mail_reinject: HostPort | None = None
    mail_filter_timeout_ms: int = 60_000  # one message: decide and re-inject
    mail_filter_max_bytes: int = 64 * 1024 * 1024
    case_mailbox: str | None = None  # where writing about a closed case is filed; {case} → its reference
    log_level: str = "INFO"
    provider_name: str = "the housing team"
    provider_address: str = ""
    provider_email: str = ""
    provider_web_form_url: str = ""
    provider_phone: str = ""
    provider_emergency_phone: str = ""  # the emergency repairs line told to anyone turned away
    provider_logo: str = ""  # an image file for the letterhead (PNG, JPEG or SVG)
    contact_retention_months: int = 24
    excerpt_retention_months: int = 6
    restriction_retention_months: int = 72  # after a restriction ended
    # The email channel (README: "The email channel").
    email_max_bytes: int = 25 * 1024 * 1024
    case_ref_pattern: str = DEFAULT_PATTERN
    mailgun_signing_key: str | None = None
    smtp_url: str | None = None  # the relay acknowledgements (and letters) go out through
    ack_from: str = ""  # the acknowledgements' From address; empty: provider_email
    ack_daily_cap: int = 3  # acknowledgements per sender per day, whatever the case
    ack_case_days: int = 7  # at most one acknowledgement per sender per case in this many days
    # Origins of the contact-centre desktops that may show the agent screen in an iframe.
    agent_frame_origins: tuple[str, ...] = ()
    session_hours: int = 10  # a staff member's browser session lasts a shift, then they sign in again
    webform_per_hour: int = 10  # web form submissions per hour from one address
    # The load balancers or reverse proxies in front of the gateway: a request from one of them is
    # taken to come from the address it names in X-Forwarded-For (inputs.client_address).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        tz, rule, level = _tz(env), _activation_rule(env), _log_level(env)
        # Absolute once read, so every worker and `python -m gateway replay` finds the same spool,
        # whatever directory it was started from.
        data_dir = os.path.abspath(env.get("GATEWAY_DATA_DIR") or env.get("GATEWAY_EMBEDDED_DIR") or ".gateway")
        decide_ms = _int(env, "GATEWAY_DECIDE_DEADLINE_MS", 500, 10, 60_000)
        settings = cls(
            database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
            redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "unix")),
            host=env.get("GATEWAY_HOST") or "127.0.0.1",
            port=_int(env, "GATEWAY_PORT", 8080, 0, 65535),
            workers=_int(env, "GATEWAY_WORKERS", 1, 1, 64),
            tz=tz,
            bank_holidays=_nation(env),
            max_body_bytes=_int(env, "GATEWAY_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
            decide_deadline_ms=decide_ms,
            # A provider that raised the decide deadline keeps it for written contacts too, unless told.
            written_deadline_ms=_int(env, "GATEWAY_WRITTEN_DEADLINE_MS", max(1500, decide_ms), 10, 60_000),
            log_wait_ms=_int(env, "GATEWAY_LOG_WAIT_MS", 1000, 10, 60_000),
            log_flushes_in_flight=_int(env, "GATEWAY_LOG_FLUSHES_IN_FLIGHT", 2, 1, 16),
            # At most 250: under the log's CLAIM_AFTER (0.3 s), so that a contact the writer holds for
            # the next commit never waits past the point where a slow commit is dealt with.
            log_second_commit_after_ms=_int(env, "GATEWAY_LOG_SECOND_COMMIT_AFTER_MS", 20, 0, 250),
            lean_edge=bool(_int(env, "GATEWAY_LEAN_EDGE", 1, 0, 1)),
            data_dir=data_dir,
            spool_dir=os.path.abspath(env.get("GATEWAY_SPOOL_DIR") or os.path.join(data_dir, "spool")),
            resync_seconds=_int(env, "GATEWAY_RESYNC_SECONDS", 300, 1, 86_400),
            review_default_months=_int(env, "GATEWAY_REVIEW_MONTHS", 12, 1, 12),
            activation_rule=rule,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            public_url=_url(env, "GATEWAY_PUBLIC_URL", ("http", "https")),
            fastagi_port=_int(env, "FASTAGI_PORT", 0, 0, 65535) if env.get("FASTAGI_PORT") else None,
            fastagi_host=env.get("FASTAGI_HOST") or "127.0.0.1",
            fastagi_timeout_ms=_int(env, "FASTAGI_TIMEOUT_MS", 3000, 50, 60_000),
            fastagi_allow=_networks(env, "FASTAGI_ALLOW", "127.0.0.0/8,::1"),
            **_mail_filter(env),
            log_level=level,
            provider_name=env.get("GATEWAY_PROVIDER_NAME") or "the housing team",
            provider_address=_postal_lines(env, "GATEWAY_PROVIDER_ADDRESS"),
            provider_email=_address(env, "GATEWAY_PROVIDER_EMAIL"),
            provider_web_form_url=_url(env, "GATEWAY_PROVIDER_WEB_FORM_URL", ("https", "http")) or "",
            provider_phone=_phone(env, "GATEWAY_PROVIDER_PHONE"),
            provider_emergency_phone=_phone(env, "GATEWAY_PROVIDER_EMERGENCY_PHONE"),
            provider_logo=_logo(env, "GATEWAY_PROVIDER_LOGO"),
            contact_retention_months=_int(env, "GATEWAY_CONTACT_RETENTION_MONTHS", 24, 1, 1200),
            excerpt_retention_months=_int(env, "GATEWAY_EXCERPT_RETENTION_MONTHS", 6, 1, 1200),
            restriction_retention_months=_int(env, "GATEWAY_RESTRICTION_RETENTION_MONTHS", 72, 1, 1200),
            email_max_bytes=_int(env, "GATEWAY_EMAIL_MAX_BYTES", 25 * 1024 * 1024, 1024, 256 * 1024 * 1024),
            case_ref_pattern=_case_ref_pattern(env),
            mailgun_signing_key=env.get("MAILGUN_SIGNING_KEY") or None,
            smtp_url=_url(env, "GATEWAY_SMTP_URL", ("smtp", "smtps")),
            ack_from=_address(env, "GATEWAY_ACK_FROM"),
            ack_daily_cap=_int(env, "GATEWAY_ACK_DAILY_CAP", 3, 1, 1000),
            ack_case_days=_int(env, "GATEWAY_ACK_CASE_DAYS", 7, 1, 365),
            agent_frame_origins=_origins(env, "GATEWAY_AGENT_FRAME_ORIGINS"),
            session_hours=_int(env, "GATEWAY_SESSION_HOURS", 10, 1, 24),
            webform_per_hour=_int(env, "GATEWAY_WEBFORM_PER_HOUR", 10, 1, 10_000),
            trusted_proxies=_networks(env, "GATEWAY_TRUSTED_PROXIES", ""),
        )
        return _check_mail_filter_timeout(settings)

    def require_services(self) -> Settings:
        """Serving needs both backing services; name the first one that is missing."""
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (expected postgresql://user@host:port/db)")
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set (expected redis://host:port/0)")
        return self

    def calendar(self, closures: frozenset[date] = frozenset()) -> Calendar:
        """The provider's calendar: its time zone, its nation's bank holidays, these closure days."""
        return Calendar(zoneinfo.ZoneInfo(self.tz), closures, self.bank_holidays)

    def provider(self) -> Provider:
        """How customers can write in, as quoted in deflections and letters."""
        return Provider(
            name=self.provider_name,
            address=self.provider_address,
            email=self.provider_email,
            web_form_url=self.provider_web_form_url,
            phone=self.provider_phone,
            emergency_phone=self.provider_emergency_phone,
        )

    def with_(self, **changes: Any) -> Settings:
        """A copy with these changes, for tests: it skips from_env's checks across settings."""
        return replace(self, **changes)


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Web origins (scheme://host[:port], no path), comma-separated."""
    out = []
    for part in (env.get(name) or "").split(","):
        part = part.strip().rstrip("/")
        if not part:
            continue
        if not _ORIGIN.fullmatch(part):
            raise SettingsError(f"{name}: {part!r} is not a web origin (expected https://desktop.example.org[:port])")
        out.append(part)
    return tuple(out)


def _postal_lines(env: Mapping[str, str], name: str) -> str:
    """The provider's address: lines separated by ';' (or new lines), kept one per line."""
    raw = env.get(name) or ""
    lines = [" ".join(line.split()) for line in raw.replace(";", "\n").splitlines() if line.strip()]
    if len(lines) > 8 or any(len(line) > 80 for line in lines):
        raise SettingsError(f"{name}: at most 8 lines of 80 characters, separated by ';'")
    return "\n".join(lines)


def _phone(env: Mapping[str, str], name: str) -> str:
    """Kept as written (it is printed as the provider writes it), but it must be a phone number."""
    raw = " ".join((env.get(name) or "").split())
    if not raw:
        return ""
    try:
        normalise_phone(raw)
    except IdentifierError:
        raise SettingsError(f"{name}={raw!r} is not a phone number (e.g. 0113 496 0000)") from None
    return raw


LOGO_TYPES = (".png", ".jpg", ".jpeg", ".svg")
MAX_LOGO_BYTES = 1024 * 1024


def _logo(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip()
    if not raw:
        return ""
    path = os.path.abspath(raw)
    if not path.lower().endswith(LOGO_TYPES):
        raise SettingsError(f"{name}={raw!r} must be a {', '.join(LOGO_TYPES)} file")
    try:
        size = os.path.getsize(path)
    except OSError:
        raise SettingsError(f"{name}={raw!r}: no such readable file") from None
    if size > MAX_LOGO_BYTES:
        raise SettingsError(f"{name}={raw!r} is larger than 1 MiB")
    return path


def longest_email_decision_ms(s: Settings) -> int:
    """The longest an email can take to be decided and logged: its written deadline, a retry's wait for
    the attempt in flight, a claim's patience, and up to three log waits (its own, after the wait, and
    the spool's)."""
    return s.written_deadline_ms + 3 * s.log_wait_ms + 2 * RETRY_SLACK_MS


def _check_mail_filter_timeout(s: Settings) -> Settings:
    """The mail filter's time-out covers deciding a message and re-injecting it: cut shorter, a message
    still being decided is handed back to Postfix to retry, and the retry waits on it too."""
    least = longest_email_decision_ms(s) + REINJECT_ALLOWANCE_MS
    if s.mail_filter_listen and s.mail_filter_timeout_ms <= least:
        raise SettingsError(
            f"GATEWAY_MAIL_FILTER_TIMEOUT_MS={s.mail_filter_timeout_ms} must be longer than {least} ms: the "
            "longest an email can take to be decided (GATEWAY_WRITTEN_DEADLINE_MS + 3 × GATEWAY_LOG_WAIT_MS + 2 s) "
            f"and {REINJECT_ALLOWANCE_MS // 1000} s to re-inject it"
        )
    return s


def _mail_filter(env: Mapping[str, str]) -> dict[str, Any]:
    listen = _host_ports(env, "GATEWAY_MAIL_FILTER_LISTEN")
    reinject = _host_ports(env, "GATEWAY_MAIL_REINJECT")
    if len(reinject) > 1:
        raise SettingsError("GATEWAY_MAIL_REINJECT takes one ADDRESS:PORT, Postfix's re-injection listener")
    if listen and not reinject:
        raise SettingsError(NO_REINJECT)
    return {
        "mail_filter_listen": listen,
        "mail_filter_allow": _networks(env, "GATEWAY_MAIL_FILTER_ALLOW", "127.0.0.0/8,::1"),
        "mail_reinject": reinject[0] if reinject else None,
        "mail_filter_timeout_ms": _int(env, "GATEWAY_MAIL_FILTER_TIMEOUT_MS", 60_000, 1000, 3_600_000),
        "mail_filter_max_bytes": _int(env, "GATEWAY_MAIL_FILTER_MAX_BYTES", 64 * 1024 * 1024, 1024, 1024**3),
        "case_mailbox": _case_mailbox(env),
    }


def _nation(env: Mapping[str, str]) -> str:
    raw = env.get("GATEWAY_BANK_HOLIDAYS") or "ENG"
    nation = raw.strip().upper()
    if nation not in NATIONS:
        raise SettingsError(
            f"GATEWAY_BANK_HOLIDAYS={raw!r} is not a UK nation's code: ENG or WLS (England and Wales), "
            "SCT (Scotland) or NIR (Northern Ireland)"
        )
    return nation


def _tz(env: Mapping[str, str]) -> str:
    tz = env.get("GATEWAY_TZ") or DEFAULT_TZ
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"GATEWAY_TZ={tz!r} is not an IANA time zone (e.g. Europe/London)") from None
    return tz


def _activation_rule(env: Mapping[str, str]) -> str:
    rule = env.get("GATEWAY_ACTIVATION_RULE") or "service_caution_lead:1,caution_lead:2"
    try:
        parse_rule(rule)
    except ValueError as exc:
        raise SettingsError(f"GATEWAY_ACTIVATION_RULE={rule!r}: {exc}") from None
    return rule


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("GATEWAY_LOG_LEVEL") or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"GATEWAY_LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
    return level


def _case_ref_pattern(env: Mapping[str, str]) -> str:
    pattern = env.get("GATEWAY_CASE_REF_PATTERN") or DEFAULT_PATTERN
    try:
        vet(pattern)
    except PatternRejected as exc:
        raise SettingsError(f"GATEWAY_CASE_REF_PATTERN={pattern!r} {exc}") from None
    return pattern


def _address(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip()
    if raw and (any(c in raw for c in "\r\n<>,; ") or raw.count("@") != 1):
        raise SettingsError(f"{name}={raw!r} must be one plain email address (e.g. housing@example.org)")
    return raw
