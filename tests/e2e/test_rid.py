"""Requests that address a container by resource id (RID), as the .NET SDK does for
partition key ranges, are decided on the names the RIDs stand for, which the proxy learns
from the container read that precedes them."""

from __future__ import annotations

from support.proxy_client import request, wait_for_audit


def test_rid_addressed_request_decided_on_learnt_names(proxy, certs, token_for, orders, audit_start):
    token = token_for("orders-app")
    container = request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders", token=token)
    assert container.status == 200, container.body
    container_rid = container.json()["_rid"]
    database_rid = request(proxy.url, certs.ca_file, "GET", "/dbs/shop", token=token).json()["_rid"]

    path = f"/dbs/{database_rid}/colls/{container_rid}/pkranges"
    request(proxy.url, certs.ca_file, "GET", path, token=token)

    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("path") == path)
    assert lines, f"no audit line for {path}"
    line = lines[-1]
    assert line["decision"] == "allow", line
    assert line["resource"] == "dbs/shop/colls/orders", line
    assert line["database"] == "shop", line
    assert line["container"] == "orders", line


def test_unseen_rid_is_denied(proxy, certs, token_for, audit_start, double, double_start):
    path = "/dbs/ESIzAA==/colls/ESIzAMU-+yE=/pkranges"
    response = request(proxy.url, certs.ca_file, "GET", path, token=token_for("orders-app"))

    assert response.status == 403, response.body
    lines = wait_for_audit(proxy, audit_start, lambda line: line.get("path") == path)
    assert lines and lines[-1]["reason"] == "unresolved_resource_id", lines
    assert [record for record in double.records()[double_start:] if record.get("path") == path] == []
