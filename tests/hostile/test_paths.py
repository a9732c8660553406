"""Request paths that try to reach another resource than the one the policy decided on.

The policy grants the caller database `a` (and reads of database `colls`). Every spelling
below either names `a` or `colls` exactly, and is then allowed and forwarded with that
resource, or it is rejected and never reaches the account. Requests go over raw sockets,
so the proxy sees the bytes exactly as written here."""

from __future__ import annotations

import pytest

from hostile.conftest import assert_audited, assert_cosmos_error
from hostile.wire import build_request, exchange, host_of, parse_responses
from support.proxy_client import cosmos_headers


def send(proxy, certs, token, method: str, target: bytes | str, extra: list | None = None, body: bytes = b""):
    """Send one request with a valid token and return the parsed responses."""
    headers = list(cosmos_headers(token).items()) + (extra or []) + [("Connection", "close")]
    data = build_request(method, target, host_of(proxy.url), headers, body)
    return parse_responses(exchange(proxy.url, certs.ca_file, data))


def only_response(responses):
    assert len(responses) == 1, [(response.status, response.body[:100]) for response in responses]
    return responses[0]


# Spellings that the pipeline must reject as invalid (400 with an audit line), because the
# service would read them as another resource, or as nothing a policy can name.
INVALID_PATHS = {
    "encoded slash into b": "/dbs/a%2F..%2Fb/colls/c",
    "encoded slash lower case": "/dbs/a%2f..%2fb",
    "encoded dot segments": "/dbs/a/colls/%2e%2e/%2e%2e/b",
    "encoded dot segments upper case": "/dbs/a/%2E%2E/b",
    "plain dot-dot segment": "/dbs/a/../b",
    "plain dot segment": "/dbs/a/./colls/c",
    "dot-dot as the last segment": "/dbs/b/colls/c/docs/i/..",
    "encoded backslash": "/dbs/a%5C..%5Cb",
    "raw backslash": "/dbs/a\\..\\b",
    "encoded NUL": "/dbs/a%00/colls/c",
    "encoded CR LF": "/dbs/a%0D%0AHost:%20evil/colls/c",
    "encoded DEL": "/dbs/a%7F",
    "encoded question mark": "/dbs/a%3F/colls/c",
    "encoded hash": "/dbs/a%23/colls/c",
    "overlong UTF-8 dot": "/dbs/a/%C0%AE%C0%AE/b",
    "invalid UTF-8": "/dbs/%FF%FE",
    "truncated escape": "/dbs/a%2",
    "non-hex escape": "/dbs/a%zz",
    "upper-case database keyword": "/DBS/b",
    "mixed-case database keyword": "/Dbs/a",
    "mixed-case container keyword": "/dbs/a/Colls/c",
    "upper-case docs keyword": "/dbs/a/colls/c/DOCS/i",
    "unknown keyword": "/dbs/a/collections/c",
    "keyword in the id position only": "/dbs/colls/docs/c",
    "asterisk target": "*",
    "overlong path": "/dbs/a/colls/c/docs/" + "x" * 9000,
}


@pytest.mark.parametrize("case", sorted(INVALID_PATHS))
def test_invalid_spelling_rejected(any_proxy, certs, token, watch, case):
    target = INVALID_PATHS[case]
    observed = watch(any_proxy)
    response = only_response(send(any_proxy, certs, token, "GET", target))

    assert_cosmos_error(response.status, response.body, 400)
    line = assert_audited(observed, 400, "invalid", "invalid_request")
    assert line["error"], line
    observed.assert_nothing_forwarded()


# Spellings the parser in front of the pipeline (hyper's HTTP/1.1 request-line parser)
# rejects: raw control bytes are not valid in a request target.
UNPARSABLE_TARGETS = {
    "raw NUL": b"/dbs/a\x00/colls/c",
    "raw CR": b"/dbs/a\r/colls/c",
    "raw tab": b"/dbs/a\t/b",
    "raw escape byte": b"/dbs/a\x1b",
    "raw DEL": b"/dbs/a\x7f",
}


@pytest.mark.parametrize("case", sorted(UNPARSABLE_TARGETS))
def test_raw_control_byte_rejected(any_proxy, certs, token, watch, case):
    observed = watch(any_proxy)
    responses = send(any_proxy, certs, token, "GET", UNPARSABLE_TARGETS[case])

    # hyper returns 400 with an empty body, or closes the connection without a response.
    assert all(response.status == 400 for response in responses), [r.status for r in responses]
    observed.assert_nothing_forwarded()


