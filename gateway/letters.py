"""The customer's restriction letter: facts → words → a provider-editable template (HTML and text).

What is restricted and how to contact instead are in the words of the restriction's kind.

Templates use `string.Template` ($name placeholders): customer text is never evaluated, and in
HTML every substituted value is escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from string import Template

from .errors import Fault
from .lifecycle import APPEAL_WINDOW_WORKING_DAYS, APPEAL_WORKING_DAYS
from .models.restrictions import Restriction
from .rules.calendar import Calendar, format_date, join_words
from .rules.context import Provider
from .rules.kind import LetterWords, Records, Sentences
from .rules.registry import REGISTRY

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
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


class TemplateError(Fault):
    """A provider's template names a placeholder we do not fill, or is malformed."""

    code = "template_error"


@dataclass(frozen=True, slots=True)
class LetterFacts:
    restriction: Restriction
    customer_name: str
    today: date
    records: Records = field(default_factory=Records)  # the staff and cases its params name
    provider: Provider = field(default_factory=Provider)


@dataclass(frozen=True, slots=True)
class Letter:
    text: str
    html: str


def _channels(channels: list[str]) -> str:
    return join_words([CHANNEL_WORDS.get(c, c) for c in channels])


def _ways_to_write(p: Provider) -> str:
    """The provider's own addresses when configured (GATEWAY_PROVIDER_*), else the general words."""
    ways = [
        f"by letter to {p.address}" if p.address else "",
        f"by email to {p.email}" if p.email else "",
        f"through our web form at {p.web_form_url}" if p.web_form_url else "",
    ]
    given = [w for w in ways if w]
    if not given:
        return "You can still write to us by letter, email or through our web form at any time."
    return f"You can still write to us at any time: {join_words(given)}."


def _arrangement(f: LetterFacts) -> Sentences:
    """(what is restricted, how to contact us instead), in the words of the restriction's kind."""
    r = f.restriction
    words = LetterWords(_channels(r.channels), _ways_to_write(f.provider), f.records)
    return REGISTRY[r.kind].letter_wording(r.params, words)


def values(f: LetterFacts, cal: Calendar) -> dict[str, str]:
    r = f.restriction
    restricted, instead = _arrangement(f)
    letter_date = r.letter_sent_on or f.today
    until = f"until {format_date(r.valid_to)}" if r.valid_to else "until we formally review it"
    return {
        "customer_name": f.customer_name,
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
        # The organisation under the signature, when the provider has named itself (GATEWAY_PROVIDER_NAME).
        "provider_name": "" if f.provider.name == Provider().name else f.provider.name,
        "draft": "" if r.status in ("active", "under_appeal") else "DRAFT - NOT YET IN FORCE",
    }


def render(f: LetterFacts, cal: Calendar, template_dir: Path = TEMPLATE_DIR) -> Letter:
    mapping = values(f, cal)
    escaped = {k: html.escape(v).replace("\n", "<br>\n") for k, v in mapping.items()}
    return Letter(
        text=_fill(template_dir / "restriction_letter.txt", mapping),
        html=_fill(template_dir / "restriction_letter.html", escaped),
    )


def _fill(path: Path, mapping: dict[str, str]) -> str:
    try:
        return Template(path.read_text(encoding="utf-8")).substitute(mapping)
    except (KeyError, ValueError) as exc:
        raise TemplateError(f"letter template {path.name}: unknown or malformed placeholder {exc}") from None
