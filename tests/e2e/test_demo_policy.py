"""The demo policy in deploy/demo/policy.toml gives the outcomes the demo promises."""

from __future__ import annotations

import uuid

import pytest

from e2e.conftest import start_test_proxy
from support.proxy_client import subject_of, wait_for_audit
from support.sdk import run_client
from support.stack import REPO_DIR

DEMO_POLICY = REPO_DIR / "deploy" / "demo" / "policy.toml"
ORDERS = {"database": "shop", "container": "orders"}


@pytest.fixture(scope="module")
def demo_proxy(processes, certs, run_dir, double, oidc, shop):
    assert DEMO_POLICY.exists(), f"{DEMO_POLICY} is missing"
    return start_test_proxy(processes, certs, run_dir, "cosmoguard-demo-policy", double.url, oidc.issuer, policy_file=DEMO_POLICY)


@pytest.mark.parametrize("sdk", ["python", "node"])
def test_demo_outcomes(demo_proxy, certs, token_for, sdk, orders):
    customer = f"demo-{sdk}-{uuid.uuid4().hex[:6]}"
    order = {"id": f"order-{uuid.uuid4().hex[:6]}", "customerId": customer, "total": 30}

    app = run_client(
        sdk,
        demo_proxy.url,
        [
            {"op": "upsert_item", **ORDERS, "item": order},
            {"op": "read_item", **ORDERS, "id": order["id"], "partition_key": customer},
        ],
        certs.ca_file,
        token=token_for("orders-app"),
    )
    assert [result["ok"] for result in app] == [True, True], app
    assert app[1]["data"] == order

    write = [{"op": "upsert_item", **ORDERS, "item": {**order, "total": 0}}]
    read = [{"op": "read_item", **ORDERS, "id": order["id"], "partition_key": customer}]
    for subject in ("reporting", "support-agent"):
        audit_start = len(demo_proxy.audit_lines())
        results = run_client(sdk, demo_proxy.url, read + write, certs.ca_file, token=token_for(subject))
        assert results[0]["ok"], (subject, results[0])
        assert results[1]["status"] == 403, (subject, results[1])
        denied = wait_for_audit(
            demo_proxy,
            audit_start,
            lambda line: line.get("operation") == "upsert_item" and subject_of(line) == subject,
        )
        assert denied, f"no audit line for the {subject} upsert"
        assert denied[-1]["decision"] == "deny", denied[-1]
    assert orders.read_item(order["id"], customer)["total"] == 30
