"""Schemathesis hooks for tests/test_schemathesis.py (loaded by the schemathesis process).

Twilio's and Mailgun's webhooks are signed, so unsigned fuzzing would only ever meet the signature
check: sign each generated form as they would (Twilio: the twilio package's own validator), so the
form reading and the decision behind it are fuzzed too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Any

import schemathesis
from twilio.request_validator import RequestValidator

TWILIO_PATHS = ("/v1/channels/twilio/voice", "/v1/channels/twilio/fallback")
MAILGUN_PATH = "/v1/channels/email/mailgun/mime"


def _sign_mailgun(body: dict[str, Any]) -> None:
    """Mailgun signs in the body: HMAC-SHA256 of timestamp + token under the signing key."""
    key = os.environ["SCHEMATHESIS_MAILGUN_KEY"].encode()
    # Signed as Mailgun signs: now, and a token of its own (an old or reused one is refused).
    body["timestamp"], body["token"] = str(int(time.time())), secrets.token_hex(25)
    body["signature"] = hmac.new(key, (body["timestamp"] + body["token"]).encode(), hashlib.sha256).hexdigest()


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if case.path not in (*TWILIO_PATHS, MAILGUN_PATH) or not isinstance(case.body, dict):
        return
    if not all(isinstance(v, str) for v in case.body.values()):
        return  # a negative case (not a form of strings): leave it unsigned
    if case.path == MAILGUN_PATH:
        if "timestamp" in case.body and "token" in case.body:
            _sign_mailgun(case.body)
        return
    validator = RequestValidator(os.environ["SCHEMATHESIS_TWILIO_TOKEN"])
    signature = validator.compute_signature(os.environ["SCHEMATHESIS_TWILIO_URL"] + case.formatted_path, case.body)
    case.headers = {**(case.headers or {}), "X-Twilio-Signature": signature}
