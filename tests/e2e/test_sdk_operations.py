"""Both SDKs, unmodified and with endpoint discovery on, run every common operation
through the proxy as the orders-app identity."""

from __future__ import annotations

import uuid

import pytest
from azure.cosmos import exceptions

from support.cosmos_double import token_fingerprint
from support.proxy_client import subject_of, wait_for_audit
from support.sdk import run_client


def allowed_audit(proxy, start, operation, resource, rule, status_range=(200, 299)):
    """Return the audit line of one allowed call, asserting its fields."""
    lines = wait_for_audit(
        proxy, start, lambda line: line.get("operation") == operation and line.get("resource") == resource
    )
    assert lines, f"no audit line for {operation} on {resource!r}"
    line = lines[-1]
    assert line["decision"] == "allow", line
    assert line["rule"] == rule, line
    assert subject_of(line) == "orders-app", line
    assert status_range[0] <= line["status"] <= status_range[1], line
    return line


def test_read_account_points_at_proxy(proxy, certs, token_for, sdk, audit_start):
    results = run_client(sdk, proxy.url, [{"op": "read_account"}], certs.ca_file, token=token_for("orders-app"))

    assert results[0]["ok"], results
    advertised = results[0]["data"]["writable"] + results[0]["data"]["readable"]
    assert advertised
    for endpoint in advertised:
        assert endpoint.rstrip("/") == proxy.url, advertised
    line = allowed_audit(proxy, audit_start, "read_account", "", "test-apps-read-metadata")
    assert line["method"] == "GET"
    assert line["path"] == "/"
    assert line["principal"]["name"] == "orders-app (test)"


def test_create_database_and_container(proxy, certs, token_for, sdk, direct, audit_start):
    database = f"created-{sdk}"
    ops = [
        {"op": "create_database", "database": database},
        {"op": "create_container", "database": database, "container": "items", "partition_key_path": "/pk"},
        {"op": "upsert_item", "database": database, "container": "items", "item": {"id": "first", "pk": "p"}},
    ]
    try:
        results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token_for("orders-app"))

        for op, result in zip(ops, results):
            assert result["ok"], (op, result)
        assert results[0]["data"] == {"id": database}
        assert results[1]["data"] == {"id": "items"}
        stored = direct.get_database_client(database).get_container_client("items").read_item("first", "p")
        assert stored["pk"] == "p"
        create_db = allowed_audit(proxy, audit_start, "create_database", f"dbs/{database}", "orders-app-manage-created")
        assert create_db["resource_type"] == "dbs"
        assert create_db["database"] == database
        create_container = allowed_audit(
            proxy, audit_start, "create_container", f"dbs/{database}/colls/items", "orders-app-manage-created"
        )
        assert create_container["container"] == "items"
    finally:
        try:
            direct.delete_database(database)
        except exceptions.CosmosResourceNotFoundError:
            pass


def test_item_operations(proxy, certs, token_for, sdk, orders, audit_start, double, double_start):
    token = token_for("orders-app")
    customer = f"c-{sdk}-{uuid.uuid4().hex[:6]}"
    kept_id, removed_id = f"keep-{uuid.uuid4().hex[:6]}", f"drop-{uuid.uuid4().hex[:6]}"
    container = {"database": "shop", "container": "orders"}
    ops = [
        {"op": "upsert_item", **container, "item": {"id": kept_id, "customerId": customer, "total": 10}},
        {"op": "upsert_item", **container, "item": {"id": removed_id, "customerId": customer, "total": 20}},
        {"op": "read_item", **container, "id": kept_id, "partition_key": customer},
        {"op": "replace_item", **container, "id": kept_id, "partition_key": customer, "item": {"id": kept_id, "customerId": customer, "total": 11}},
        {"op": "patch_item", **container, "id": kept_id, "partition_key": customer, "operations": [{"op": "set", "path": "/status", "value": "shipped"}]},
        {
            "op": "query_items",
            **container,
            "query": "SELECT * FROM c WHERE c.customerId = @customer ORDER BY c.total",
            "parameters": [{"name": "@customer", "value": customer}],
            "partition_key": customer,
        },
        {
            "op": "query_items",
            **container,
            "query": "SELECT VALUE COUNT(1) FROM c WHERE c.customerId = @customer",
            "parameters": [{"name": "@customer", "value": customer}],
        },
        {"op": "delete_item", **container, "id": removed_id, "partition_key": customer},
    ]
    results = run_client(sdk, proxy.url, ops, certs.ca_file, token=token)

    for op, result in zip(ops, results):
        assert result["ok"], (op, result)
    assert results[2]["data"] == {"id": kept_id, "customerId": customer, "total": 10}
    assert results[3]["data"]["total"] == 11
    assert results[4]["data"]["status"] == "shipped"
    assert [item["id"] for item in results[5]["data"]] == [kept_id, removed_id]
    assert results[6]["data"] == [2]

    stored = orders.read_item(kept_id, customer)
    assert stored["total"] == 11
    assert stored["status"] == "shipped"
    remaining = list(orders.query_items("SELECT * FROM c WHERE c.id = @id", parameters=[{"name": "@id", "value": removed_id}], enable_cross_partition_query=True))
    assert remaining == []

    docs_feed = "dbs/shop/colls/orders"
    item_link = f"{docs_feed}/docs/{kept_id}"
    rule = "orders-app-read-write"
    # A create or upsert is decided, and audited, on the item its body names.
    upsert = allowed_audit(proxy, audit_start, "upsert_item", item_link, rule)
    assert upsert["database"] == "shop"
    assert upsert["container"] == "orders"
    assert upsert["method"] == "POST"
    read = allowed_audit(proxy, audit_start, "read_item", item_link, rule)
    assert read["partition_key"] is not None and customer in str(read["partition_key"])
    assert read["activity_id"]
    assert float(read["request_charge"]) >= 0
    assert read["duration_ms"] >= 0
    allowed_audit(proxy, audit_start, "replace_item", item_link, rule)
    allowed_audit(proxy, audit_start, "patch_item", item_link, rule)
    allowed_audit(proxy, audit_start, "query_items", docs_feed, rule)
    allowed_audit(proxy, audit_start, "delete_item", f"{docs_feed}/docs/{removed_id}", rule)

    records = double.records()[double_start:]
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= {record["method"] for record in records}
    for record in records:
        assert record["verified"], record
        assert record["auth_type"] == "master", record
        assert record["jwt_locations"] == [], record
        assert token_fingerprint(token) not in record["jwt_sha256"]


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_both_key_types_accepted(proxy, certs, token_for, alg, audit_start):
    token = token_for("orders-app", alg=alg)
    results = run_client("python", proxy.url, [{"op": "read_account"}], certs.ca_file, token=token)

    assert results[0]["ok"], results
    allowed_audit(proxy, audit_start, "read_account", "", "test-apps-read-metadata")
