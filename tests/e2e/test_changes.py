"""Parameter diffs for high-change operations: a container replace, a container delete
and a throughput (offer) replace record the values before and after in the audit
record. Throughput rules scoped to a database or container apply to the offers that
belong to them."""

from __future__ import annotations

import json
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.cosmos import PartitionKey

from e2e.conftest import start_test_proxy
from support import offer_account
from support.processes import free_port
from support.proxy_client import request, wait_for_audit
from support.stack import Proxy

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


THROUGHPUT_POLICY = ADMIN_POLICY + """
[[rules]]
id = "capacity-bot-c1-throughput"
actions = ["throughput/read", "throughput/replace"]
scopes = ["/dbs/d/colls/c1"]
principal = { subject = "capacity-bot" }

[[rules]]
id = "capacity-bot-c2-frozen"
effect = "deny"
actions = ["throughput/replace"]
scopes = ["/dbs/d/colls/c2"]
principal = { subject = "capacity-bot" }
"""


@pytest.fixture(scope="module")
def throughput_policy(run_dir):
    path = run_dir / "throughput-policy.toml"
    path.write_text(THROUGHPUT_POLICY, encoding="utf-8")
    return path


@dataclass
class OfferStack:
    proxy: Proxy
    log: Path

    def account_requests(self) -> list[tuple[str, str]]:
        """The (method, path) of every request the stand-in account received so far."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [(entry["method"], entry["path"]) for entry in map(json.loads, lines)]


@pytest.fixture
def offer_stack(request, processes, certs, run_dir, oidc, throughput_policy):
    """The offer stand-in account and a proxy in front of it with the throughput policy."""
    name = f"offers-{request.node.name}"
    log = run_dir / f"{name}.jsonl"
    port = free_port()
    account = processes.start(
        name,
        [sys.executable, str(SUPPORT_DIR / "offer_account.py"), "--port", str(port),
         "--cert", str(certs.upstream_cert), "--key", str(certs.upstream_key), "--log", str(log)],
        ready=lambda: _tls_ready(port, certs),
    )
    try:
        proxy = start_test_proxy(
            processes, certs, run_dir, f"cosmoguard-{name}", f"https://127.0.0.1:{port}", oidc.issuer,
            policy_file=throughput_policy,
        )
        yield OfferStack(proxy=proxy, log=log)
        processes.stop(proxy.process)
    finally:
        processes.stop(account)


def replace_offer(stack, certs, token, offer_id, throughput=1000, **overrides):
    """PUT the stand-in's offer `offer_id` with a new throughput, as an SDK sends it."""
    offer = dict(offer_account.initial_offer(offer_id), content={"offerThroughput": throughput}, **overrides)
    return request(
        stack.proxy.url, certs.ca_file, "PUT", f"/offers/{offer_id}",
        token=token, headers={"content-type": "application/json"}, body=json.dumps(offer).encode(),
    )


def offer_audit(stack, start):
    return audit_for(stack.proxy, start, "replace_offer")


def test_offer_replace_records_throughput_change(offer_stack, certs, oidc):
    token = oidc.mint({"sub": "platform-admin", "aud": "api://cosmoguard"})
    current = request(offer_stack.proxy.url, certs.ca_file, "GET", "/offers/OfFeR1", token=token)
    assert current.status == 200, current.body
    offer = current.json()
    assert offer["content"]["offerThroughput"] == 400

    start = len(offer_stack.proxy.audit_lines())
    before = len(offer_stack.account_requests())
    offer["content"] = {"offerThroughput": 1000}
    response = request(
        offer_stack.proxy.url, certs.ca_file, "PUT", "/offers/OfFeR1",
        token=token, headers={"content-type": "application/json"}, body=json.dumps(offer).encode(),
    )
    assert response.status == 200, response.body
    line = offer_audit(offer_stack, start)
    assert line["decision"] == "allow", line
    assert line["changes"]["content"] == {
        "before": {"offerThroughput": 400},
        "after": {"offerThroughput": 1000},
    }, line["changes"]
    during_replace = offer_stack.account_requests()[before:]
    assert during_replace == [("GET", "/offers/OfFeR1"), ("PUT", "/offers/OfFeR1")], (
        "the offer read before the decision is reused for the diff, and the database and "
        "container names learnt on the first read are not read again"
    )


def test_offer_owner_read_by_rid(offer_stack, certs, oidc):
    token = oidc.mint({"sub": "capacity-bot", "aud": "api://cosmoguard"})
    before = len(offer_stack.account_requests())
    response = request(offer_stack.proxy.url, certs.ca_file, "GET", "/offers/OfFeR1", token=token)
    assert response.status == 200, response.body
    database, container = offer_account.DATABASE_D, offer_account.CONTAINER_C1
    assert offer_stack.account_requests()[before:] == [
        ("GET", "/offers/OfFeR1"),
        ("GET", f"/dbs/{database}"),
        ("GET", f"/dbs/{database}/colls/{container}"),
        ("GET", "/offers/OfFeR1"),
    ]


