"""The customer's contact form, `GET/POST /contact`: accessible (labels, a fieldset, an error summary
linked to the fields, no JavaScript needed), in plain words.

A post runs through the channels' one driver (`ContactFormPage` is a Channel over the same form as
`POST /v1/channels/webform`): a post that is too large (413), lacks the page's CSRF token (403),
comes too often from one address (429) or is not filled in right (422, the form again with what to
fix) is logged as refused and answered with its page; a good one is decided and acknowledged with
its reference number.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web
from redis.exceptions import RedisError

from ..appkeys import REDIS, SETTINGS
from ..channels.base import drive
from ..channels.webform import CHANNEL, WebFormIn, acknowledgement, is_closed_issue
from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..http import PageShown
from ..inputs import client_address
from ..rediskeys import WEBFORM_LIMIT
from ..runtime import RUNTIME, Runtime
from .pages import MAX_FORM_BYTES, add_page, read_form, render
from .security import CSRF_FIELD, form_binding
from .sessions import check_csrf

log = logging.getLogger(__name__)

FIELDS = ("name", "email", "phone", "reference", "message", "submission")


def _blank_form() -> dict[str, str]:
    return {**dict.fromkeys(FIELDS, ""), "submission": secrets.token_urlsafe(24)}


async def contact_page(request: web.Request) -> web.Response:
    return await render(request, "contact.html", {"form": _blank_form(), "errors": {}})


async def _refusal(request: web.Request, status: int, title: str, *lines: str) -> PageShown:
    return PageShown(await render(request, "message.html", {"title": title, "lines": lines}, status=status))


async def _over_limit(request: web.Request) -> bool:
    """More posts from this address in the last hour than GATEWAY_WEBFORM_PER_HOUR. Without Redis the
    form stays open (a customer's message matters more than the limit)."""
    key = WEBFORM_LIMIT + client_address(request)
    try:
        count = await request.app[REDIS].incr(key)
        if count == 1:
            await request.app[REDIS].expire(key, 3600)
    except (RedisError, OSError) as exc:
        log.warning("web form rate limit unavailable: %r", exc)
        return False
    return int(count) > request.app[SETTINGS].webform_per_hour


class ContactFormPage:
    """The form at /contact as a Channel: `parse` refuses with a page, `render` hands back the decision."""

    name = "webform_page"
    description = "The accessible contact form at /contact."

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        request = raw
        fields = await read_form(request)
        if fields is None:
            page = await _refusal(
                request,
                413,
                "Your message is too long",
                "Shorten your message to 5,000 characters or fewer and send it again.",
            )
            why = f"web form larger than {MAX_FORM_BYTES} bytes"
            return Rejected("rejected", why, CHANNEL, refusal=page, address=client_address(request))
        sender = (fields.get("email") or fields.get("phone") or "")[:320]
        if not await check_csrf(request, form_binding(request), fields.get(CSRF_FIELD)):
            page = await _refusal(
                request,
                403,
                "Sorry, your message was not sent",
                "The form had expired or did not come from our website.",
                "Go back to the contact form, reload the page and send your message again.",
            )
            why = "web form without a valid CSRF token"
            return Rejected("rejected", why, CHANNEL, sender, refusal=page, address=client_address(request))
        if await _over_limit(request):
            page = await _refusal(
                request,
                429,
                "You have sent a lot of messages",
                "We have received the messages you already sent and will read them.",
                "To send another message, wait an hour and try again.",
            )
            address = client_address(request)
            why = f"web form rate limit from {address}"
            return Rejected("rejected", why, CHANNEL, sender, refusal=page, address=address)
        form = WebFormIn.model_construct(None, **{k: str(fields.get(k, "")).strip() for k in FIELDS})
        problems = form.problems() or _too_long(form)
        if problems:
            shown = {k: getattr(form, k) for k in FIELDS}
            context = {"form": shown, "errors": problems}
            page = PageShown(await render(request, "contact.html", context, status=422))
            why = "; ".join(f"{k}: {v}" for k, v in problems.items())
            return Rejected("malformed", f"web form: {why}", CHANNEL, sender, refusal=page)
        return WebFormIn.model_validate({k: getattr(form, k) for k in FIELDS}).contact()

    def render(self, decision: Decision, created: bool, rt: Runtime) -> Decision:
        return decision


def _too_long(form: WebFormIn) -> dict[str, str]:
    limits = {name: info.metadata for name, info in WebFormIn.model_fields.items()}
    out = {}
    for name in FIELDS:
        longest = next((getattr(m, "max_length", None) for m in limits[name] if hasattr(m, "max_length")), None)
        if longest is not None and len(getattr(form, name)) > longest:
            out[name] = f"Shorten this to {longest:,} characters or fewer"
    return out


PAGE = ContactFormPage()


async def contact_post(request: web.Request) -> web.Response:
    decision = await drive(PAGE, request, request.app[RUNTIME])
    context = {
        "reference": decision.contact_id,
        "acknowledgement": acknowledgement(decision),
        "closed_issue": is_closed_issue(decision),
    }
    return await render(request, "contact_sent.html", context)


def setup(app: web.Application) -> None:
    add_page(app, "GET", "/contact", contact_page)
    add_page(app, "POST", "/contact", contact_post)
