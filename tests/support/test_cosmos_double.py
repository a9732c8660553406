"""Tests of the signature-verifying upstream double: the published signing vectors, path
parsing, rejection of bad requests, and real SDK traffic through it."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import ssl
import urllib.parse
import uuid

import pytest

from support import stack
from support.cosmos_double import (
    EMULATOR_KEY,
    SignatureError,
    find_jwts,
    parse_authorization,
    resource_of_path,
    sign,
    token_fingerprint,
    verify_request,
)
from support.sdk import run_client

# Microsoft's REST documentation example for the master-key signature.
DOCS_KEY = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw=="
DOCS_DATE = "Thu, 27 Apr 2017 00:51:12 GMT"
DOCS_SIGNATURE = "c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c="
DOCS_HEADER = "type%3dmaster%26ver%3d1.0%26sig%3dc09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu%2bc%2bc%3d"


def http_date(moment: datetime.datetime) -> str:
    return email.utils.format_datetime(moment.astimezone(datetime.timezone.utc), usegmt=True)


def master_header(key: str, method: str, path: str, date: str) -> str:
    resource_type, resource_link = resource_of_path(path)
    signature = sign(key, method, resource_type, resource_link, date)
    return urllib.parse.quote(f"type=master&ver=1.0&sig={signature}", safe="")


def test_sign_matches_docs_vector():
    assert sign(DOCS_KEY, "GET", "dbs", "dbs/ToDoList", DOCS_DATE) == DOCS_SIGNATURE


def test_sign_matches_second_vector():
    key = "8F8xXXOptJxkblM1DBXW7a6NMI5oE8NnwPGYBmwxLCKfejOK7B7yhcCHMGvN3PBrlMLIOeol1Hv9RCdzAZR5sg=="
    signature = sign(key, "GET", "dbs", "dbs/MyDatabase/colls/MyCollection", "Mon, 01 Jan 1900 01:00:00 GMT")
    assert signature == "Qkz/r+1N2+PEnNijxGbGB/ADvLsLBQmZ7uBBMuIwf4I="


def test_parse_authorization_decodes_docs_header():
    fields = parse_authorization(DOCS_HEADER)
    assert fields == {"type": "master", "ver": "1.0", "sig": DOCS_SIGNATURE}


def test_verify_accepts_docs_vector():
    signed_at = email.utils.parsedate_to_datetime(DOCS_DATE)
    verify_request(DOCS_KEY, "GET", "/dbs/ToDoList", DOCS_HEADER, DOCS_DATE, signed_at)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("", "")),
        ("", ("", "")),
        ("/dbs", ("dbs", "")),
        ("/dbs/d", ("dbs", "dbs/d")),
        ("/dbs/d/colls/c/docs", ("docs", "dbs/d/colls/c")),
        ("/dbs/d/colls/c/docs/i", ("docs", "dbs/d/colls/c/docs/i")),
        ("/dbs/d/colls/c/pkranges", ("pkranges", "dbs/d/colls/c")),
        ("//dbs//d/", ("dbs", "dbs/d")),
        ("/dbs/docs/colls/colls", ("colls", "dbs/docs/colls/colls")),
        ("/dbs/d/colls/c/docs/%3D%3Dx", ("docs", "dbs/d/colls/c/docs/==x")),
        ("/dbs/d/colls/c/docs/a+b", ("docs", "dbs/d/colls/c/docs/a+b")),
        ("/dbs/d/colls/c/docs?x=1", ("docs", "dbs/d/colls/c")),
    ],
)
def test_resource_of_path(path, expected):
    assert resource_of_path(path) == expected


def test_verify_rejects_bad_requests():
    now = datetime.datetime.now(datetime.timezone.utc)
    date = http_date(now)
    path = "/dbs/shop/colls/orders/docs/o1"
    good = master_header(EMULATOR_KEY, "GET", path, date)
    verify_request(EMULATOR_KEY, "GET", path, good, date, now)

    other_key = "dsZQi3KtZmCv1ljt3VNWNm7sQUF1y5rJfC6kv5JiwvW0EndXdDku/dkKBp8/ufDToSxLzR4y+O/0H/t4bQtVNw=="
    stale = http_date(now - datetime.timedelta(minutes=16))
    future = http_date(now + datetime.timedelta(minutes=16))
    cases = {
        "missing header": (None, date, path, "GET"),
        "aad token": ("type=aad&ver=1.0&sig=eyJhbGciOi.eyJzdWIiOi.sig", date, path, "GET"),
        "wrong key": (master_header(other_key, "GET", path, date), date, path, "GET"),
        "wrong verb": (good, date, path, "DELETE"),
        "wrong path": (good, date, "/dbs/shop/colls/orders/docs/o2", "GET"),
        "missing date": (good, None, path, "GET"),
        "stale date": (master_header(EMULATOR_KEY, "GET", path, stale), stale, path, "GET"),
        "future date": (master_header(EMULATOR_KEY, "GET", path, future), future, path, "GET"),
        "not a date": (good, "yesterday", path, "GET"),
    }
    for case, (authorization, case_date, case_path, method) in cases.items():
        with pytest.raises(SignatureError):
            verify_request(EMULATOR_KEY, method, case_path, authorization, case_date, now)
            pytest.fail(f"case {case!r} verified")


def test_find_jwts_reports_tokens():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcmRlcnMtYXBwIn0.c2lnbmF0dXJl"
    assert find_jwts(f"type=aad&ver=1.0&sig={token}".encode()) == [token_fingerprint(token)]
    assert find_jwts(b"type=master&ver=1.0&sig=c09PEVJrgp2uQRkr934kFbTqhByc7TVr3OHyqlu+c+c=") == []


def raw_request(double: stack.CosmosDouble, certs, method: str, path: str, headers: dict, body: bytes = b""):
    parsed = urllib.parse.urlsplit(double.url)
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    connection = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_double_rejects_unsigned_create(double, certs, cosmos_server):
    database = f"unsigned-{uuid.uuid4().hex[:8]}"
    date = http_date(datetime.datetime.now(datetime.timezone.utc))
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcmRlcnMtYXBwIn0.c2lnbmF0dXJl"
    headers = {
        "authorization": f"type=aad&ver=1.0&sig={token}",
        "x-ms-date": date,
        "x-ms-version": "2018-12-31",
        "content-type": "application/json",
    }
    before = len(double.records())
    status, body = raw_request(double, certs, "POST", "/dbs", headers, json.dumps({"id": database}).encode())

    assert status == 401
    assert json.loads(body)["code"] == "Unauthorized"
    new_records = double.records()[before:]
    assert len(new_records) == 1
    assert new_records[0]["verified"] is False
    assert new_records[0]["forwarded"] is False
    assert new_records[0]["auth_type"] == "aad"
    assert new_records[0]["jwt_locations"] == ["header:authorization"]
    assert new_records[0]["jwt_sha256"] == [token_fingerprint(token)]

    listing = run_client("python", cosmos_server.url, [{"op": "list_databases"}], certs.ca_file, key=EMULATOR_KEY)
    assert listing[0]["ok"], listing
    assert database not in listing[0]["data"]


def test_double_forwards_signed_request(double, certs):
    date = http_date(datetime.datetime.now(datetime.timezone.utc))
    headers = {
        "authorization": master_header(EMULATOR_KEY, "GET", "/dbs", date),
        "x-ms-date": date,
        "x-ms-version": "2018-12-31",
    }
    before = len(double.records())
    status, body = raw_request(double, certs, "GET", "/dbs", headers)

    assert status == 200
    assert "Databases" in json.loads(body)
    new_records = double.records()[before:]
    assert [(record["verified"], record["forwarded"], record["status"]) for record in new_records] == [(True, True, 200)]


SDK_OPERATIONS = [
    {"op": "read_account"},
    {"op": "create_database", "database": "double-check", "if_not_exists": True},
    {"op": "create_container", "database": "double-check", "container": "items", "partition_key_path": "/pk", "if_not_exists": True},
    {"op": "upsert_item", "database": "double-check", "container": "items", "item": {"id": "a", "pk": "p1", "n": 1}},
    {"op": "read_item", "database": "double-check", "container": "items", "id": "a", "partition_key": "p1"},
    {"op": "replace_item", "database": "double-check", "container": "items", "id": "a", "partition_key": "p1", "item": {"id": "a", "pk": "p1", "n": 2}},
    {"op": "patch_item", "database": "double-check", "container": "items", "id": "a", "partition_key": "p1", "operations": [{"op": "set", "path": "/n", "value": 3}]},
    {"op": "query_items", "database": "double-check", "container": "items", "query": "SELECT * FROM c WHERE c.pk = 'p1'", "partition_key": "p1"},
    {"op": "query_items", "database": "double-check", "container": "items", "query": "SELECT * FROM c ORDER BY c.n"},
    {"op": "delete_item", "database": "double-check", "container": "items", "id": "a", "partition_key": "p1"},
]


@pytest.mark.parametrize("sdk", ["python", "node"])
def test_double_verifies_sdk_signatures(sdk, processes, certs, cosmos_server, run_dir):
    """Both SDKs sign with the master key when given it, and the double verifies every
    request. The double listens on 127.0.0.2 so the Python SDK verifies TLS too."""
    record_path = run_dir / f"double-sdk-{sdk}.jsonl"
    sdk_double = stack.start_cosmos_double(
        processes, certs, cosmos_server.url, record_path, host="127.0.0.2", advertise_self=True, name=f"double-{sdk}"
    )
    try:
        results = run_client(sdk, sdk_double.url, SDK_OPERATIONS, certs.ca_file, key=EMULATOR_KEY)
    finally:
        processes.stop(sdk_double.process)

    for op, result in zip(SDK_OPERATIONS, results):
        assert result["ok"], (op, result)
    assert results[0]["data"]["writable"] == [f"{sdk_double.url}/"]
    assert results[4]["data"] == {"id": "a", "pk": "p1", "n": 1}
    assert results[6]["data"]["n"] == 3

    records = stack.read_records(record_path)
    methods = {record["method"] for record in records}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    unverified = [(r["method"], r["path"], r["reason"]) for r in records if not r["verified"]]
    assert unverified == []
    assert all(record["auth_type"] == "master" for record in records)
    assert all(record["jwt_locations"] == [] for record in records)
