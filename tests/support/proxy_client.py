"""Raw HTTP requests to the proxy and reads of its audit log, for tests that need to see
exactly what goes over the wire."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from support.stack import Proxy

AUDIT_WAIT_SECONDS = 5.0


@dataclass
class RawResponse:
    """Status, headers (lower-case names) and body of one response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def cosmos_headers(token: str | None) -> dict[str, str]:
    """Headers that a Cosmos SDK sends, with `token` as an Entra ID credential."""
    headers = {
        "x-ms-date": email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc), usegmt=True),
        "x-ms-version": "2020-07-15",
        "accept": "application/json",
    }
    if token is not None:
        headers["authorization"] = f"type=aad&ver=1.0&sig={token}"
    return headers


def request(
    base_url: str,
    ca_file,
    method: str,
    path: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send one request to `base_url` + `path` (sent exactly as given) over HTTPS."""
    parsed = urllib.parse.urlsplit(base_url)
    all_headers = cosmos_headers(token)
    if headers:
        all_headers.update(headers)
    if parsed.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file))
        connection = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return RawResponse(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=response.read(),
        )
    finally:
        connection.close()


def wait_for_audit(
    proxy: Proxy,
    start: int,
    predicate: Callable[[dict], bool],
    count: int = 1,
    timeout: float = AUDIT_WAIT_SECONDS,
) -> list[dict]:
    """Return the audit lines after index `start` that match `predicate`, waiting until
    there are at least `count` of them or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        matches = [line for line in proxy.audit_lines()[start:] if predicate(line)]
        if len(matches) >= count or time.monotonic() > deadline:
            return matches
        time.sleep(0.1)


def subject_of(line: dict) -> str | None:
    principal = line.get("principal")
    return principal.get("subject") if principal else None
