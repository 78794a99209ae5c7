"""The web form channel: what a customer writes in the provider's contact form, decided like any
other contact (DESIGN.md §5). Two ways in, one reading of the form:

- `POST /v1/channels/webform` (JSON, a channel key): a provider's own portal posts the form;
  the reply is the decision plus the acknowledgement to show.
- `GET/POST /contact`: the gateway's own accessible form (gateway/web/contact.py), a second Channel
  over the same `WebFormIn` that also checks the CSRF token, size and rate limit, through the same
  driver.

A customer who may only write (written_only, no_personal_contact) is welcome here: writing is their
open way in. A message about an exhausted complaint is filed without reopening it and acknowledged
with the closed-issue wording.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from aiohttp import web
from pydantic import Field, field_validator, model_validator

from ..contact import Decision, InboundContact
from ..decide import Rejected
from ..errors import GatewayError, Invalid
from ..identifiers import IdentifierError, normalise_email, normalise_phone
from ..inputs import attempt_note, read_json
from ..models.base import In
from ..runtime import Runtime
from .base import HttpMount

CHANNEL = "web_form"
MAX_MESSAGE = 5000
# A form's one-time submission id: a resubmission (a double click, the back button) is the same
# contact, decided once and logged once.
SUBMISSION = re.compile(r"[A-Za-z0-9_-]{16,64}")


class WebFormIn(In):
    """The form as a customer fills it in. Messages are in the words a customer reads."""

    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    phone: str = Field(default="", max_length=40)
    reference: str = Field(default="", max_length=50)
    message: str = Field(default="", max_length=MAX_MESSAGE)
    submission: str = Field(default="", max_length=64)
    provider_id: str = Field(default="", max_length=200)  # a portal's own id for the submission

    @field_validator("name", "email", "phone", "reference", "message", "submission", "provider_id", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return "" if v is None else (v.strip().replace("\x00", "\ufffd") if isinstance(v, str) else v)

    @model_validator(mode="after")
    def _filled(self) -> WebFormIn:
        problems = self.problems()
        if problems:
            field, message = next(iter(problems.items()))
            raise ValueError(f"{field}: {message}")
        return self

    def problems(self) -> dict[str, str]:
        """Each field that is not right, in the order the form shows them, with what to do about it."""
        out: dict[str, str] = {}
        if not self.name:
            out["name"] = "Enter your name"
        if not self.email and not self.phone:
            out["email"] = "Enter an email address or a phone number so we can reply to you"
        if self.email:
            try:
                normalise_email(self.email)
            except IdentifierError:
                out["email"] = "Enter an email address in the correct format, like name@example.com"
        if self.phone:
            try:
                normalise_phone(self.phone)
            except IdentifierError:
                out["phone"] = "Enter a phone number, like 01632 960 001 or 07700 900 982"
        if not self.message:
            out["message"] = "Enter your message"
        if self.submission and not SUBMISSION.fullmatch(self.submission):
            out["message"] = "Something went wrong with the form: reload the page and send your message again"
        return out

    def contact(self) -> InboundContact:
        """The contact as the rules see it: from the email address (a written reply goes there), else
        the phone number; the reference, when it names a complaint, threads it to the case."""
        sender = normalise_email(self.email) if self.email else normalise_phone(self.phone)
        return InboundContact.model_validate(
            {
                "channel": CHANNEL,
                "from": sender,
                "subject": f"Web form from {self.name}"[:1000],
                "body": _body(self),
                "case_ref": self.reference or None,
                "provider_id": self.provider_id or (f"form:{self.submission}" if self.submission else None),
            }
        )


def _body(form: WebFormIn) -> str:
    lines = [f"Name: {form.name}"]
    lines += [f"Email: {form.email}"] if form.email else []
    lines += [f"Phone: {form.phone}"] if form.phone else []
    lines += [f"Reference: {form.reference}"] if form.reference else []
    return "\n".join([*lines, "", form.message])


def acknowledgement(decision: Decision) -> str:
    """What the customer is told once their message is in: the decision's own message where it has
    one (a closed complaint's filing, a limit), else that it reached the team."""
    if decision.customer_message:
        return decision.customer_message
    return "We have received your message and will reply using the contact details you gave us."


def is_closed_issue(decision: Decision) -> bool:
    return decision.action == "auto_acknowledge" and decision.matched.case_id is not None


class WebFormChannel:
    name = "webform"
    description = (
        "A provider's own portal posts its contact form as JSON; the reply is the decision and the acknowledgement."
    )
    mount = HttpMount("/v1/channels/webform", ("channel",), CHANNEL)

    async def parse(self, raw: web.Request, rt: Runtime) -> InboundContact | Rejected:
        try:
            data = await read_json(raw)
        except GatewayError as exc:
            return Rejected("malformed", attempt_note(raw, exc), CHANNEL, refusal=exc)
        if not isinstance(data, dict):
            problem = Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
            return Rejected("malformed", problem.message, CHANNEL, refusal=problem)
        try:
            return WebFormIn.model_validate(data).contact()
        except pydantic.ValidationError as exc:
            sender = data.get("email") or data.get("phone") or ""
            return Rejected("malformed", str(exc), CHANNEL, str(sender)[:320], refusal=exc)

    def render(self, decision: Decision, created: bool, rt: Runtime) -> web.StreamResponse:
        body = {
            **decision.model_dump(mode="json"),
            "reference": decision.contact_id,
            "acknowledgement": acknowledgement(decision),
            "closed_issue": is_closed_issue(decision),
        }
        return web.json_response(body, status=201 if created else 200)
