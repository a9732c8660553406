"""Bodies the proxy must read before it decides: transactional batches that are too
large, malformed or aimed at another partition than their header names."""

from __future__ import annotations

import json

import pytest

from hostile.conftest import AUDIENCE, assert_audited, assert_cosmos_error
from hostile.wire import build_request, exchange, host_of, parse_responses
from support.proxy_client import cosmos_headers

BATCH_PATH = "/dbs/b/colls/c/docs"


@pytest.fixture(scope="module")
def partition_token(oidc) -> str:
    """A caller that the policy lets write partition p1 of database b only."""
    return oidc.mint({"sub": "partition-app", "aud": AUDIENCE})


def batch_headers(token: str, partition_key: str = '["p1"]') -> list[tuple[str, str]]:
    return list(cosmos_headers(token).items()) + [
        ("Content-Type", "application/json"),
        ("x-ms-cosmos-is-batch-request", "True"),
        ("x-ms-cosmos-batch-atomic", "True"),
        ("x-ms-documentdb-partitionkey", partition_key),
        ("Connection", "close"),
    ]


def send_batch(proxy, certs, token: str, body: bytes, path: str = BATCH_PATH, partition_key: str = '["p1"]'):
    data = build_request("POST", path, host_of(proxy.url), batch_headers(token, partition_key), body)
    return parse_responses(exchange(proxy.url, certs.ca_file, data))


def upsert(item_id: str, partition_key: str | None = None) -> dict:
    operation = {"operationType": "Upsert", "resourceBody": {"id": item_id, "pk": "p1"}}
    if partition_key is not None:
        operation["partitionKey"] = partition_key
    return operation


def assert_invalid(proxy, certs, watch, token, body: bytes, status: int = 400, reason: str = "invalid_request", **options):
    observed = watch(proxy)
    responses = send_batch(proxy, certs, token, body, **options)

    assert len(responses) == 1, [response.status for response in responses]
    assert_cosmos_error(responses[0].status, responses[0].body, status)
    assert_audited(observed, status, "invalid", reason)
    observed.assert_nothing_forwarded()


def test_batch_of_hundreds_rejected(any_proxy, certs, watch, partition_token):
    body = json.dumps([upsert(f"item-{index}") for index in range(500)]).encode()
    assert_invalid(any_proxy, certs, watch, partition_token, body)


def test_batch_for_another_partition_denied(any_proxy, certs, watch, partition_token):
    """The header names the caller's partition, one operation names another: each
    operation is decided on its own partition key."""
    body = json.dumps([upsert("mine"), upsert("theirs", '["p2"]')]).encode()
    observed = watch(any_proxy)
    responses = send_batch(any_proxy, certs, partition_token, body)

    assert_cosmos_error(responses[0].status, responses[0].body, 403)
    assert_audited(observed, 403, "deny")
    observed.assert_nothing_forwarded()


def test_batch_header_for_another_partition_denied(any_proxy, certs, watch, partition_token):
    body = json.dumps([upsert("theirs")]).encode()
    observed = watch(any_proxy)
    responses = send_batch(any_proxy, certs, partition_token, body, partition_key='["p2"]')

    assert_cosmos_error(responses[0].status, responses[0].body, 403)
    assert_audited(observed, 403, "deny")
    observed.assert_nothing_forwarded()


def test_batch_in_own_partition_forwarded(hostile_proxy, certs, watch, partition_token):
    """The control case: the same batch with every operation in p1 is allowed and sent."""
    body = json.dumps([upsert("mine-1"), upsert("mine-2", '["p1"]')]).encode()
    observed = watch(hostile_proxy)
    send_batch(hostile_proxy, certs, partition_token, body)

    lines = observed.audit(lambda line: line.get("path") == BATCH_PATH)
    assert lines and lines[-1]["decision"] == "allow", lines
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1, forwarded
    assert forwarded[0]["verified"], forwarded[0]


@pytest.mark.parametrize(
    "case, body",
    [
        ("truncated JSON", b'[{"operationType": "Upsert", "resourceBody": {"id": "x"'),
        ("not JSON", b"\x00\x01\x02 not json"),
        ("object instead of array", b'{"operationType": "Upsert"}'),
        ("empty array", b"[]"),
        ("empty body", b""),
        ("unknown operation type", b'[{"operationType": "DropDatabase"}]'),
        ("operation type of wrong type", b'[{"operationType": 7}]'),
        ("partition key not JSON", b'[{"operationType": "Read", "id": "x", "partitionKey": "p1"}]'),
        ("deeply nested resource body", b'[{"operationType": "Upsert", "resourceBody": ' + b"[" * 100000 + b"]" * 100000 + b"}]"),
        ("invalid UTF-8 in a string", b'[{"operationType": "Upsert", "resourceBody": {"id": "\xff"}}]'),
    ],
)
def test_invalid_batch_body_rejected(any_proxy, certs, watch, partition_token, case, body):
    assert_invalid(any_proxy, certs, watch, partition_token, body)


def test_oversized_batch_body_rejected(hostile_proxy, certs, watch, partition_token):
    body = json.dumps([{"operationType": "Upsert", "resourceBody": {"id": "big", "pk": "p1", "pad": "p" * (5 * 1024 * 1024)}}]).encode()
    assert_invalid(hostile_proxy, certs, watch, partition_token, body, status=413, reason="body_too_large")


def test_batch_header_on_container_feed_rejected(any_proxy, certs, watch, partition_token):
    body = json.dumps([upsert("x")]).encode()
    assert_invalid(any_proxy, certs, watch, partition_token, body, path="/dbs/b/colls")


@pytest.mark.parametrize(
    "flags",
    [
        [("x-ms-documentdb-isquery", "True"), ("x-ms-documentdb-is-upsert", "True")],
        [("x-ms-documentdb-is-upsert", "True"), ("x-ms-documentdb-is-upsert", "False")],
        [("x-ms-documentdb-is-upsert", "yes")],
    ],
    ids=["query and upsert", "upsert twice", "upsert not boolean"],
)
def test_ambiguous_post_rejected(any_proxy, certs, watch, token, flags):
    """A POST whose headers the account could read as another operation than the proxy."""
    observed = watch(any_proxy)
    headers = list(cosmos_headers(token).items()) + [("Content-Type", "application/json"), ("Connection", "close")] + flags
    data = build_request("POST", "/dbs/a/colls/c/docs", host_of(any_proxy.url), headers, b'{"id": "x", "pk": "p1"}')
    responses = parse_responses(exchange(any_proxy.url, certs.ca_file, data))

    assert_cosmos_error(responses[0].status, responses[0].body, 400)
    assert_audited(observed, 400, "invalid", "invalid_request")
    observed.assert_nothing_forwarded()