# Spellings that name another database than `a` (or a resource in one): they classify,
# and the policy must deny them on the resource the account would act on.
DENIED_PATHS = {
    "double-encoded slash is part of the id": ("/dbs/a%252F..%252Fb", "dbs/a%2F..%2Fb"),
    "double-encoded dots are part of the id": ("/dbs/%252e%252e", "dbs/%2e%2e"),
    "encoded database keyword": ("/%64bs/b", "dbs/b"),
    "encoded database name": ("/dbs/%62/colls/c", "dbs/b/colls/c"),
    "doubled slashes": ("//dbs//b//colls//c", "dbs/b/colls/c"),
    "trailing slash": ("/dbs/b/", "dbs/b"),
    "prefix of an allowed name": ("/dbs/ab", "dbs/ab"),
    "allowed name with a suffix": ("/dbs/a%20", "dbs/a "),
    "plus is not a space": ("/dbs/a+b", "dbs/a+b"),
    "keyword-named database not granted": ("/dbs/docs", "dbs/docs"),
    "fragment names the allowed database": ("/dbs/b#/../a", "dbs/b"),
    "long id": ("/dbs/b/colls/c/docs/" + "i" * 300, "dbs/b/colls/c/docs/" + "i" * 300),
    "non-ASCII id": ("/dbs/%C3%A1", "dbs/\u00e1"),
}


@pytest.mark.parametrize("case", sorted(DENIED_PATHS))
def test_other_resource_denied(any_proxy, certs, token, watch, case):
    target, resource = DENIED_PATHS[case]
    observed = watch(any_proxy)
    response = only_response(send(any_proxy, certs, token, "GET", target))

    assert_cosmos_error(response.status, response.body, 403)
    line = assert_audited(observed, 403, "deny")
    assert line["resource"] == resource, line
    observed.assert_nothing_forwarded()


def test_absolute_form_target_uses_its_path(any_proxy, certs, token, watch):
    """An absolute-form request line names a host; the proxy decides on its path only and
    never sends the request anywhere but the configured account."""
    observed = watch(any_proxy)
    response = only_response(send(any_proxy, certs, token, "GET", "http://127.0.0.1:9/dbs/b"))

    assert_cosmos_error(response.status, response.body, 403)
    assert assert_audited(observed, 403, "deny")["resource"] == "dbs/b"
    observed.assert_nothing_forwarded()


# Spellings of resources the policy grants: they are allowed, and the account gets the
# request for exactly that resource (the double checks the signature over it). The last
# value is the status the stand-in returns: cosmosdb-server routes on the raw path, so it
# returns 400 "no route" for an escaped keyword, which the proxy forwards as sent. Empty
# segments are removed before forwarding.
ALLOWED_PATHS = {
    "plain": ("/dbs/a/colls/c/docs/i", "dbs/a/colls/c/docs/i", 200),
    "encoded database name": ("/dbs/%61/colls/c/docs/i", "dbs/a/colls/c/docs/i", 200),
    "encoded keyword": ("/dbs/a/%63olls/c/docs/i", "dbs/a/colls/c/docs/i", 400),
    "doubled and trailing slashes": ("//dbs/a//colls/c/docs/i/", "dbs/a/colls/c/docs/i", 200),
    "database named colls": ("/dbs/colls", "dbs/colls", 200),
    "container of the database named colls": ("/dbs/colls/colls/c", "dbs/colls/colls/c", 200),
}


@pytest.mark.parametrize("case", sorted(ALLOWED_PATHS))
def test_granted_spelling_reaches_that_resource(hostile_proxy, certs, token, watch, case):
    target, resource, status = ALLOWED_PATHS[case]
    observed = watch(hostile_proxy)
    headers = [("x-ms-documentdb-partitionkey", '["p1"]')] if "/docs/" in target else []
    response = only_response(send(hostile_proxy, certs, token, "GET", target, headers))

    assert response.status == status, (response.status, response.body[:300])
    lines = observed.audit(lambda line: line.get("status") == status)
    assert lines and lines[-1]["decision"] == "allow", lines
    assert lines[-1]["resource"] == resource, lines[-1]
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1, forwarded
    assert forwarded[0]["verified"] is True, forwarded[0]
    assert forwarded[0]["resource_link"] == resource, forwarded[0]


def test_empty_segments_never_forwarded(hostile_proxy, certs, token, watch):
    """The account gets the segments the policy decided on, whether or not it would
    collapse empty segments itself."""
    observed = watch(hostile_proxy)
    headers = [("x-ms-documentdb-partitionkey", '["p1"]')]
    response = only_response(send(hostile_proxy, certs, token, "GET", "//dbs/a//colls/c/docs/i/", headers))

    assert response.status == 200, (response.status, response.body[:300])
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1, forwarded
    assert forwarded[0]["path"] == "/dbs/a/colls/c/docs/i/", forwarded[0]


def test_query_string_rejected(hostile_proxy, certs, token, watch):
    """No Cosmos DB REST operation takes a query string, so one can only be an attempt
    to make the account read the request differently from the proxy."""
    observed = watch(hostile_proxy)
    response = only_response(send(hostile_proxy, certs, token, "GET", "/dbs/a/colls/c?x-ms-documentdb-isquery=True"))

    assert_cosmos_error(response.status, response.body, 400)
    observed.assert_nothing_forwarded()