def test_container_rule_allows_its_offer(offer_stack, certs, oidc):
    token = oidc.mint({"sub": "capacity-bot", "aud": "api://cosmoguard"})
    start = len(offer_stack.proxy.audit_lines())
    response = replace_offer(offer_stack, certs, token, "OfFeR1")
    assert response.status == 200, response.body
    line = offer_audit(offer_stack, start)
    assert line["decision"] == "allow", line
    assert line["rule"] == "capacity-bot-c1-throughput", line
    assert line["database"] == "d", line
    assert line["container"] == "c1", line
    assert ("PUT", "/offers/OfFeR1") in offer_stack.account_requests()


def test_container_rule_denies_other_offers(offer_stack, certs, oidc):
    token = oidc.mint({"sub": "capacity-bot", "aud": "api://cosmoguard"})
    start = len(offer_stack.proxy.audit_lines())
    response = replace_offer(offer_stack, certs, token, "OfFeR2")
    assert response.status == 403, response.body
    line = offer_audit(offer_stack, start)
    assert line["decision"] == "deny", line
    assert line["rule"] == "capacity-bot-c2-frozen", line
    assert line["container"] == "c2", line

    for offer_id, container in [("OfFeR3", "c3"), ("OfFeRS", None)]:
        start = len(offer_stack.proxy.audit_lines())
        response = replace_offer(offer_stack, certs, token, offer_id)
        assert response.status == 403, (offer_id, response.body)
        line = offer_audit(offer_stack, start)
        assert line["decision"] == "deny", line
        assert line["rule"] is None, line
        assert line["container"] == container, line
        assert line["database"] == ("d" if container else "s"), line

    puts = [path for method, path in offer_stack.account_requests() if method == "PUT"]
    assert puts == [], "a denied replace reaches the account"


def test_account_rule_allows_every_offer(offer_stack, certs, oidc):
    token = oidc.mint({"sub": "platform-admin", "aud": "api://cosmoguard"})
    for offer_id in ["OfFeR2", "OfFeRS"]:
        start = len(offer_stack.proxy.audit_lines())
        response = replace_offer(offer_stack, certs, token, offer_id)
        assert response.status == 200, (offer_id, response.body)
        line = offer_audit(offer_stack, start)
        assert line["rule"] == "platform-admin-manages-everything", line


def test_unresolved_offer_needs_account_scope(offer_stack, certs, oidc):
    admin = oidc.mint({"sub": "platform-admin", "aud": "api://cosmoguard"})
    start = len(offer_stack.proxy.audit_lines())
    response = replace_offer(offer_stack, certs, admin, offer_account.BROKEN_OFFER)
    assert response.status == 200, response.body
    line = offer_audit(offer_stack, start)
    assert line["rule"] == "platform-admin-manages-everything", line
    assert line["database"] is None, line
    assert "database and container are unknown" in line["reason"], line
    assert "is not a database or container link" in line["reason"], line

    bot = oidc.mint({"sub": "capacity-bot", "aud": "api://cosmoguard"})
    start = len(offer_stack.proxy.audit_lines())
    response = request(offer_stack.proxy.url, certs.ca_file, "GET", "/offers/OfFeRZ", token=bot)
    assert response.status == 403, response.body
    line = audit_for(offer_stack.proxy, start, "read_offer")
    assert line["decision"] == "deny", line
    assert "the offer read returned status 404" in line["reason"], line


def test_replace_moving_offer_is_rejected(offer_stack, certs, oidc):
    moved = {
        "offerResourceId": offer_account.CONTAINER_C2,
        "resource": f"dbs/{offer_account.DATABASE_D}/colls/{offer_account.CONTAINER_C2}/",
    }
    for subject in ["capacity-bot", "platform-admin"]:
        token = oidc.mint({"sub": subject, "aud": "api://cosmoguard"})
        for field in moved:
            start = len(offer_stack.proxy.audit_lines())
            response = replace_offer(offer_stack, certs, token, "OfFeR1", **{field: moved[field]})
            assert response.status == 400, (subject, field, response.body)
            assert response.json()["code"] == "BadRequest", response.body
            line = offer_audit(offer_stack, start)
            assert line["decision"] == "invalid", line
            assert field in line["error"], line

    puts = [path for method, path in offer_stack.account_requests() if method == "PUT"]
    assert puts == [], "a rejected replace reaches the account"


def _tls_ready(port, certs) -> bool:
    """Whether the stand-in completes a TLS handshake on `port`."""
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                return True
    except OSError:
        return False
