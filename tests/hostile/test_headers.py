"""Hostile headers and framing: repeated or misplaced credentials, CR and LF where they do
not belong, oversized headers, request smuggling, HTTP/2 pseudo-header tricks and a
foreign Host. Requests go over raw sockets (HTTP/1.1) or `h2` with its checks off."""

from __future__ import annotations

import urllib.parse

import pytest

from hostile.conftest import assert_audited, assert_cosmos_error
from hostile.h2wire import send_h2
from hostile.wire import build_request, exchange, host_of, parse_responses
from support.proxy_client import cosmos_headers

ALLOWED_PATH = "/dbs/a/colls/c"
DENIED_PATH = "/dbs/b/colls/c"


def base_headers(token: str | None) -> list[tuple[str, str]]:
    return list(cosmos_headers(token).items())


def raw(proxy, certs, data: bytes):
    return parse_responses(exchange(proxy.url, certs.ca_file, data))


def request_bytes(proxy, method: str, path: str, headers, body: bytes = b"") -> bytes:
    return build_request(method, path, host_of(proxy.url), list(headers) + [("Connection", "close")], body)


# Credentials


def test_two_authorization_headers_rejected(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    headers = base_headers(token) + [("Authorization", f"Bearer {token}")]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert len(responses) == 1
    assert_cosmos_error(responses[0].status, responses[0].body, 401)
    assert "invalid_token" in responses[0].headers.get("www-authenticate", "")
    assert_audited(observed, 401, "unauthenticated", "duplicate_header")
    observed.assert_nothing_forwarded()


def test_authorization_differing_in_case_is_one_header_twice(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    headers = base_headers(None) + [("authorization", f"Bearer {token}"), ("AUTHORIZATION", "Bearer x.y.z")]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert_cosmos_error(responses[0].status, responses[0].body, 401)
    assert_audited(observed, 401, "unauthenticated", "duplicate_header")
    observed.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "name, template",
    [
        ("Proxy-Authorization", "Bearer {token}"),
        ("X-Ms-Authorization", "type=aad&ver=1.0&sig={token}"),
        ("Cookie", "access_token={token}"),
        ("Authorization ", "Bearer {token}"),
    ],
)
def test_token_outside_authorization_not_accepted(any_proxy, certs, token, watch, name, template):
    """Only the Authorization header carries the caller's token. (A header name with a
    trailing space is invalid in HTTP/1.1, so hyper rejects that request with 400.)"""
    observed = watch(any_proxy)
    headers = base_headers(None) + [(name, template.format(token=token))]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert len(responses) == 1
    if name.endswith(" "):
        assert responses[0].status == 400
    else:
        assert_cosmos_error(responses[0].status, responses[0].body, 401)
        assert_audited(observed, 401, "unauthenticated", "missing")
    observed.assert_nothing_forwarded()


def test_token_in_query_not_accepted(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", f"{ALLOWED_PATH}?sig={token}", base_headers(None)))

    assert_cosmos_error(responses[0].status, responses[0].body, 401)
    assert_audited(observed, 401, "unauthenticated", "missing")
    observed.assert_nothing_forwarded()


@pytest.mark.parametrize(
    "authorization",
    ["Bearer {token}", "bearer {token}", "BEARER  {token}", "type=aad&ver=1.0&sig={token}",
     "type%3Daad%26ver%3D1.0%26sig%3D{token}"],
)
def test_second_copy_of_token_rejected(hostile_proxy, certs, token, watch, authorization):
    """A caller (or a misconfigured client library) that also sends its token in another
    header is rejected before the account: the proxy never forwards a caller's token, and
    it forwards every header but Authorization and the hop-by-hop ones. Every spelling of
    Authorization that authenticates is checked."""
    observed = watch(hostile_proxy)
    headers = [(name, value) for name, value in base_headers(None)]
    headers += [("Authorization", authorization.format(token=token)), ("X-Forwarded-Access-Token", token)]
    responses = raw(hostile_proxy, certs, request_bytes(hostile_proxy, "GET", ALLOWED_PATH, headers))

    body = assert_cosmos_error(responses[0].status, responses[0].body, 400)
    assert "x-forwarded-access-token" in body["message"], body
    assert_audited(observed, 400, "invalid", path=ALLOWED_PATH)
    observed.assert_nothing_forwarded()


def test_authorization_never_forwarded(hostile_proxy, certs, token, watch):
    observed = watch(hostile_proxy)
    responses = raw(hostile_proxy, certs, request_bytes(hostile_proxy, "GET", ALLOWED_PATH, base_headers(token)))

    assert responses[0].status == 200, responses[0].body[:200]
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1
    assert forwarded[0]["auth_type"] == "master"
    assert forwarded[0]["jwt_locations"] == []


# Headers the Connection header names


QUERY_HEADERS = [("Content-Type", "application/query+json"), ("x-ms-documentdb-isquery", "True")]


@pytest.mark.parametrize(
    "listed, operation",
    [
        ("content-type, x-ms-documentdb-isquery", "create_item"),
        ("x-ms-documentdb-isquery", "query_items"),
        ("Content-Type", "query_items"),
    ],
)
def test_connection_cannot_strip_decided_headers(hostile_proxy, certs, token, watch, listed, operation):
    """A header the Connection header names is hop-by-hop and never reaches the account. It
    is dropped before the request is classified, so the request is decided as what the
    account receives: without both query headers a POST is a create, and with either one
    it is a query, forwarded with both."""
    observed = watch(hostile_proxy)
    headers = [*base_headers(token), *QUERY_HEADERS, ("x-ms-documentdb-partitionkey", '["p"]'),
               ("Connection", f"close, {listed}")]
    body = b'{"query": "SELECT * FROM c", "id": "made-by-a-query", "pk": "p"}'
    request = build_request("POST", f"{ALLOWED_PATH}/docs", host_of(hostile_proxy.url), headers, body)
    responses = raw(hostile_proxy, certs, request)

    assert responses, "no response"
    line = observed.audit(lambda line: line.get("path") == f"{ALLOWED_PATH}/docs")[-1]
    assert line["operation"] == operation, line
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1, forwarded
    sent = forwarded[0]["headers"]
    if operation == "query_items":
        assert sent.get("x-ms-documentdb-isquery") == "True", sent
        assert sent.get("content-type") == "application/query+json", sent
    else:
        assert "x-ms-documentdb-isquery" not in sent, sent
        assert sent.get("content-type") != "application/query+json", sent


def test_connection_naming_authorization_leaves_no_token(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    headers = [*base_headers(token), ("Connection", "close, authorization")]
    responses = raw(any_proxy, certs, build_request("GET", ALLOWED_PATH, host_of(any_proxy.url), headers))

    assert_cosmos_error(responses[0].status, responses[0].body, 401)
    observed.assert_nothing_forwarded()


# CR, LF and NUL in header lines


@pytest.mark.parametrize(
    "case, line",
    [
        ("obsolete line folding", b"X-Folded: a\r\n b"),
        ("bare CR inside a value", b"X-Value: a\rAuthorization: Bearer x"),
        ("NUL inside a value", b"X-Value: a\x00b"),
        ("space before the colon", b"X-Value : a"),
        ("no colon", b"X-Value a"),
    ],
)
def test_malformed_header_line_rejected(any_proxy, certs, token, watch, case, line):
    observed = watch(any_proxy)
    head = request_bytes(any_proxy, "GET", ALLOWED_PATH, base_headers(token))
    data = head.replace(b"\r\nConnection: close", b"\r\n" + line + b"\r\nConnection: close", 1)
    responses = raw(any_proxy, certs, data)

    assert [response.status for response in responses] in ([400], []), (case, responses)
    observed.assert_nothing_forwarded()


def test_bare_lf_cannot_inject_a_second_authorization(any_proxy, certs, token, watch):
    """A bare LF ends a header line for hyper (RFC 9112 allows it), so the injected line is
    a second Authorization header and the request is rejected as such."""
    observed = watch(any_proxy)
    head = request_bytes(any_proxy, "GET", DENIED_PATH, base_headers(token))
    data = head.replace(b"\r\nConnection: close", b"\r\nX-Value: a\nAuthorization: Bearer forged\r\nConnection: close", 1)
    responses = raw(any_proxy, certs, data)

    assert [response.status for response in responses] in ([400], [401]), responses
    observed.assert_nothing_forwarded()


def test_encoded_crlf_in_dotnet_credential_rejected(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    credential = urllib.parse.quote(f"type=aad&ver=1.0&sig={token}", safe="") + "%0D%0AX-Injected%3A%20y"
    headers = base_headers(None) + [("Authorization", credential)]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert_cosmos_error(responses[0].status, responses[0].body, 401)
    assert_audited(observed, 401, "unauthenticated")
    observed.assert_nothing_forwarded()


# Sizes


def test_header_over_pipeline_limit_gets_audited_431(any_proxy, certs, token, watch):
    """70 KiB: above the 64 KiB default limit, below hyper's own buffer, so the pipeline
    returns a JSON body and an audit line."""
    observed = watch(any_proxy)
    headers = base_headers(token) + [("X-Padding", "p" * (70 * 1024))]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert len(responses) == 1
    assert_cosmos_error(responses[0].status, responses[0].body, 431)
    assert_audited(observed, 431, "invalid", "headers_too_large")
    observed.assert_nothing_forwarded()


def test_header_count_over_limit_audited(any_proxy, certs, token, watch):
    """110 headers: above the pipeline's 100, below hyper's own limit, so the pipeline
    returns a JSON body and an audit line."""
    observed = watch(any_proxy)
    headers = base_headers(token) + [(f"X-Many-{index}", "v") for index in range(110)]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert len(responses) == 1
    assert_cosmos_error(responses[0].status, responses[0].body, 431)
    assert_audited(observed, 431, "invalid", "headers_too_large")
    observed.assert_nothing_forwarded()


def test_too_many_headers_rejected(any_proxy, certs, token, watch):
    observed = watch(any_proxy)
    headers = base_headers(token) + [(f"X-Many-{index}", "v") for index in range(200)]
    responses = raw(any_proxy, certs, request_bytes(any_proxy, "GET", ALLOWED_PATH, headers))

    assert [response.status for response in responses] == [431], [r.status for r in responses]
    observed.assert_nothing_forwarded()


# Request smuggling: a second request hidden in the first one's body must never be
# parsed as a request, by the proxy or by the account behind it.


def smuggled_request(proxy, token) -> bytes:
    return build_request("GET", DENIED_PATH, host_of(proxy.url), base_headers(token), content_length=False)


@pytest.mark.parametrize(
    "case, framing",
    [
        ("chunked and length", [("Content-Length", "{length}"), ("Transfer-Encoding", "chunked")]),
        ("length and chunked", [("Transfer-Encoding", "chunked"), ("Content-Length", "{length}")]),
        ("chunked listed after identity", [("Content-Length", "{length}"), ("Transfer-Encoding", "identity, chunked")]),
        ("obfuscated chunked", [("Content-Length", "{length}"), ("Transfer-Encoding", "xchunked")]),
        ("chunked with a space before the colon", [("Content-Length", "{length}"), ("Transfer-Encoding ", "chunked")]),
        ("two different lengths", [("Content-Length", "5"), ("Content-Length", "{length}")]),
        ("length list", [("Content-Length", "5, {length}")]),
    ],
)
def test_smuggled_request_never_reaches_account(any_proxy, certs, token, watch, case, framing):
    observed = watch(any_proxy)
    hidden = smuggled_request(any_proxy, token)
    body = b"0\r\n\r\n" + hidden
    headers = base_headers(token) + [
        ("Content-Type", "application/json"),
        ("x-ms-documentdb-partitionkey", '["p1"]'),
    ]
    headers += [(name, value.format(length=len(body))) for name, value in framing]
    data = build_request("POST", f"{ALLOWED_PATH}/docs", host_of(any_proxy.url), headers, body, content_length=False)
    responses = raw(any_proxy, certs, data)

    statuses = [response.status for response in responses]
    # At most one response: a second one would be the reply to the hidden request.
    assert len(responses) <= 1, (case, statuses)
    assert all(status != 200 for status in statuses), (case, statuses)
    links = [record["resource_link"] for record in observed.forwarded()]
    assert not any(link.startswith("dbs/b") for link in links), (case, links)
    # The hidden request would have been audited by the time its response was read.
    hidden_lines = [line for line in observed.proxy.audit_lines()[observed.audit_start :] if line.get("path") == DENIED_PATH]
    assert hidden_lines == [], (case, hidden_lines)


def test_pipelined_requests_each_decided(any_proxy, certs, token, watch):
    """Two requests back to back on one connection (a legitimate HTTP/1.1 pipeline): the
    second is decided on its own and denied."""
    observed = watch(any_proxy)
    first = build_request("GET", ALLOWED_PATH, host_of(any_proxy.url), base_headers(token))
    second = request_bytes(any_proxy, "GET", DENIED_PATH, base_headers(token))
    responses = raw(any_proxy, certs, first + second)

    assert [response.status for response in responses] == [200, 403]
    links = [record["resource_link"] for record in observed.wait_forwarded(1)]
    assert links == ["dbs/a/colls/c"], links


# HTTP/2 pseudo-headers


def h2_request(proxy, path: str, token: str, extra: list[tuple[str, str]] | None = None, authority: str | None = None):
    headers = [
        (":method", "GET"),
        (":scheme", urllib.parse.urlsplit(proxy.url).scheme),
        (":authority", authority or host_of(proxy.url)),
        (":path", path),
    ]
    return headers + [(name.lower(), value) for name, value in base_headers(token)] + (extra or [])


def test_h2_plain_request_allowed(any_proxy, certs, token, watch):
    """The control case: a well-formed HTTP/2 request for the granted resource passes."""
    observed = watch(any_proxy)
    outcome = send_h2(any_proxy.url, certs.ca_file, h2_request(any_proxy, ALLOWED_PATH, token))

    assert outcome.status == 200, outcome
    assert [record["resource_link"] for record in observed.wait_forwarded(1)] == ["dbs/a/colls/c"]


H2_MALFORMED = {
    "duplicate path, allowed first": lambda proxy, token: h2_request(proxy, ALLOWED_PATH, token)[:4]
    + [(":path", DENIED_PATH)]
    + h2_request(proxy, ALLOWED_PATH, token)[4:],
    "duplicate path, denied first": lambda proxy, token: h2_request(proxy, DENIED_PATH, token)[:4]
    + [(":path", ALLOWED_PATH)]
    + h2_request(proxy, DENIED_PATH, token)[4:],
    "pseudo-header after a regular header": lambda proxy, token: [
        header for header in h2_request(proxy, ALLOWED_PATH, token) if header[0] != ":path"
    ]
    + [(":path", DENIED_PATH)],
    "missing path": lambda proxy, token: [header for header in h2_request(proxy, ALLOWED_PATH, token) if header[0] != ":path"],
    "empty path": lambda proxy, token: h2_request(proxy, "", token),
    "unknown pseudo-header": lambda proxy, token: h2_request(proxy, ALLOWED_PATH, token, [(":db", "b")]),
    "connection-specific header": lambda proxy, token: h2_request(proxy, ALLOWED_PATH, token, [("transfer-encoding", "chunked")]),
    "upper-case header name": lambda proxy, token: h2_request(proxy, ALLOWED_PATH, token, [("X-Upper", "1")]),
    "CR LF in a value": lambda proxy, token: h2_request(proxy, ALLOWED_PATH, token, [("x-value", "a\r\nauthorization: x")]),
    "space in path": lambda proxy, token: h2_request(proxy, "/dbs/a /../b", token),
}


@pytest.mark.parametrize("case", sorted(H2_MALFORMED))
def test_h2_malformed_request_rejected(any_proxy, certs, token, watch, case):
    observed = watch(any_proxy)
    outcome = send_h2(any_proxy.url, certs.ca_file, H2_MALFORMED[case](any_proxy, token))

    assert outcome.rejected_by_protocol or outcome.status == 400, (case, outcome)
    observed.assert_nothing_forwarded()


H2_DENIED = {
    "relative path": ("dbs/b", None),
    "asterisk path with GET": ("*", None),
    "absolute URI as path": ("https://127.0.0.1:9/dbs/b", None),
    "authority naming another host": (DENIED_PATH, "evil.example"),
    "authority with user info": (DENIED_PATH, "user@evil.example"),
}


@pytest.mark.parametrize("case", sorted(H2_DENIED))
def test_h2_odd_target_never_reaches_other_resource(any_proxy, certs, token, watch, case):
    """Targets hyper accepts or rejects; either way nothing outside database a is sent."""
    path, authority = H2_DENIED[case]
    observed = watch(any_proxy)
    outcome = send_h2(any_proxy.url, certs.ca_file, h2_request(any_proxy, path, token, authority=authority))

    assert outcome.rejected_by_protocol or outcome.status in (400, 403), (case, outcome)
    if outcome.status is not None:
        assert_cosmos_error(outcome.status, outcome.body, outcome.status)
    observed.assert_nothing_forwarded()


# Host


def test_foreign_host_not_forwarded(any_proxy, certs, token, watch, double):
    """The account always gets its own host name, whatever Host the caller sent.
    NOTE: the proxy accepts any Host or :authority. Rejecting names other than its public
    URL's host needs a listener setting that does not exist yet."""
    observed = watch(any_proxy)
    data = build_request(
        "GET", ALLOWED_PATH, "evil.example", base_headers(token) + [("Connection", "close")]
    )
    responses = raw(any_proxy, certs, data)

    assert [response.status for response in responses] == [200]
    forwarded = observed.wait_forwarded(1)
    assert len(forwarded) == 1
    assert forwarded[0]["headers"]["host"] == host_of(double.url), forwarded[0]["headers"]
