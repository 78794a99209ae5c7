"""The customer's restriction letter: facts → words → a provider-editable template (HTML and text).

What is restricted and how to contact instead are in the words of the restriction's kind. The
templates are Jinja2, in a sandbox: customer text is never evaluated, and in HTML every value is
escaped. The HTML is also the print source of the PDF (gateway.letterpdf): A4, the provider's
letterhead, the customer's address where a DL window envelope shows it.
"""

from __future__ import annotations

import base64
import functools
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from .errors import Fault
from .lifecycle import APPEAL_WINDOW_WORKING_DAYS, APPEAL_WORKING_DAYS
from .models.restrictions import Restriction
from .outbox.message import OutgoingAttachment, OutgoingMail
from .postal import Address
from .rules.calendar import Calendar, format_date, join_words
from .rules.context import UNNAMED_PROVIDER, Provider
from .rules.kind import LetterWords, Records, Sentences
from .rules.registry import REGISTRY

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
HTML_TEMPLATE, TEXT_TEMPLATE = "restriction_letter.html", "restriction_letter.txt"
HEADING = "Decision to restrict your contact with us"
DECISION_SUBJECT = "decision about how you contact us"
BEHAVIOUR = {
    "aggressive_or_abusive": "aggressive, abusive or intimidating behaviour",
    "unreasonable_demands": "unreasonable demands",
    "unreasonable_persistence": "unreasonable persistence",
}
CHANNEL_WORDS = {
    "phone": "telephone",
    "email": "email",
    "web_form": "our web form",
    "letter": "letter",
    "visit": "visits to our offices",
}
OMBUDSMAN = {
    "name": "Housing Ombudsman Service",
    "phone": "0300 111 3000",
    "email": "info@housing-ombudsman.org.uk",
    "post": "Housing Ombudsman Service, PO Box 1484, Unit D, Preston, PR2 0ET",
    "web": "www.housing-ombudsman.org.uk",
}


