"""inputs.client_address: the nearest X-Forwarded-For hop that is not a trusted proxy, without its port;
the peer's own address when it is no trusted proxy, or when a hop cannot be read."""

from __future__ import annotations

from ipaddress import ip_network
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.appkeys import SETTINGS
from gateway.inputs import client_address
from gateway.settings import Settings

BALANCERS = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def _address(peer: str, forwarded: str | None, proxies=BALANCERS) -> str:
    app = web.Application()
    app[SETTINGS] = Settings().with_(trusted_proxies=proxies)
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 0) if name == "peername" else default
    return client_address(make_mocked_request("POST", "/contact", headers=headers, app=app, transport=transport))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.5", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.5", "192.0.2.1, 203.0.113.5, 10.0.0.9", "203.0.113.5"),  # past a second balancer
        ("10.0.0.5", "203.0.113.5:4711", "203.0.113.5"),
        ("10.0.0.5", "[2001:DB8::1]:443", "2001:db8::1"),  # normalised: one bucket per address
        ("10.0.0.5", "unknown", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
        ("198.51.100.7", "203.0.113.5", "198.51.100.7"),  # not a balancer: its header is not read
    ],
)
def test_the_customers_address_behind_a_trusted_balancer(peer: str, forwarded: str | None, expected: str) -> None:
    assert _address(peer, forwarded) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert _address("10.0.0.5", "203.0.113.5", proxies=()) == "10.0.0.5"
