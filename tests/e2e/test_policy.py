"""Policy decisions seen through the SDKs: read-only, deny-rule and tenant-partition
identities, with the stand-in's data checked directly afterwards."""

from __future__ import annotations

import json
import uuid

import pytest

from support.proxy_client import request, subject_of, wait_for_audit
from support.sdk import run_client

ORDERS = {"database": "shop", "container": "orders"}
TENANTS = {"database": "shop", "container": "tenants"}


def audit_line(proxy, start, operation, resource, subject):
    lines = wait_for_audit(
        proxy,
        start,
        lambda line: line.get("operation") == operation and line.get("resource") == resource and subject_of(line) == subject,
    )
    assert lines, f"no audit line for {subject} {operation} on {resource!r}"
    return lines[-1]


def assert_denied(result, line, rule):
    assert not result["ok"], result
    assert result["status"] == 403, result
    assert line["decision"] == "deny", line
    assert line["status"] == 403, line
    assert line["rule"] == rule, line
    assert line["reason"], line


@pytest.fixture
def seeded_order(orders):
    """One order written directly to cosmosdb-server."""
    item = {"id": f"seed-{uuid.uuid4().hex[:8]}", "customerId": "c-seed", "total": 42}
    orders.upsert_item(item)
    return item


def test_reporting_reads(proxy, certs, token_for, sdk, seeded_order, audit_start):
    ops = [
        {"op": "read_item", **ORDERS, "id": seeded_order["id"], "partition_key": "c-seed"},
        {"op": "query_items", **ORDERS, "query": "SELECT * FROM c WHERE c.id = @id", "parameters": [{"name": "@id", "value": seeded_order["id"]}]},
    ]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("reporting"))

    assert results[0]["ok"], results[0]
    assert results[0]["data"] == seeded_order
    assert results[1]["ok"], results[1]
    assert results[1]["data"] == [seeded_order]
    line = audit_line(proxy, audit_start, "read_item", f"dbs/shop/colls/orders/docs/{seeded_order['id']}", "reporting")
    assert line["decision"] == "allow"
    assert line["rule"] == "reporting-read-only"


def test_reporting_write_denied(proxy, certs, token_for, sdk, seeded_order, orders, audit_start, double, double_start):
    changed = {**seeded_order, "total": 0}
    ops = [{"op": "upsert_item", **ORDERS, "item": changed}]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("reporting"))

    line = audit_line(proxy, audit_start, "upsert_item", f"dbs/shop/colls/orders/docs/{changed['id']}", "reporting")
    # No allow rule grants reporting items/upsert, so the default deny decides.
    assert not results[0]["ok"], results[0]
    assert results[0]["status"] == 403, results[0]
    assert line["decision"] == "deny", line
    assert line["rule"] in (None, ""), line
    assert orders.read_item(seeded_order["id"], "c-seed")["total"] == 42
    assert [r for r in double.records()[double_start:] if r["method"] == "POST" and r["path"].endswith("/docs")] == []


def test_agent_reads_allowed(proxy, certs, token_for, sdk, seeded_order, audit_start):
    ops = [{"op": "read_item", **ORDERS, "id": seeded_order["id"], "partition_key": "c-seed"}]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("support-agent"))

    assert results[0]["ok"], results[0]
    assert results[0]["data"] == seeded_order
    line = audit_line(proxy, audit_start, "read_item", f"dbs/shop/colls/orders/docs/{seeded_order['id']}", "support-agent")
    assert line["decision"] == "allow"
    assert line["rule"] == "support-agent-contributor"


def test_agent_writes_denied_by_rule(proxy, certs, token_for, sdk, seeded_order, orders, audit_start, double, double_start):
    item_id = seeded_order["id"]
    new_id = f"agent-{uuid.uuid4().hex[:8]}"
    ops = [
        {"op": "create_item", **ORDERS, "item": {"id": new_id, "customerId": "c-seed", "total": 1}},
        {"op": "upsert_item", **ORDERS, "item": {**seeded_order, "total": 1}},
        {"op": "replace_item", **ORDERS, "id": item_id, "partition_key": "c-seed", "item": {**seeded_order, "total": 2}},
        {"op": "patch_item", **ORDERS, "id": item_id, "partition_key": "c-seed", "operations": [{"op": "set", "path": "/total", "value": 3}]},
        {"op": "delete_item", **ORDERS, "id": item_id, "partition_key": "c-seed"},
    ]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("support-agent"))

    feed = "dbs/shop/colls/orders"
    item_link = f"{feed}/docs/{item_id}"
    expected_lines = [
        ("create_item", f"{feed}/docs/{new_id}"),
        ("upsert_item", item_link),
        ("replace_item", item_link),
        ("patch_item", item_link),
        ("delete_item", item_link),
    ]
    for result, (operation, resource) in zip(results, expected_lines):
        # Check the SDK result first: when the call got no response, the audit line is
        # missing too and the result contains the reason.
        assert result["status"] == 403, result
        line = audit_line(proxy, audit_start, operation, resource, "support-agent")
        assert_denied(result, line, "support-agent-no-writes")
    stored = orders.read_item(item_id, "c-seed")
    assert {name: stored[name] for name in seeded_order} == seeded_order
    assert list(orders.query_items("SELECT * FROM c WHERE c.id = @id", parameters=[{"name": "@id", "value": new_id}], enable_cross_partition_query=True)) == []
    writes = [r for r in double.records()[double_start:] if r["method"] in ("PUT", "PATCH", "DELETE") or (r["method"] == "POST" and r["path"].endswith("/docs") and "x-ms-documentdb-isquery" not in r["headers"])]
    assert writes == []


