"""Twilio voice webhooks: check X-Twilio-Signature, decide, and answer the call in TwiML."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pydantic
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from ..contact import GENERAL_QUEUE, Decision, InboundContact, degraded_decision
from ..decide import log_rejected
from ..errors import Forbidden, Unavailable
from ..http import add_route
from ..rules.context import StaffView
from ..senders import sender_handle
from ..state import DECIDER, INDEX, SETTINGS
from .render import dial_number

log = logging.getLogger(__name__)
VOICE_PATH = "/v1/channels/twilio/voice"
FALLBACK_PATH = "/v1/channels/twilio/fallback"
SAY_LANGUAGE = "en-GB"
NO_MESSAGE = "Sorry, we cannot take your call. Please contact us in writing."


def expected_signature(token: str, url: str, params: MultiDict[str]) -> str:
    """Twilio's scheme: the URL, then each name+value in sorted order; HMAC-SHA1, base64."""
    signed = url
    for name in sorted(set(params)):
        for value in sorted(set(params.getall(name))):
            signed += name + value
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> list[str]:
    """Twilio may sign the URL with or without the default port; its own validator accepts both."""
    parts = urlsplit(url)
    if parts.port is not None:
        return [url, parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()]
    default = 443 if parts.scheme == "https" else 80
    return [url, parts._replace(netloc=f"{parts.netloc}:{default}").geturl()]


def signature_ok(token: str, url: str, params: MultiDict[str], signature: str) -> bool:
    given = signature.encode("utf-8", "replace")
    return any(
        hmac.compare_digest(expected_signature(token, u, params).encode(), given) for u in _with_and_without_port(url)
    )


async def _signed_form(request: web.Request) -> MultiDict[str]:
    """The form parameters of a request Twilio signed; refuses (and logs) anything else."""
    settings = request.app[SETTINGS]
    if not settings.twilio_auth_token or not settings.public_url:
        raise Unavailable(
            "the Twilio channel is not configured: set TWILIO_AUTH_TOKEN and "
            "GATEWAY_PUBLIC_URL (unsigned requests are never accepted)"
        )
    form = _strings(await request.post())
    url = settings.public_url.rstrip("/") + request.raw_path
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not signature_ok(settings.twilio_auth_token, url, form, signature):
        why = "bad X-Twilio-Signature" if signature else "missing X-Twilio-Signature"
        log.warning("Twilio %s refused: %s (signed URL expected: %s)", request.path, why, url)
        await log_rejected(
            request.app[DECIDER],
            channel="phone",
            sender=form.get("From", ""),
            provider_id=form.get("CallSid") or None,
            status="rejected",
            error=why,
        )
        raise Forbidden(f"{why}: the request was not signed by Twilio for {url}")
    return form


def _strings(form: MultiDictProxy[Any]) -> MultiDict[str]:
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


async def voice(request: web.Request) -> web.Response:
    form = await _signed_form(request)
    try:
        contact = InboundContact.model_validate(
            {
                "channel": "phone",
                "from": form.get("From", ""),
                "to": form.get("To") or None,
                "provider_id": form.get("CallSid") or None,
            }
        )
    except pydantic.ValidationError as exc:  # a caller is waiting: log it, then the safe answer
        await log_rejected(
            request.app[DECIDER],
            channel="phone",
            sender=form.get("From", ""),
            provider_id=form.get("CallSid") or None,
            status="malformed",
            error=str(exc),
        )
        return _reply(enqueue(GENERAL_QUEUE))
    decision, _ = await request.app[DECIDER].decide(contact)
    return _reply(twiml(decision, request.app[INDEX].staff))


async def fallback(request: web.Request) -> web.Response:
    """Twilio's Fallback URL: the voice URL failed, so route to the general queue and log why."""
    form = await _signed_form(request)
    service = request.app[DECIDER]
    error = f"Twilio fallback: ErrorCode {form.get('ErrorCode', '?')} at {form.get('ErrorUrl', '?')}"
    log.warning("%s for call %s", error, form.get("CallSid", "?"))
    sender = form.get("From", "")[:320]
    # No provider id: the voice URL may already have logged this call with a different answer.
    contact = InboundContact.model_validate(
        {
            "channel": "phone",
            "from": sender,
            "to": (form.get("To") or "")[:320] or None,
            "subject": f"Twilio fallback for call {form.get('CallSid', '?')[:100]}",
        }
    )
    decision = degraded_decision(str(uuid.uuid4()), error[:500])
    received = datetime.now(UTC)
    decision.received_at = received
    record = service.record(
        contact, decision, sender_handle("phone", sender), received, time.perf_counter(), error=error[:2000]
    )
    await service.log.append(record)
    return _reply(enqueue(GENERAL_QUEUE))


def twiml(decision: Decision, staff: Mapping[int, StaffView]) -> ET.Element:
    """Deflect (or acknowledge): say the message and hang up. Otherwise dial the person or queue."""
    if decision.action in ("deflect", "auto_acknowledge"):
        root = ET.Element("Response")
        say = ET.SubElement(root, "Say", language=SAY_LANGUAGE)
        say.text = decision.customer_message or NO_MESSAGE
        ET.SubElement(root, "Hangup")
        return root
    number = dial_number(decision.target, staff)
    if number:
        root = ET.Element("Response")
        ET.SubElement(ET.SubElement(root, "Dial"), "Number").text = number
        return root
    # A call cannot be held like a letter: "hold" (or a person without a line) goes to a queue.
    target = decision.target
    return enqueue(target.id if target and target.type == "queue" else GENERAL_QUEUE)


def enqueue(queue: str) -> ET.Element:
    root = ET.Element("Response")
    ET.SubElement(root, "Enqueue").text = queue
    return root


def _reply(root: ET.Element) -> web.Response:
    body = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
    return web.Response(text=body, content_type="application/xml")


def setup(app: web.Application) -> None:
    # No API key: Twilio authenticates by signature, checked in the handlers.
    add_route(app, "POST", VOICE_PATH, voice, None)
    add_route(app, "POST", FALLBACK_PATH, fallback, None)
