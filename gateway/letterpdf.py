"""The letter's HTML printed to an A4 PDF by WeasyPrint: tagged (PDF/UA-1), real text, nothing fetched.

Printing takes a CPU for a few hundred milliseconds, so the web handlers call `to_pdf_async`,
which runs it on a worker thread, off the event loop. WeasyPrint is imported on first use: a
machine without its Pango libraries still decides contacts, and only printing says what is missing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from .errors import Fault

PDF_TYPE = "application/pdf"
NEEDS = "WeasyPrint's Pango libraries (Debian: libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)"


class PrintError(Fault):
    """The letter could not be printed to PDF (a provider's template the renderer cannot lay out)."""

    code = "letter_print_failed"


@functools.cache
def _printer() -> tuple[Any, Any]:
    """(weasyprint.HTML, a URL fetcher that reads only data: URLs, so a template naming a file or a
    web address gets nothing)."""
    try:
        import weasyprint
        from weasyprint.urls import URLFetcher
    except (ImportError, OSError) as exc:
        raise PrintError(f"PDF printing is not available here: it needs {NEEDS} ({exc})") from None
    # WeasyPrint logs every CSS property it ignores at WARNING; the letter's are deliberate.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    return weasyprint.HTML, URLFetcher(allowed_protocols=("data",))


def to_pdf(html: str) -> bytes:
    html_type, data_only = _printer()
    try:
        return html_type(string=html, url_fetcher=data_only).write_pdf(pdf_variant="pdf/ua-1")  # type: ignore[no-any-return]
    except Exception as exc:  # a layout fault is the template's, reported as such, never a 500 trace
        raise PrintError(f"the letter could not be printed to PDF: {type(exc).__name__}: {exc}") from None


async def to_pdf_async(html: str) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, to_pdf, html)