def test_tenant_own_partition(proxy, certs, token_for, sdk, tenants, audit_start):
    tenant = f"t-{sdk}-{uuid.uuid4().hex[:6]}"
    other = f"other-{uuid.uuid4().hex[:6]}"
    tenants.upsert_item({"id": "theirs", "tenantId": other, "secret": "other tenant's"})
    mine = {"id": f"mine-{uuid.uuid4().hex[:6]}", "tenantId": tenant, "plan": "basic"}
    ops = [
        {"op": "upsert_item", **TENANTS, "item": mine},
        {"op": "read_item", **TENANTS, "id": mine["id"], "partition_key": tenant},
        # cosmosdb-server ignores the partition key header of a query and fails a
        # partition-scoped query without a filter, so the query filters by tenant itself.
        {
            "op": "query_items",
            **TENANTS,
            "query": "SELECT * FROM c WHERE c.tenantId = @tenant",
            "parameters": [{"name": "@tenant", "value": tenant}],
            "partition_key": tenant,
        },
        {"op": "read_item", **TENANTS, "id": "theirs", "partition_key": other},
        {"op": "upsert_item", **TENANTS, "item": {"id": "theirs", "tenantId": other, "secret": "overwritten"}},
        {"op": "query_items", **TENANTS, "query": "SELECT * FROM c"},
    ]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("tenant-app", tid=tenant))

    assert results[0]["ok"], results[0]
    assert results[1]["ok"], results[1]
    assert results[1]["data"] == mine
    assert results[2]["ok"], results[2]
    assert [item["tenantId"] for item in results[2]["data"]] == [tenant]
    for index in (3, 4, 5):
        assert not results[index]["ok"], (ops[index], results[index])
        assert results[index]["status"] == 403, (ops[index], results[index])
    assert tenants.read_item("theirs", other)["secret"] == "other tenant's"

    allowed = audit_line(proxy, audit_start, "read_item", f"dbs/shop/colls/tenants/docs/{mine['id']}", "tenant-app")
    assert allowed["decision"] == "allow"
    assert allowed["rule"] == "tenant-app-own-partition"
    denied = audit_line(proxy, audit_start, "read_item", "dbs/shop/colls/tenants/docs/theirs", "tenant-app")
    assert denied["decision"] == "deny"
    assert denied["status"] == 403
    # The cross-partition query names no partition key, so the rule cannot apply. The
    # Node SDK requests a query plan first, so the denied line may be the plan request.
    cross = wait_for_audit(
        proxy,
        audit_start,
        lambda line: subject_of(line) == "tenant-app"
        and line.get("resource") == "dbs/shop/colls/tenants"
        and str(line.get("operation", "")).startswith("query")
        and line.get("decision") == "deny",
    )
    assert cross, "no denied query audit line for the cross-partition query"
    assert cross[-1]["status"] == 403


def test_query_content_type_cannot_create(proxy, certs, token_for, orders, audit_start):
    """A POST the proxy decides as a query reaches the account as exactly that: a caller
    allowed only to query cannot have a query-shaped request stored as an item, whatever
    parameters it adds to the content type."""
    item_id = f"smuggled-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"id": item_id, "customerId": "c-seed", "query": "SELECT * FROM c", "parameters": []})
    headers = {
        "content-type": "application/query+json; charset=utf-8",
        "x-ms-documentdb-partitionkey": '["c-seed"]',
    }
    response = request(
        proxy.url, certs.ca_file, "POST", "/dbs/shop/colls/orders/docs",
        token=token_for("reporting"), headers=headers, body=body.encode(),
    )

    assert response.status != 201, response.body
    line = audit_line(proxy, audit_start, "query_items", "dbs/shop/colls/orders", "reporting")
    assert line["decision"] == "allow", line
    stored = list(orders.query_items("SELECT * FROM c WHERE c.id = @id", parameters=[{"name": "@id", "value": item_id}], enable_cross_partition_query=True))
    assert stored == []
