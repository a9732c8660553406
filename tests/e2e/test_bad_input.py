"""Malformed requests and a broken upstream get a clear error and an audit line, and the
proxy keeps serving afterwards."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse

import pytest

from e2e.conftest import start_test_proxy
from support import stack
from support.proxy_client import cosmos_headers, request, subject_of, wait_for_audit
from support.sdk import run_client


def assert_cosmos_error(response, statuses):
    assert response.status in statuses, (response.status, response.body)
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"status {response.status} has no JSON error body: {response.body[:200]!r}")
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body


def assert_still_serving(proxy, certs, token):
    response = request(proxy.url, certs.ca_file, "GET", "/", token=token)
    assert response.status == 200, response.body


@pytest.mark.parametrize(
    "path",
    [
        "/dbs/shop/widgets/b",
        "/dbs/shop/colls/orders/gadgets",
        "/colls/orders",
        "/dbs/shop/docs/o1",
        "/dbs/shop/colls/orders/docs/o1/colls/x",
        "/dbs/shop/colls/orders/docs/o1/extra/x/y",
    ],
)
def test_malformed_path_rejected(proxy, certs, token_for, double, path):
    token = token_for("orders-app")
    audit_start = len(proxy.audit_lines())
    double_start = double.settled_count()
    response = request(proxy.url, certs.ca_file, "GET", path, token=token)

    assert_cosmos_error(response, {400, 404})
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("path") == path)
    assert lines, f"no audit line for {path}"
    assert lines[-1]["decision"] == "invalid", lines[-1]
    assert lines[-1]["status"] == response.status, lines[-1]
    assert double.records()[double_start:] == []
    assert_still_serving(proxy, certs, token)


def test_list_containers_feed_is_valid(proxy, certs, token_for, audit_start):
    """`/dbs/shop/colls` has an odd segment count: it is the containers feed, not a
    malformed path."""
    response = request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls", token=token_for("orders-app"))

    assert response.status == 200, response.body
    assert {"orders", "tenants"} <= {container["id"] for container in response.json()["DocumentCollections"]}
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("path") == "/dbs/shop/colls")
    assert lines and lines[-1]["decision"] == "allow", lines


def test_oversized_header_rejected(proxy, certs, token_for, double):
    """Headers above the proxy's limit (64 KiB by default) but within the HTTP layer's
    buffer reach the pipeline: a Cosmos-shaped 431 with a full audit line."""
    token = token_for("orders-app")
    audit_start = len(proxy.audit_lines())
    double_start = double.settled_count()
    path = "/dbs/shop/colls/orders/docs/big-header-72"
    headers = {"x-oversized": "a" * (72 * 1024)}
    response = request(proxy.url, certs.ca_file, "GET", path, token=token, headers=headers)

    assert_cosmos_error(response, {431})
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("path") == path)
    assert lines, "no audit line for the request with a 72 KiB header"
    assert lines[-1]["decision"] == "invalid", lines[-1]
    assert lines[-1]["reason"] == "headers_too_large", lines[-1]
    assert lines[-1]["status"] == 431, lines[-1]
    assert double.records()[double_start:] == []
    assert_still_serving(proxy, certs, token)


def test_huge_header_rejected_by_http_layer(proxy, certs, token_for, double):
    """A head larger than the connection's read buffer never becomes a request: the HTTP
    layer answers 431 and closes the connection, and the proxy still writes an audit
    line for it (without a path, which was never parsed)."""
    token = token_for("orders-app")
    audit_start = len(proxy.audit_lines())
    double_start = double.settled_count()
    headers = {"x-oversized": "a" * (1024 * 1024)}
    try:
        response = request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders/docs/huge", token=token, headers=headers)
    except (ConnectionError, http.client.HTTPException, ssl.SSLError) as error:
        pytest.fail(f"the proxy dropped the connection instead of answering: {error!r}")

    assert response.status == 431, (response.status, response.body)
    assert response.headers.get("connection") == "close", response.headers
    lines = wait_for_audit(
        proxy, audit_start, lambda line: line.get("reason") == "headers_too_large" and line.get("status") == 431
    )
    assert lines, "no audit line for the request with a 1 MiB header"
    assert lines[-1]["decision"] == "invalid", lines[-1]
    # Neither the method nor the path was parsed, so the record claims neither.
    assert lines[-1]["method"] == "", lines[-1]
    assert lines[-1]["path"] == "", lines[-1]
    assert double.records()[double_start:] == []
    assert_still_serving(proxy, certs, token)


def test_oversized_token_rejected(proxy, certs, oidc, audit_start, double, double_start):
    """A token larger than any identity provider issues (here about 40 KiB of claims)."""
    token = oidc.mint({"sub": "orders-app", "aud": "api://cosmoguard", "padding": "p" * 40000})
    path = "/dbs/shop/colls/orders/docs/big-token"
    response = request(proxy.url, certs.ca_file, "GET", path, token=token)

    assert response.status in (400, 401, 431), (response.status, response.body)
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("status") == response.status)
    assert lines, "no audit line for the request with an oversized token"
    # The double records a request when it ends, so an earlier test's last request can
    # land after double_start; only this request's path must be absent.
    assert [record for record in double.records()[double_start:] if record.get("path") == path] == []


@pytest.mark.parametrize("padding_bytes", [16, 512 * 1024])
def test_connection_reused_after_denied_write(proxy, certs, token_for, padding_bytes):
    """A keep-alive connection still serves the next request after the proxy denies a
    request that carried a body. Clients such as the Python SDK reuse the connection, so
    a proxy that closes it must send `Connection: close` with the denial."""
    token = token_for("support-agent")
    parsed = urllib.parse.urlsplit(proxy.url)
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    connection = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=30)
    # Cosmos DB items may be up to 2 MiB, so a denied write can carry a large body.
    body = json.dumps({"id": "keepalive", "customerId": "c-keepalive", "padding": "p" * padding_bytes}).encode()
    headers = cosmos_headers(token)
    headers.update(
        {
            "content-type": "application/json",
            "x-ms-documentdb-partitionkey": '["c-keepalive"]',
            "x-ms-documentdb-is-upsert": "True",
        }
    )

    try:
        connection.request("POST", "/dbs/shop/colls/orders/docs", body=body, headers=headers)
        denied = connection.getresponse()
        denied.read()
        assert denied.status == 403
        if (denied.getheader("connection") or "").lower() == "close":
            return
        # Give a close from the proxy time to arrive, so the check does not depend on
        # which side is faster.
        time.sleep(0.3)
        connection.request("GET", "/", headers=cosmos_headers(token))
        second = connection.getresponse()
        second.read()
        assert second.status == 200
    except (ConnectionError, ssl.SSLError, http.client.HTTPException) as error:
        pytest.fail(f"the proxy closed the connection after a denial without Connection: close: {error!r}")
    finally:
        connection.close()


@pytest.fixture(scope="module")
def broken_upstream_proxy(processes, certs, run_dir, cosmos_server, oidc, shop):
    """A proxy whose upstream double returns truncated JSON for the account read."""
    broken = stack.start_cosmos_double(
        processes,
        certs,
        cosmos_server.url,
        run_dir / "broken-double-requests.jsonl",
        fault="invalid-account-json",
        name="broken-double",
    )
    return start_test_proxy(processes, certs, run_dir, "cosmoguard-broken-upstream", broken.url, oidc.issuer)


def test_invalid_account_json_from_upstream(broken_upstream_proxy, certs, token_for):
    proxy = broken_upstream_proxy
    token = token_for("orders-app")
    audit_start = len(proxy.audit_lines())
    response = request(proxy.url, certs.ca_file, "GET", "/", token=token)

    assert_cosmos_error(response, {502})
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("operation") == "read_account")
    assert lines, "no audit line for the failed account read"
    assert lines[-1]["decision"] == "error", lines[-1]
    assert lines[-1]["status"] == 502, lines[-1]
    assert subject_of(lines[-1]) == "orders-app"

    # Other requests still pass through the same upstream.
    item = request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders", token=token)
    assert item.status == 200, item.body


def test_sdk_sees_clear_error_for_broken_account(broken_upstream_proxy, certs, token_for):
    results = run_client("node", broken_upstream_proxy.url, [{"op": "read_account"}], certs.ca_file, token=token_for("orders-app"))

    assert not results[0]["ok"], results
    assert results[0]["status"] == 502, results
