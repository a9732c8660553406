"""Parameter diffs for high-change operations: a container replace, a container delete
and a throughput (offer) replace record the values before and after in the audit
record."""

from __future__ import annotations

import json
import socket
import ssl
import sys
from pathlib import Path

import pytest
from azure.cosmos import PartitionKey

from e2e.conftest import start_test_proxy
from support.processes import free_port
from support.proxy_client import request, wait_for_audit

SUPPORT_DIR = Path(__file__).resolve().parent.parent / "support"

ADMIN_POLICY = """
version = 1

[[rules]]
id = "platform-admin-manages-everything"
actions = ["readMetadata", "databases/*", "containers/*", "throughput/*"]
scopes = ["/"]
principal = { subject = "platform-admin" }
"""


@pytest.fixture(scope="module")
def admin_policy(run_dir):
    path = run_dir / "changes-policy.toml"
    path.write_text(ADMIN_POLICY, encoding="utf-8")
    return path


def audit_for(proxy, start, operation):
    lines = wait_for_audit(proxy, start, lambda line: line.get("operation") == operation)
    assert lines, f"no audit line for {operation}"
    return lines[-1]


def test_container_replace_and_delete_record_changes(processes, certs, run_dir, double, oidc, direct, admin_policy):
    proxy = start_test_proxy(processes, certs, run_dir, "cosmoguard-changes", double.url, oidc.issuer, policy_file=admin_policy)
    token = oidc.mint({"sub": "platform-admin", "aud": "api://cosmoguard"})
    database = direct.create_database_if_not_exists("changes")
    container = database.create_container_if_not_exists("settings", partition_key=PartitionKey(path="/pk"))
    before = container.read()
    try:
        start = len(proxy.audit_lines())
        replaced = dict(before, defaultTtl=3600)
        response = request(
            proxy.url, certs.ca_file, "PUT", "/dbs/changes/colls/settings",
            token=token, headers={"content-type": "application/json"}, body=json.dumps(replaced).encode(),
        )
        line = audit_for(proxy, start, "replace_container")
        assert line["decision"] == "allow", line
        assert line["status"] == response.status, line
        assert line.get("changes_error") is None, line
        assert line["changes"]["defaultTtl"] == {"before": None, "after": 3600}, line["changes"]
        assert "id" not in line["changes"], "unchanged fields are not listed"

        start = len(proxy.audit_lines())
        response = request(proxy.url, certs.ca_file, "DELETE", "/dbs/changes/colls/settings", token=token)
        assert response.status in (200, 204), response.body
        line = audit_for(proxy, start, "delete_container")
        assert line["decision"] == "allow", line
        assert line["changes"]["id"] == {"before": "settings", "after": None}, line["changes"]
        assert line["changes"]["partitionKey"]["before"] == before["partitionKey"], line["changes"]
    finally:
        direct.delete_database("changes")


def test_offer_replace_records_throughput_change(processes, certs, run_dir, oidc, admin_policy):
    port = free_port()
    account = processes.start(
        "offer-account",
        [sys.executable, str(SUPPORT_DIR / "offer_account.py"), "--port", str(port),
         "--cert", str(certs.upstream_cert), "--key", str(certs.upstream_key)],
        ready=lambda: _tls_ready(port, certs),
    )
    try:
        proxy = start_test_proxy(
            processes, certs, run_dir, "cosmoguard-offers", f"https://127.0.0.1:{port}", oidc.issuer, policy_file=admin_policy
        )
        token = oidc.mint({"sub": "platform-admin", "aud": "api://cosmoguard"})
        current = request(proxy.url, certs.ca_file, "GET", "/offers/OfFeR1", token=token)
        assert current.status == 200, current.body
        offer = current.json()
        assert offer["content"]["offerThroughput"] == 400

        start = len(proxy.audit_lines())
        offer["content"] = {"offerThroughput": 1000}
        response = request(
            proxy.url, certs.ca_file, "PUT", "/offers/OfFeR1",
            token=token, headers={"content-type": "application/json"}, body=json.dumps(offer).encode(),
        )
        assert response.status == 200, response.body
        line = audit_for(proxy, start, "replace_offer")
        assert line["decision"] == "allow", line
        assert line["changes"]["content"] == {
            "before": {"offerThroughput": 400},
            "after": {"offerThroughput": 1000},
        }, line["changes"]
    finally:
        processes.stop(account)


def _tls_ready(port, certs) -> bool:
    """Whether the stand-in completes a TLS handshake on `port`."""
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                return True
    except OSError:
        return False
