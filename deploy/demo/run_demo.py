"""Drive the Cosmoguard demo: run the Python and Node SDKs through the proxy as four
identities, print what was allowed and denied, and print the proxy's audit lines.

deploy/demo.sh starts the processes and runs this script with tests/.venv's Python and
tests/ on PYTHONPATH. Exits with status 1 when an outcome differs from the expected one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from support.sdk import run_client
from support.stack import OidcProvider

AUDIENCE = "api://cosmoguard"
ORDERS = {"database": "shop", "container": "orders"}
TENANTS = {"database": "shop", "container": "tenants"}
# The tenant application's token carries this tenant id; the policy confines it to the
# partition key equal to its `tid` claim.
TENANT_ID = "contoso"


def scenario(run_id: str) -> list[tuple[str, str, dict, bool]]:
    """Return the demo's calls as (SDK, identity, operation, expected to be allowed)."""
    first = {"id": f"order-{run_id}-1", "customerId": "alice", "total": 25}
    second = {"id": f"order-{run_id}-2", "customerId": "bob", "total": 40}
    by_customer = {
        "query": "SELECT * FROM c WHERE c.customerId = @customer",
        "parameters": [{"name": "@customer", "value": "alice"}],
        "partition_key": "alice",
    }
    return [
        ("python", "orders-app", {"op": "upsert_item", **ORDERS, "item": first}, True),
        ("python", "orders-app", {"op": "read_item", **ORDERS, "id": first["id"], "partition_key": "alice"}, True),
        ("python", "orders-app", {"op": "query_items", **ORDERS, **by_customer}, True),
        ("node", "orders-app", {"op": "upsert_item", **ORDERS, "item": second}, True),
        (
            "node",
            "orders-app",
            {"op": "patch_item", **ORDERS, "id": second["id"], "partition_key": "bob", "operations": [{"op": "set", "path": "/status", "value": "shipped"}]},
            True,
        ),
        ("python", "reporting", {"op": "read_item", **ORDERS, "id": second["id"], "partition_key": "bob"}, True),
        ("python", "reporting", {"op": "upsert_item", **ORDERS, "item": {**first, "total": 0}}, False),
        ("node", "support-agent", {"op": "query_items", **ORDERS, **by_customer}, True),
        ("node", "support-agent", {"op": "upsert_item", **ORDERS, "item": {**second, "total": 0}}, False),
        ("python", "tenant-app", {"op": "upsert_item", **TENANTS, "item": {"id": f"settings-{run_id}", "tenantId": TENANT_ID, "plan": "gold"}}, True),
        (
            "python",
            "tenant-app",
            {
                "op": "query_items",
                **TENANTS,
                "query": "SELECT * FROM c WHERE c.tenantId = @tenant",
                "parameters": [{"name": "@tenant", "value": TENANT_ID}],
                "partition_key": TENANT_ID,
            },
            True,
        ),
        ("node", "tenant-app", {"op": "upsert_item", **TENANTS, "item": {"id": f"settings-{run_id}", "tenantId": "fabrikam", "plan": "free"}}, False),
    ]


def describe(op: dict) -> str:
    target = op.get("id") or op.get("item", {}).get("id") or ""
    return f"{op['op']} {target}".strip()


def print_table(rows: list[list[str]]) -> None:
    header = ["SDK", "identity", "operation", "outcome", "status", "expected"]
    widths = [max(len(str(row[index])) for row in [header, *rows]) for index in range(len(header))]
    for row in [header, ["-" * width for width in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy-url", required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--issuer", required=True, help="URL of the OIDC provider")
    parser.add_argument("--mint-url", required=True, help="URL of the provider's token-minting control listener")
    parser.add_argument("--audit", type=Path, required=True, help="the proxy's audit file")
    args = parser.parse_args()

    provider = OidcProvider(issuer=args.issuer, control_url=args.mint_url, process=None)
    tokens = {
        subject: provider.mint({"sub": subject, "aud": AUDIENCE, "name": subject})
        for subject in ("orders-app", "reporting", "support-agent")
    }
    tokens["tenant-app"] = provider.mint({"sub": "tenant-app", "aud": AUDIENCE, "name": "tenant-app", "tid": TENANT_ID})

    rows = []
    unexpected = 0
    for sdk, subject, op, expect_allowed in scenario(uuid.uuid4().hex[:6]):
        result = run_client(sdk, args.proxy_url, [op], args.ca_file, token=tokens[subject])[0]
        if result["ok"]:
            outcome = "allowed"
        elif result["status"] == 403:
            outcome = "denied"
        else:
            outcome = "failed"
        expected = "allowed" if expect_allowed else "denied"
        if outcome != expected:
            unexpected += 1
        status = "ok" if result["ok"] else str(result["status"])
        rows.append([sdk, subject, describe(op), outcome, status, expected])

    print("\nWhat each identity could do through the proxy:\n")
    print_table(rows)

    # The proxy writes an audit line when a response ends; give the last ones a moment.
    time.sleep(1)
    print(f"\nAudit lines of these calls ({args.audit}):\n")
    with args.audit.open(encoding="utf-8") as file:
        for line in file:
            record = json.loads(line)
            principal = record.get("principal") or {}
            summary = {
                "time": record.get("time"),
                "subject": principal.get("subject"),
                "operation": record.get("operation"),
                "resource": record.get("resource"),
                "decision": record.get("decision"),
                "rule": record.get("rule"),
                "status": record.get("status"),
            }
            print(json.dumps(summary))

    if unexpected:
        print(f"\n{unexpected} call(s) did not have the expected outcome", file=sys.stderr)
        return 1
    print("\nEvery call had the expected outcome.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
