"""Twilio voice webhooks: check X-Twilio-Signature, decide, and answer the call in TwiML."""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

import pydantic
from aiohttp import web
from multidict import MultiDict

from ..contact import GENERAL_QUEUE, Decision, InboundContact, degraded_decision
from ..decide import Rejected
from ..errors import BadRequest, Forbidden, GatewayError, TooLarge, Unavailable
from ..http import add_route
from ..inputs import attempt_note, client_address, read_body
from ..randomid import new_contact_id
from ..rules.context import StaffView
from ..runtime import RUNTIME, Runtime
from ..settings import Settings
from .base import HttpMount, checked
from .render import dial_number

log = logging.getLogger(__name__)
VOICE_PATH = "/v1/channels/twilio/voice"
FALLBACK_PATH = "/v1/channels/twilio/fallback"
SAY_LANGUAGE = "en-GB"
XML = "application/xml"
NO_MESSAGE = "Sorry, we cannot take your call. Please contact us in writing."


FORM = "application/x-www-form-urlencoded"
UTF8 = ("utf-8", "utf8")
MAX_FORM_FIELDS = 1000  # a webhook carries a few dozen


async def read_form(request: web.Request) -> MultiDict[str]:
    """A URL-encoded UTF-8 form, the only form Twilio sends; anything else is a 4xx.

    Read here rather than by aiohttp's `request.post()`, which also takes multipart bodies and
    raises bare ValueErrors and LookupErrors on a broken one."""
    if request.content_type != FORM:
        raise BadRequest(f"expected a form body (Content-Type: {FORM})", code="unsupported_media_type")
    if (request.charset or "utf-8").lower() not in UTF8:
        raise BadRequest("the form must be UTF-8 (charset=utf-8)", code="malformed_form")
    return form_of(await read_body(request))


def form_of(raw: bytes) -> MultiDict[str]:
    """The fields of a URL-encoded UTF-8 form body; a body that is not one is a 4xx."""
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8 text", code="malformed_form") from None
    except ValueError:  # parse_qsl: more than max_num_fields
        raise TooLarge(f"the form has more than {MAX_FORM_FIELDS} fields") from None
    return MultiDict(pairs)


def expected_signature(token: str, url: str, params: MultiDict[str]) -> str:
    """Twilio's scheme: the URL, then each name+value in sorted order; HMAC-SHA1, base64."""
    signed = url
    for name in sorted(set(params)):
        for value in sorted(set(params.getall(name))):
            signed += name + value
    digest = hmac.digest(token.encode(), signed.encode(), "sha1")  # OpenSSL in one call
    return base64.b64encode(digest).decode()


@functools.lru_cache(maxsize=64)  # a provider gives Twilio a URL or two
def _with_and_without_port(url: str) -> tuple[str, str]:
    """Twilio may sign the URL with or without the default port; its own validator accepts both."""
    parts = urlsplit(url)
    if parts.port is not None:
        return url, parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()
    default = 443 if parts.scheme == "https" else 80
    return url, parts._replace(netloc=f"{parts.netloc}:{default}").geturl()


def signature_ok(token: str, url: str, params: MultiDict[str], signature: str) -> bool:
    given = signature.encode("utf-8", "replace")
    return any(
        hmac.compare_digest(expected_signature(token, u, params).encode(), given) for u in _with_and_without_port(url)
    )


async def _signed_form(request: web.Request, rt: Runtime) -> MultiDict[str] | Rejected:
    """The form parameters of a request Twilio signed; anything else is a Rejected attempt.
    What would help to set Twilio up (settings, the signed URL) goes to our log, not to the caller."""
    settings = rt.settings
    if not settings.twilio_auth_token or not settings.public_url:
        why = "the Twilio channel is not configured: set TWILIO_AUTH_TOKEN and GATEWAY_PUBLIC_URL"
        return Rejected("rejected", why, "phone", refusal=Unavailable("the Twilio channel is not available"))
    try:
        form = await read_form(request)
    except GatewayError as exc:  # unreadable, so unsigned as far as we can tell: logged and refused
        return Rejected("malformed", attempt_note(request, exc), "phone", refusal=exc)
    url = settings.public_url.rstrip("/") + request.raw_path
    signature = request.headers.get("X-Twilio-Signature", "")
    if signature and signature_ok(settings.twilio_auth_token, url, form, signature):
        return form
    why = "bad X-Twilio-Signature" if signature else "missing X-Twilio-Signature"
    log.warning("Twilio %s refused: %s (signed URL expected: %s)", request.path, why, url)
    refusal = Forbidden(f"{why}: the request was not signed by Twilio")
    return Rejected(
        "rejected",
        why,
        "phone",
        form.get("From", ""),
        form.get("CallSid") or None,
        refusal=refusal,
        address=client_address(request),
    )


class TwilioVoice:
    name = "twilio"
    description = "Twilio voice webhooks answered with TwiML"
    mount = HttpMount(VOICE_PATH, None)  # no API key: Twilio signs its requests

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        form = await _signed_form(raw, rt)
        return form if isinstance(form, Rejected) else contact_of(form)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        return web.Response(body=voice_reply(decision, rt), content_type=XML, charset="utf-8")


