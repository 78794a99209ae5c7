"""The load mix: a fixed pool of senders, ~5 % restricted, phone and email, some withheld numbers.

Each pool entry is a JSON request body missing only its provider id, shared by wrk (Lua) and the
Python constant-rate generator so both send the same traffic. The pool has the same number of
distinct senders at every data-set size, so a scale run varies only the data, not the traffic.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from .load import Shape, identifiers_of

POOL_SIZE = 20_000
RESTRICTED_SHARE = 0.05
WITHHELD_SHARE = 0.03
UNKNOWN_SHARE = 0.25
REPEAT_SHARE = 0.02  # a provider retrying the same provider id (answered 200, no new row)


@dataclass(frozen=True)
class Sender:
    channel: str
    raw: str
    restricted: bool


def _raw_phone(e164: str, rng: random.Random) -> str:
    """What a telephony platform might send for this number: E.164, national, or 0044 form."""
    national = "0" + e164[3:]
    return rng.choice([e164, national, f"{national[:5]} {national[5:]}", "0044" + e164[3:]])


def _raw_email(address: str, rng: random.Random) -> str:
    return rng.choice([address, address.upper(), f"A Tenant <{address}>"])


def _customer_sender(cid: int, restricted: bool, rng: random.Random) -> Sender:
    kind, value = rng.choice(identifiers_of(cid))
    if kind == "phone":
        return Sender("phone", _raw_phone(value, rng), restricted)
    return Sender("email", _raw_email(value, rng), restricted)


def _unknown_sender(rng: random.Random) -> Sender:
    if rng.random() < 0.6:
        return Sender("phone", _raw_phone(f"+4479{rng.randrange(10**8):08d}", rng), False)
    return Sender("email", f"someone{rng.randrange(10**7)}@mail.example.net", False)


def senders(shape: Shape, size: int = POOL_SIZE, seed: int = 7) -> list[Sender]:
    rng = random.Random(seed)
    out: list[Sender] = []
    for _ in range(size):
        u = rng.random()
        if u < RESTRICTED_SHARE:
            cid = shape.restricted_customer(rng.randrange(shape.restrictions))
            out.append(_customer_sender(cid, True, rng))
        elif u < RESTRICTED_SHARE + WITHHELD_SHARE:
            out.append(Sender("phone", "anonymous", False))
        elif u < RESTRICTED_SHARE + WITHHELD_SHARE + UNKNOWN_SHARE:
            out.append(_unknown_sender(rng))
        else:
            cid = rng.randrange(1, shape.customers + 1)
            while shape.is_restricted(cid):
                cid = rng.randrange(1, shape.customers + 1)
            out.append(_customer_sender(cid, False, rng))
    return out


def body_prefix(s: Sender) -> str:
    """The request body up to the provider id's opening quote; append `<id>"}` to finish it."""
    fields = {"channel": s.channel, "from": s.raw}
    if s.channel == "email":
        fields["subject"] = "Repair request"
    return json.dumps(fields)[:-1] + ', "provider_id": "'


def describe(pool: list[Sender]) -> str:
    n = len(pool)
    phone = sum(s.channel == "phone" for s in pool)
    return (
        f"{n:,} distinct senders: {phone / n:.0%} phone, {1 - phone / n:.0%} email, "
        f"{sum(s.restricted for s in pool) / n:.1%} restricted, "
        f"{sum(s.raw == 'anonymous' for s in pool) / n:.1%} withheld, {REPEAT_SHARE:.0%} repeats"
    )
