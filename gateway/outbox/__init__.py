"""Mail the gateway sends: a durable outbox (acknowledgements now; letters can use it the same way)
and the task that delivers it through the configured SMTP relay, with retries and back-off."""

from __future__ import annotations

from .message import HeaderInjection, OutgoingAttachment, OutgoingMail, build_email
from .sender import OutboxSender

__all__ = ["HeaderInjection", "OutboxSender", "OutgoingAttachment", "OutgoingMail", "build_email"]