def contact_of(form: MultiDict[str]) -> InboundContact | Rejected:
    """The call a signed voice webhook describes; one that does not describe a call is logged as
    malformed, and the caller still gets the safe answer."""
    sender, call_id = form.get("From", ""), form.get("CallSid") or None
    try:
        fields = {"channel": "phone", "from": sender, "to": form.get("To") or None, "provider_id": call_id}
        return InboundContact.model_validate(fields)
    except pydantic.ValidationError as exc:  # a caller is waiting: logged, then the safe answer
        return Rejected("malformed", str(exc), "phone", sender, call_id)


def plain_call(settings: Settings, target: str, body: bytes, signature: str | None) -> InboundContact | None:
    """For the lean edge (gateway/edge.py): the call of a voice webhook whose request line targets
    `target` (the path and its query, as Twilio signed them), when it is the plain case: the channel
    configured, the form readable, the signature Twilio's, the fields a call (as the driver checks
    it). None otherwise: the channel's full path then serves it as it always has (refused and
    logged, or, for a signed form that is not a call, logged as malformed and given the safe answer)."""
    if not settings.twilio_auth_token or not settings.public_url or not signature:
        return None
    try:
        form = form_of(body)
    except GatewayError:
        return None
    url = settings.public_url.rstrip("/") + target
    if not signature_ok(settings.twilio_auth_token, url, form, signature):
        return None
    parsed = checked(contact_of(form))
    return None if isinstance(parsed, Rejected) else parsed


async def fallback(request: web.Request) -> web.StreamResponse:
    """Twilio's Fallback URL: the voice URL failed, so route to the general queue and log why.
    Not decided again: the log shows the answer the caller really got."""
    rt = request.app[RUNTIME]
    form = await _signed_form(request, rt)
    if isinstance(form, Rejected):
        await rt.decide.log_rejected(form)
        assert form.refusal is not None
        raise form.refusal
    error = f"Twilio fallback: ErrorCode {form.get('ErrorCode', '?')} at {form.get('ErrorUrl', '?')}"
    log.warning("%s for call %s", error, form.get("CallSid", "?"))
    # No provider id: the voice URL may already have logged this call with a different answer.
    contact = InboundContact.model_validate(
        {
            "channel": "phone",
            "from": form.get("From", "")[:320],
            "to": (form.get("To") or "")[:320] or None,
            "subject": f"Twilio fallback for call {form.get('CallSid', '?')[:100]}",
        }
    )
    decision = degraded_decision(new_contact_id(), error[:500])
    await rt.decide.log_answered(contact, decision, error)
    return _reply(enqueue(GENERAL_QUEUE))


def twiml(decision: Decision, staff: Mapping[int, StaffView]) -> ET.Element:
    """Deflect (or acknowledge): say the message and hang up. Otherwise dial the person or queue."""
    return _element(*_verb(decision, staff))


def voice_reply(decision: Decision, rt: Runtime) -> bytes:
    """The TwiML that answers the call, as the reply's body. The same few answers come call after
    call (the general queue, a kind's message), so each is written out once."""
    verb = _verb(decision, rt.index.staff)
    body = _REPLIES.get(verb)
    if body is None:
        if len(_REPLIES) >= _REPLIES_MAX:  # messages that name a time vary: all are forgotten at once
            _REPLIES.clear()
        body = _REPLIES[verb] = _xml(_element(*verb))
    return body


_REPLIES: dict[tuple[str, str], bytes] = {}
_REPLIES_MAX = 1024


def _verb(decision: Decision, staff: Mapping[int, StaffView]) -> tuple[str, str]:
    """The one TwiML verb that answers the call, and its text."""
    if decision.action in ("deflect", "auto_acknowledge"):
        return "Say", decision.customer_message or NO_MESSAGE
    number = dial_number(decision.target, staff)
    if number:
        return "Dial", number
    # A call cannot be held like a letter: "hold" (or a person without a line) goes to a queue.
    target = decision.target
    return "Enqueue", target.id if target and target.type == "queue" else GENERAL_QUEUE


def _element(verb: str, text: str) -> ET.Element:
    root = ET.Element("Response")
    if verb == "Say":
        ET.SubElement(root, "Say", language=SAY_LANGUAGE).text = text
        ET.SubElement(root, "Hangup")
    elif verb == "Dial":
        ET.SubElement(ET.SubElement(root, "Dial"), "Number").text = text
    else:
        ET.SubElement(root, verb).text = text
    return root


def enqueue(queue: str) -> ET.Element:
    return _element("Enqueue", queue)


def _xml(root: ET.Element) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")).encode()


def _reply(root: ET.Element) -> web.Response:
    return web.Response(body=_xml(root), content_type=XML, charset="utf-8")


def add_fallback(app: web.Application) -> None:
    add_route(app, "POST", FALLBACK_PATH, fallback, None)  # signed by Twilio, checked in the handler