class TemplateError(Fault):
    """A provider's template names a value we do not fill, or is malformed."""

    code = "template_error"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a letter after the first tells the customer (policy 000 §6.3: the appeal's outcome, in
    writing; §7.1: a review's): an appeal decided, or the restriction lifted, on appeal or not."""

    result: str  # upheld | varied | lifted
    decided_on: date
    appealed_on: date | None = None  # when the appeal was lodged, if it was an appeal


@dataclass(frozen=True, slots=True)
class LetterFacts:
    restriction: Restriction
    customer_name: str
    today: date
    records: Records = field(default_factory=Records)  # the staff and cases its params name
    provider: Provider = field(default_factory=Provider)
    address: Address | None = None  # where it is posted; None: not on record
    large_print: bool = False  # the customer's adjustments ask for it, or the caller did
    logo: str = ""  # the provider's logo as a data: URL (GATEWAY_PROVIDER_LOGO)
    outcome: Outcome | None = None  # None: the letter of the decision itself
    others_in_force: int = 0  # the customer's other restrictions in force (a lift letter says they still apply)


@dataclass(frozen=True, slots=True)
class Letter:
    text: str
    html: str
    reference: str
    heading: str = HEADING
    appealable: bool = True  # it tells the customer how to appeal (an outcome letter does not)
    subject: str = DECISION_SUBJECT  # after "Our letter R1: " in an email's subject


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who an emailed letter goes to: the customer, or a representative of theirs."""

    name: str
    email: str
    representative_id: int | None = None


def letter_email(to: Recipient, letter: Letter, pdf: bytes, provider: Provider) -> OutgoingMail:
    """The letter as an email for the outbox: a short covering note, the PDF attached."""
    sender = provider.name if provider.name != UNNAMED_PROVIDER else "Customer Experience Team"
    appeal = "The letter says how to appeal and by when. " if letter.appealable else ""
    text = (
        f"Dear {to.name},\n\n"
        f"Please find attached our letter {letter.reference} about how you can contact us. It is a PDF; "
        "if you cannot open it, or need it in another format such as large print, reply to this email "
        "and we will send it another way.\n\n"
        f"{appeal}Please quote {letter.reference} when you write to us.\n\n"
        f"Yours sincerely,\n{sender}\n"
    )
    subject = f"Our letter {letter.reference}: {letter.subject}"
    attached = OutgoingAttachment(f"{letter.reference}.pdf", "application/pdf", pdf)
    return OutgoingMail(to=to.email, subject=subject, text=text, attachments=(attached,))


def _channels(channels: list[str]) -> str:
    return join_words([CHANNEL_WORDS.get(c, c) for c in channels])


def _ways_to_write(p: Provider) -> str:
    """The provider's own addresses when configured (GATEWAY_PROVIDER_*), else the general words."""
    ways = [
        f"by letter to {p.one_line_address()}" if p.address else "",
        f"by email to {p.email}" if p.email else "",
        f"through our web form at {p.web_form_url}" if p.web_form_url else "",
    ]
    given = [w for w in ways if w]
    if not given:
        return "You can still write to us by letter, email or through our web form at any time."
    # Any one of them will do; ";" between them, as an address has commas of its own.
    either = given[0] if len(given) == 1 else "; ".join(given[:-1]) + "; or " + given[-1]
    return f"You can still write to us at any time: {either}."


def _arrangement(f: LetterFacts) -> Sentences:
    """(what is restricted, how to contact us instead), in the words of the restriction's kind."""
    r = f.restriction
    words = LetterWords(
        _channels(r.channels),
        _ways_to_write(f.provider),
        f.records,
        f.provider.emergency_sentence(),
        frozenset(r.channels),
    )
    return REGISTRY[r.kind].letter_wording(r.params, words)


# An outcome letter's email subject, by (result, whether it was an appeal).
_SUBJECTS = {
    ("upheld", True): "our decision on your appeal",
    ("varied", True): "our decision on your appeal",
    ("lifted", True): "the restriction is lifted after your appeal",
    ("lifted", False): "the restriction on your contact with us is lifted",
}


def _opening(f: LetterFacts) -> tuple[str, str]:
    """The letter's heading and first paragraph: the decision, or what it tells of after it."""
    o = f.outcome
    if o is None:
        return HEADING, "We are writing to tell you that we have decided to restrict how you contact us, and why."
    on = format_date(o.decided_on)
    appeal = (
        f"Thank you for your appeal of {format_date(o.appealed_on)} against our decision to restrict how you "
        "contact us. A manager who was not involved in that decision has considered it carefully and decided "
        if o.appealed_on
        else ""
    )
    if o.result == "lifted":
        heading = (
            "Your appeal: the restriction is lifted" if appeal else "The restriction on your contact with us is lifted"
        )
        said = (
            f"{appeal}on {on} to lift it."
            if appeal
            else f"We have decided on {on} to lift the restriction on how you contact us."
        )
        return heading, said
    if o.result == "varied":
        return (
            "Your appeal: our decision",
            f"{appeal}on {on} to change the arrangements. From now on they are as set out below.",
        )
    return (
        "Your appeal: our decision",
        f"{appeal}on {on} that the arrangements still apply. They are set out again below.",
    )


def values(f: LetterFacts, cal: Calendar) -> dict[str, Any]:
    r = f.restriction
    restricted, instead = _arrangement(f)
    letter_date = r.letter_sent_on or f.today
    until = f"until {format_date(r.valid_to)}" if r.valid_to else "until we formally review it"
    named = f.provider.name != UNNAMED_PROVIDER
    heading, intro = _opening(f)
    o = f.outcome
    lifted = o is not None and o.result == "lifted"
    return {
        "heading": heading,
        "intro": intro,
        # After the decision itself: the appeal's or the lift's outcome (result: upheld, varied or
        # lifted; appealed_on: "" unless it was an appeal); None in the letter of the decision.
        "outcome": None
        if o is None
        else {
            "result": o.result,
            "decided_on": format_date(o.decided_on),
            "appealed_on": format_date(o.appealed_on) if o.appealed_on else "",
        },
        "lifted_from": format_date(o.decided_on) if o is not None and lifted else "",  # in force no longer
        "restored": _channels(r.channels),  # what a lift letter says the customer may use again
        "others_in_force": f.others_in_force > 0,
        "customer_name": f.customer_name,
        "address_lines": list(f.address.lines) if f.address else [],
        "postcode": f.address.postcode if f.address else "",
        "date": format_date(letter_date),
        "reference": f"R{r.id}",
        "behaviour": BEHAVIOUR[r.reason_category],
        "reasons": r.reasons,
        "restricted": restricted,
        "contact_instead": instead,
        "valid_from": format_date(r.valid_from),
        "duration": until,
        "review_date": format_date(r.review_due),
        "appeal_by": format_date(cal.working_days_after(letter_date, APPEAL_WINDOW_WORKING_DAYS)),
        "appeal_days": str(APPEAL_WORKING_DAYS),
        # The organisation under the signature and on the letterhead, when the provider has named
        # itself (GATEWAY_PROVIDER_NAME).
        "provider_name": f.provider.name if named else "",
        "provider": {
            "name": f.provider.name if named else "",
            "address_lines": list(f.provider.address_lines()),
            "phone": f.provider.phone,
            "email": f.provider.email,
            "web_form_url": f.provider.web_form_url,
            "logo": f.logo,
        },
        "ombudsman": OMBUDSMAN,
        "large_print": f.large_print,
        "draft": "" if r.status in ("active", "under_appeal") or lifted else "DRAFT - NOT YET IN FORCE",
    }


# Printed on one line: a postcode ("LS1 4AB") and a web address split over two read as two things.
_UNBROKEN = re.compile(r"\b[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}\b|https?://[^\s<]+?(?=[.,;:)]?(?:\s|$))")


def keep_together(text: str) -> Markup:
    """The `keep_together` filter: `text` escaped, its postcodes and web addresses never broken."""
    escaped = str(escape(text))
    return Markup(_UNBROKEN.sub(lambda m: f'<span class="unbroken">{m.group(0)}</span>', escaped))


@functools.lru_cache(maxsize=8)
def _environment(template_dir: Path) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["keep_together"] = keep_together
    return env


def render(f: LetterFacts, cal: Calendar, template_dir: Path = TEMPLATE_DIR) -> Letter:
    mapping = values(f, cal)
    return Letter(
        text=_fill(template_dir, TEXT_TEMPLATE, mapping),
        html=_fill(template_dir, HTML_TEMPLATE, mapping),
        reference=mapping["reference"],
        heading=mapping["heading"],
        appealable=f.outcome is None,
        subject=_SUBJECTS.get((f.outcome.result, bool(f.outcome.appealed_on)), DECISION_SUBJECT)
        if f.outcome
        else DECISION_SUBJECT,
    )


def _fill(template_dir: Path, name: str, mapping: dict[str, Any]) -> str:
    try:
        return _environment(template_dir).get_template(name).render(mapping)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"letter template {name}: {exc.message or type(exc).__name__}") from None


@functools.lru_cache(maxsize=4)
def logo_data_url(path: str) -> str:
    """The logo file as a data: URL, so neither the PDF renderer nor a browser fetches anything."""
    if not path:
        return ""
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"
