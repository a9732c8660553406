"""Signing-key rotation and outages at the real OIDC provider: the provider restarts with
new keys, and later stops, while the proxy keeps accepting what it can verify."""

from __future__ import annotations

import re
import time
import urllib.parse
import urllib.request

import pytest

from e2e.conftest import AUDIENCE, start_test_proxy
from support import stack
from support.proxy_client import request

# Short windows so the test does not wait for the production defaults (10 s, 5 min).
ISSUER_SETTINGS = 'jwks_min_refetch_interval = "1s"\njwks_refresh_interval = "1h"'


def jwks_fetches(proxy: stack.Proxy, result: str) -> float:
    """The value of cosmoguard_jwks_fetches_total for `result`, summed over issuers."""
    with urllib.request.urlopen(f"{proxy.admin_url}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    pattern = re.compile(r'^cosmoguard_jwks_fetches_total\{[^}]*result="' + result + r'"[^}]*\} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


def read_account(proxy, certs, token):
    return request(proxy.url, certs.ca_file, "GET", "/", token=token)


@pytest.fixture
def rotating_provider(processes):
    """A provider of this test's own, so restarting it disturbs no other test."""
    return stack.start_oidc_provider(processes, name="rotating-oidc")


def restart(processes, provider: stack.OidcProvider, kid_suffix: str) -> stack.OidcProvider:
    port = urllib.parse.urlsplit(provider.issuer).port
    control_port = urllib.parse.urlsplit(provider.control_url).port
    processes.stop(provider.process)
    return stack.start_oidc_provider(
        processes, name=f"rotating-oidc{kid_suffix}", port=port, control_port=control_port, kid_suffix=kid_suffix
    )


def test_rotation_and_outage(processes, certs, run_dir, double, rotating_provider, shop):
    proxy = start_test_proxy(
        processes, certs, run_dir, "cosmoguard-rotation", double.url, rotating_provider.issuer,
        issuer_settings=ISSUER_SETTINGS,
    )
    old_token = rotating_provider.mint({"sub": "orders-app", "aud": AUDIENCE})
    assert read_account(proxy, certs, old_token).status == 200

    rotated = restart(processes, rotating_provider, "-rotated")
    assert rotated.issuer == rotating_provider.issuer

    # The cached token keeps working: its verification is cached until its exp.
    assert read_account(proxy, certs, old_token).status == 200

    # A token signed with the new key names a kid the proxy has not seen: one refetch.
    # Unknown-kid refetches are rate-limited (here to one a second, counted from the
    # fetch at start), so the test waits out that window as any real rotation would.
    time.sleep(1.5)
    fetches_before = jwks_fetches(proxy, "success")
    new_token = rotated.mint({"sub": "orders-app", "aud": AUDIENCE})
    response = read_account(proxy, certs, new_token)
    assert response.status == 200, response.body
    assert jwks_fetches(proxy, "success") == fetches_before + 1

    # A second token with the same new kid needs no further fetch.
    another = rotated.mint({"sub": "orders-app", "aud": AUDIENCE, "name": "second"})
    assert read_account(proxy, certs, another).status == 200
    assert jwks_fetches(proxy, "success") == fetches_before + 1

    # The provider goes away: keys already fetched keep verifying fresh tokens.
    fresh = rotated.mint({"sub": "orders-app", "aud": AUDIENCE, "name": "after outage"})
    processes.stop(rotated.process)
    response = read_account(proxy, certs, fresh)
    assert response.status == 200, response.body

    # The proxy stays ready through the outage: the last good keys are kept (24 h by default).
    assert stack.http_status(f"{proxy.admin_url}/readyz") == 200
