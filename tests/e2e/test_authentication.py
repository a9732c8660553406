"""Callers without a valid token get 401 with WWW-Authenticate and a Cosmos-shaped body,
and their requests never reach the account."""

from __future__ import annotations

import pytest

from support.cosmos_double import EMULATOR_KEY, resource_of_path, sign
from support.proxy_client import cosmos_headers, request, wait_for_audit
from support.sdk import run_client
from e2e.conftest import AUDIENCE

ITEM_PATH = "/dbs/shop/colls/orders/docs/any-item"


def bad_tokens(oidc):
    """Tokens that the proxy must reject: case name to (token, audit reason)."""
    claims = {"sub": "orders-app", "aud": AUDIENCE}
    return {
        # Expiry and not-before are 10 minutes off, well past any clock-skew leeway.
        "expired": (oidc.mint(claims, expires_in=-600), "expired"),
        "not yet valid": (oidc.mint(claims, not_before=600), "not_yet_valid"),
        "wrong audience": (oidc.mint({**claims, "aud": "api://someone-else"}), "wrong_audience"),
        "no audience": (oidc.mint({**claims, "aud": None}), "missing_claim"),
        "wrong issuer": (oidc.mint({**claims, "iss": "http://127.0.0.1:9/unknown-issuer"}), "unknown_issuer"),
        "bad RS256 signature": (oidc.mint(claims, alg="RS256", defect="bad-signature"), "bad_signature"),
        "bad ES256 signature": (oidc.mint(claims, alg="ES256", defect="bad-signature"), "bad_signature"),
        "alg none": (oidc.mint(claims, defect="alg-none"), "disallowed_algorithm"),
        "not a JWT": ("not-a-token", "malformed"),
    }


def assert_unauthenticated(response, case):
    assert response.status == 401, (case, response.status, response.body)
    assert response.headers.get("www-authenticate"), (case, response.headers)
    body = response.json()
    assert isinstance(body.get("code"), str) and body["code"], (case, body)
    assert isinstance(body.get("message"), str) and body["message"], (case, body)


def unauthenticated_line(proxy, start, case, reason):
    lines = wait_for_audit(proxy, start, lambda line: line.get("path") == ITEM_PATH and line.get("decision") == "unauthenticated")
    assert lines, f"no unauthenticated audit line for case {case!r}"
    line = lines[-1]
    assert line["principal"] is None, (case, line)
    assert line["status"] == 401, (case, line)
    assert line["reason"] == reason, (case, line)
    return line


def test_missing_token(proxy, certs, double, audit_start, double_start):
    response = request(proxy.url, certs.ca_file, "GET", ITEM_PATH, token=None)

    assert_unauthenticated(response, "missing")
    unauthenticated_line(proxy, audit_start, "missing", "missing")
    assert double.records()[double_start:] == []


def test_invalid_tokens(proxy, certs, oidc, double):
    for case, (token, reason) in bad_tokens(oidc).items():
        audit_start = len(proxy.audit_lines())
        double_start = double.settled_count()
        response = request(proxy.url, certs.ca_file, "GET", ITEM_PATH, token=token)

        assert_unauthenticated(response, case)
        unauthenticated_line(proxy, audit_start, case, reason)
        assert double.records()[double_start:] == [], case


def test_caller_master_key_rejected(proxy, certs, double, audit_start, double_start):
    """A caller that signs with the account key itself is not an identity the proxy accepts."""
    date = cosmos_headers(None)["x-ms-date"]
    resource_type, link = resource_of_path(ITEM_PATH)
    signature = sign(EMULATOR_KEY, "GET", resource_type, link, date)
    headers = {"authorization": f"type=master&ver=1.0&sig={signature}", "x-ms-date": date}
    response = request(proxy.url, certs.ca_file, "GET", ITEM_PATH, headers=headers)

    assert_unauthenticated(response, "caller master key")
    unauthenticated_line(proxy, audit_start, "caller master key", "unsupported_scheme")
    assert double.records()[double_start:] == []


def test_valid_token_passes(proxy, certs, token_for, audit_start):
    """The same request with a valid token gets past authentication (the control case)."""
    response = request(proxy.url, certs.ca_file, "GET", "/", token=token_for("orders-app"))

    assert response.status == 200, response.body
    assert "writableLocations" in response.json()
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("operation") == "read_account")
    assert lines, "no audit line for the account read"
    assert lines[-1]["decision"] == "allow", lines[-1]
    assert lines[-1]["principal"]["subject"] == "orders-app", lines[-1]


@pytest.mark.parametrize("sdk", ["python", "node"])
def test_sdk_with_expired_token(proxy, certs, oidc, sdk, double, double_start, audit_start):
    token = oidc.mint({"sub": "orders-app", "aud": AUDIENCE}, expires_in=-600)
    ops = [{"op": "read_item", "database": "shop", "container": "orders", "id": "x", "partition_key": "c"}]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token)

    assert not results[0]["ok"], results
    assert results[0]["status"] == 401, results
    assert double.records()[double_start:] == []
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("decision") == "unauthenticated")
    assert lines, "no unauthenticated audit line for the SDK's call"
    assert {line["reason"] for line in lines} == {"expired"}, lines
