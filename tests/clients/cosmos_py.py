"""Run a list of Cosmos DB operations with the azure-cosmos Python SDK.

Usage:
    python -m clients.cosmos_py --endpoint URL --ca-file CA (--token JWT | --key KEY) < ops.json

The operations are a JSON array read from stdin (or --ops FILE). Each is an object with
an "op" name and its arguments, for example
    {"op": "read_item", "database": "shop", "container": "orders", "id": "o1",
     "partition_key": "c1"}
The script prints one JSON object per operation: {"op", "ok", "status", "substatus",
"error", "data"}. With --token the SDK sends the token as an Entra ID credential
(`type=aad&ver=1.0&sig=<token>`); with --key it signs each request with the master key.
Endpoint discovery stays on, as in an unmodified application.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.cosmos import CosmosClient, PartitionKey, exceptions

# How long the SDK may treat a token as valid. The proxy, not the SDK, decides whether the
# token itself is still valid, so expired test tokens are still sent.
TOKEN_LIFETIME_SECONDS = 3600


class StaticTokenCredential:
    """A TokenCredential that returns one fixed token for every scope."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.requested_scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requested_scopes.append(scopes)
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME_SECONDS)


def _container(client: CosmosClient, op: dict):
    return client.get_database_client(op["database"]).get_container_client(op["container"])


def _without_system_properties(item: dict) -> dict:
    return {key: value for key, value in item.items() if not key.startswith("_")}


ACCOUNT_OPERATIONS = frozenset(
    {"read_account", "list_databases", "create_database", "delete_database", "create_container", "delete_container"}
)


def run_account_operation(client: CosmosClient, op: dict) -> Any:
    """Run one account, database or container operation and return its result."""
    name = op["op"]
    if name == "read_account":
        account = client.get_database_account()
        return {
            "writable": [location["databaseAccountEndpoint"] for location in account.WritableLocations],
            "readable": [location["databaseAccountEndpoint"] for location in account.ReadableLocations],
        }
    if name == "list_databases":
        return sorted(database["id"] for database in client.list_databases())
    if name == "create_database":
        if op.get("if_not_exists"):
            database = client.create_database_if_not_exists(op["database"])
        else:
            database = client.create_database(op["database"])
        return {"id": database.id}
    if name == "delete_database":
        client.delete_database(op["database"])
        return None

    database = client.get_database_client(op["database"])
    if name == "create_container":
        partition_key = PartitionKey(path=op.get("partition_key_path", "/pk"))
        if op.get("if_not_exists"):
            container = database.create_container_if_not_exists(op["container"], partition_key)
        else:
            container = database.create_container(op["container"], partition_key)
        return {"id": container.id}
    database.delete_container(op["container"])
    return None


def run_item_operation(client: CosmosClient, op: dict) -> Any:
    """Run one item operation or query and return its result without system properties."""
    name = op["op"]
    container = _container(client, op)
    if name == "create_item":
        return _without_system_properties(container.create_item(op["item"]))
    if name == "upsert_item":
        return _without_system_properties(container.upsert_item(op["item"]))
    if name == "read_item":
        return _without_system_properties(container.read_item(op["id"], partition_key=op["partition_key"]))
    if name == "replace_item":
        return _without_system_properties(container.replace_item(op["id"], op["item"]))
    if name == "patch_item":
        patched = container.patch_item(op["id"], partition_key=op["partition_key"], patch_operations=op["operations"])
        return _without_system_properties(patched)
    if name == "delete_item":
        container.delete_item(op["id"], partition_key=op["partition_key"])
        return None
    if name == "query_items":
        query_options: dict[str, Any] = {"parameters": op.get("parameters") or []}
        if "partition_key" in op:
            query_options["partition_key"] = op["partition_key"]
        else:
            query_options["enable_cross_partition_query"] = True
        items = container.query_items(op["query"], **query_options)
        return [_without_system_properties(item) if isinstance(item, dict) else item for item in items]
    raise ValueError(f"unknown operation {name!r}")


def run_operation(client: CosmosClient, op: dict) -> Any:
    """Run one operation and return its JSON-serialisable result."""
    if op["op"] in ACCOUNT_OPERATIONS:
        return run_account_operation(client, op)
    return run_item_operation(client, op)


def run_operations(client: CosmosClient, ops: list[dict]) -> list[dict]:
    """Run every operation, recording failures instead of stopping at the first."""
    results = []
    for op in ops:
        result: dict[str, Any] = {"op": op["op"], "ok": False, "status": None, "substatus": None, "error": None, "data": None}
        try:
            result["data"] = run_operation(client, op)
            result["ok"] = True
        except exceptions.CosmosHttpResponseError as error:
            result["status"] = error.status_code
            result["substatus"] = error.sub_status
            result["error"] = error.message
        except Exception as error:  # Report any SDK failure as data; the test decides.
            result["error"] = f"{type(error).__name__}: {error}"
        results.append(result)
    return results


def build_client(endpoint: str, ca_file: str | None, token: str | None, key: str | None) -> CosmosClient:
    """Create a client that trusts `ca_file` and authenticates with a token or a key."""
    if ca_file:
        # requests reads the bundle for every HTTPS connection the SDK opens.
        os.environ["REQUESTS_CA_BUNDLE"] = ca_file
    credential: Any = StaticTokenCredential(token) if token else key
    options: dict[str, Any] = {
        "retry_total": 1,
        "retry_backoff_max": 1,
        "connection_timeout": 30,
    }
    if ca_file:
        options["connection_verify"] = ca_file
    return CosmosClient(endpoint, credential=credential, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Cosmos DB operations with the Python SDK")
    parser.add_argument("--endpoint", required=True, help="account or proxy URL")
    parser.add_argument("--ca-file", help="PEM CA file to verify the endpoint's TLS certificate")
    credential = parser.add_mutually_exclusive_group(required=True)
    credential.add_argument("--token", help="caller JWT, sent as an Entra ID credential")
    credential.add_argument("--key", help="account key, for master-key signing")
    parser.add_argument("--ops", help="JSON file with the operations (default: stdin)")
    args = parser.parse_args()

    if args.ops:
        with open(args.ops, encoding="utf-8") as file:
            ops = json.load(file)
    else:
        ops = json.load(sys.stdin)
    try:
        client = build_client(args.endpoint, args.ca_file, args.token, args.key)
    except exceptions.CosmosHttpResponseError as error:
        # The client reads the account when it is created, so an endpoint that rejects the
        # caller fails here. Report that failure for every operation.
        for op in ops:
            failure = {"op": op["op"], "ok": False, "status": error.status_code, "substatus": error.sub_status, "error": error.message, "data": None}
            print(json.dumps(failure, sort_keys=True), flush=True)
        return
    for result in run_operations(client, ops):
        print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
