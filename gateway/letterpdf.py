"""The letter's HTML printed to an A4 PDF by WeasyPrint: tagged (PDF/UA-1), real text, nothing fetched.

Printing takes a CPU for a few hundred milliseconds, so the web handlers call `to_pdf_async`,
which runs it on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging

import weasyprint
from weasyprint.urls import URLFetcher

from .errors import Fault

PDF_TYPE = "application/pdf"
# WeasyPrint logs every CSS property it ignores at WARNING; the letter's are deliberate.
logging.getLogger("weasyprint").setLevel(logging.ERROR)


class PrintError(Fault):
    """The letter could not be printed to PDF (a provider's template the renderer cannot lay out)."""

    code = "letter_print_failed"


# Only data: URLs (the logo) are read; a template naming a file or a web address gets nothing.
_DATA_ONLY = URLFetcher(allowed_protocols=("data",))


def to_pdf(html: str) -> bytes:
    try:
        document = weasyprint.HTML(string=html, url_fetcher=_DATA_ONLY)
        return document.write_pdf(pdf_variant="pdf/ua-1")  # type: ignore[no-any-return]
    except Exception as exc:  # a layout fault is the template's, reported as such, never a 500 trace
        raise PrintError(f"the letter could not be printed to PDF: {type(exc).__name__}: {exc}") from None


async def to_pdf_async(html: str) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, to_pdf, html)
