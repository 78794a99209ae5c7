"""Schemathesis hooks for tests/test_schemathesis.py (loaded by the schemathesis process).

Twilio's webhooks are signed, so unsigned fuzzing would only ever meet the signature check: sign
each generated form as Twilio would (the twilio package's own validator), so the form reading and
the decision behind it are fuzzed too.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from twilio.request_validator import RequestValidator

TWILIO_PATHS = ("/v1/channels/twilio/voice", "/v1/channels/twilio/fallback")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if case.path not in TWILIO_PATHS or not isinstance(case.body, dict):
        return
    if not all(isinstance(v, str) for v in case.body.values()):
        return  # a negative case (not a form of strings): leave it unsigned
    validator = RequestValidator(os.environ["SCHEMATHESIS_TWILIO_TOKEN"])
    signature = validator.compute_signature(os.environ["SCHEMATHESIS_TWILIO_URL"] + case.formatted_path, case.body)
    case.headers = {**(case.headers or {}), "X-Twilio-Signature": signature}
