"""Faults around the proxy: an account that refuses, resets, stalls, throttles or shows an
untrusted certificate, an issuer that is down, an audit file on a full disk, a broken
policy on reload, and SIGTERM with a request in flight. For each, the proxy returns the
right status and writes an audit line with the cause. It never retries a write and keeps
serving."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from hostile.conftest import ALLOWED_SUBJECT, AUDIENCE, assert_audited, assert_cosmos_error, require_binary, write_config
from hostile.forge import KeyServer, RsaKey, rs256_token
from hostile.wire import build_request, exchange, host_of, open_socket, parse_responses
from support import stack
from support.faults import FaultServer, untrusted_certificate
from support.processes import http_status, port_accepts
from support.proxy_client import cosmos_headers

READ_PATH = "/dbs/a/colls/c/docs/i"
WRITE_PATH = "/dbs/a/colls/c/docs"


def fault_edits(plain_upstream: bool, response_timeout: str = "2s", audit_file: str | None = None):
    def edit(text: str) -> str:
        text = text.replace('response_timeout = "60s"', f'response_timeout = "{response_timeout}"')
        if plain_upstream:
            text = text.replace("[dangerous]\n", "[dangerous]\nplain_http_upstream = true\n")
        if audit_file:
            text = text.replace('file = "audit.jsonl"', f"file = {json.dumps(audit_file)}")
        return text

    return edit


@pytest.fixture
def fault_proxy(processes, certs, run_dir, oidc, request):
    """Start proxies in front of a given upstream URL. Each one is stopped when the test ends."""
    started = []

    def start(name: str, upstream_url: str, **edits) -> stack.Proxy:
        require_binary()
        plain = upstream_url.startswith("http://")
        config_path, public_url, admin_url = write_config(
            run_dir, certs, name, upstream_url, oidc.issuer, edits=fault_edits(plain, **edits)
        )
        proxy = stack.start_proxy(processes, config_path, public_url, admin_url, name=name)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        processes.stop(proxy.process)


def send(proxy, certs, token, method: str = "GET", path: str = READ_PATH, body: bytes = b"", idle: float = 2.0):
    headers = list(cosmos_headers(token).items()) + [
        ("x-ms-documentdb-partitionkey", '["p1"]'),
        ("Content-Type", "application/json"),
        ("Connection", "close"),
    ]
    data = build_request(method, path, host_of(proxy.url), headers, body)
    return parse_responses(exchange(proxy.url, certs.ca_file, data, idle_timeout=idle))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_upstream_error(proxy, start_audit: int, status: int, cause: str) -> dict:
    """Check the audit line of a request that failed upstream. Its `reason` keeps the
    policy decision (the request was allowed), so the cause is read from `error`."""
    lines = [line for line in proxy.audit_lines()[start_audit:] if line.get("status") == status]
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = [line for line in proxy.audit_lines()[start_audit:] if line.get("status") == status]
    assert lines, f"no audit line with status {status}"
    assert lines[-1]["decision"] == "error", lines[-1]
    assert cause in (lines[-1]["error"] or ""), lines[-1]
    return lines[-1]


# The account misbehaves


def test_refused_connection_is_502(fault_proxy, certs, token):
    proxy = fault_proxy("fault-refused", f"http://127.0.0.1:{closed_port()}")
    responses = send(proxy, certs, token)

    assert_cosmos_error(responses[0].status, responses[0].body, 502)
    assert_upstream_error(proxy, 0, 502, "could not be reached")


@pytest.mark.parametrize("method, path", [("GET", READ_PATH), ("POST", WRITE_PATH)])
def test_reset_is_502_and_never_retried(fault_proxy, certs, token, method, path):
    upstream = FaultServer("reset")
    try:
        proxy = fault_proxy(f"fault-reset-{method.lower()}", upstream.url)
        responses = send(proxy, certs, token, method, path, b'{"id": "x", "pk": "p1"}' if method == "POST" else b"")

        assert_cosmos_error(responses[0].status, responses[0].body, 502)
        assert_upstream_error(proxy, 0, 502, "could not be reached")
        time.sleep(0.5)
        if method == "POST":
            assert upstream.request_count == 1, "the proxy retried a write"
        else:
            assert upstream.request_count >= 1
    finally:
        upstream.close()


def test_slow_headers_time_out_with_504(fault_proxy, certs, token):
    upstream = FaultServer("slow-headers", delay=6)
    try:
        proxy = fault_proxy("fault-slow-headers", upstream.url, response_timeout="1s")
        started = time.monotonic()
        responses = send(proxy, certs, token, "POST", WRITE_PATH, b'{"id": "slow", "pk": "p1"}', idle=5)
        elapsed = time.monotonic() - started

        assert_cosmos_error(responses[0].status, responses[0].body, 504)
        assert elapsed < 4, f"the 504 took {elapsed:.1f} s with a 1 s response timeout"
        assert_upstream_error(proxy, 0, 504, "did not respond within")
        assert upstream.request_count == 1, "the proxy retried a write that timed out"
    finally:
        upstream.close()


def test_slow_body_then_close_is_recorded_incomplete(fault_proxy, certs, token):
    """Headers arrived in time, so the status is already sent. The audit record must
    mark the cut body as not completed."""
    upstream = FaultServer("slow-body", delay=1)
    try:
        proxy = fault_proxy("fault-slow-body", upstream.url)
        data = exchange(
            proxy.url,
            certs.ca_file,
            build_request("GET", READ_PATH, host_of(proxy.url), list(cosmos_headers(token).items()) + [("Connection", "close")]),
            idle_timeout=4,
        )

        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        lines = [line for line in proxy.audit_lines() if line.get("path") == READ_PATH]
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.1)
            lines = [line for line in proxy.audit_lines() if line.get("path") == READ_PATH]
        assert lines, "no audit line for the cut response"
        assert lines[-1]["completed"] is False, lines[-1]
    finally:
        upstream.close()


def test_untrusted_upstream_certificate_is_502(fault_proxy, certs, token, run_dir):
    upstream = FaultServer("ok", tls=untrusted_certificate(run_dir / "untrusted"))
    try:
        proxy = fault_proxy("fault-untrusted-tls", upstream.url)
        responses = send(proxy, certs, token)

        assert_cosmos_error(responses[0].status, responses[0].body, 502)
        line = assert_upstream_error(proxy, 0, 502, "could not be reached")
        assert "certificate" in line["error"].lower() or "tls" in line["error"].lower(), line["error"]
        assert upstream.request_count == 0
    finally:
        upstream.close()


@pytest.mark.parametrize(
    "status, headers",
    [
        (429, {"x-ms-retry-after-ms": "1234", "Retry-After": "2", "x-ms-substatus": "3200"}),
        (503, {"Retry-After": "7", "x-ms-substatus": "20001"}),
    ],
)
def test_throttling_passes_through_unchanged(fault_proxy, certs, token, status, headers):
    upstream = FaultServer("status", status=status, headers=headers)
    try:
        proxy = fault_proxy(f"fault-status-{status}", upstream.url)
        responses = send(proxy, certs, token, "POST", WRITE_PATH, b'{"id": "t", "pk": "p1"}')

        assert responses[0].status == status
        for name, value in headers.items():
            assert responses[0].headers.get(name.lower()) == value, (name, responses[0].headers)
        assert upstream.request_count == 1, "the proxy retried a throttled write"
    finally:
        upstream.close()


# The issuer is down


def start_unready_proxy(processes, certs, run_dir, double, oidc, name: str, jwks_url: str, issuer: str) -> stack.Proxy:
    """Start a proxy whose only issuer's keys come from `jwks_url`, without waiting for
    /readyz (which stays 503 while the keys are missing)."""
    require_binary()
    block = f'[[issuers]]\nissuer = "{issuer}"\naudiences = ["{AUDIENCE}"]\njwks_url = "{jwks_url}"\n\n[policy]\n'

    def edit(text: str) -> str:
        start = text.index("[[issuers]]")
        end = text.index("[policy]\n")
        return text[:start] + block + text[end + len("[policy]\n") :]

    config_path, public_url, admin_url = write_config(run_dir, certs, name, double.url, oidc.issuer, edits=edit)
    argv = [str(stack.cosmoguard_binary()), "serve", "--config", str(config_path)]
    parsed_port = int(public_url.rsplit(":", 1)[1])
    process = processes.start(
        name, argv, ready=lambda: port_accepts("127.0.0.2", parsed_port), env={"RUST_LOG": "info"}, cwd=config_path.parent, ready_timeout=40
    )
    return stack.Proxy(
        url=public_url, admin_url=admin_url, config_path=config_path, audit_path=config_path.parent / "audit.jsonl", process=process
    )


def test_issuer_down_at_start_is_503(processes, certs, run_dir, double, oidc, seeded):
    key = RsaKey("down-1")
    issuer = f"http://127.0.0.1:{closed_port()}/down"
    proxy = start_unready_proxy(processes, certs, run_dir, double, oidc, "issuer-down", f"{issuer}/jwks", issuer)
    try:
        token = rs256_token(key, {"alg": "RS256", "kid": key.kid}, {"iss": issuer, "sub": ALLOWED_SUBJECT, "aud": AUDIENCE, "exp": int(time.time()) + 600})
        # The data listener is bound at once but serves only after the proxy has waited
        # (10 s at most) for the issuer's keys.
        deadline = time.monotonic() + 30
        while "Cosmoguard started" not in proxy.process.log_tail(20000) and time.monotonic() < deadline:
            time.sleep(0.2)
        responses = send(proxy, certs, token)

        assert http_status(f"{proxy.admin_url}/readyz") == 503
        assert_cosmos_error(responses[0].status, responses[0].body, 503)
        assert responses[0].headers.get("retry-after"), responses[0].headers
    finally:
        processes.stop(proxy.process)


def test_cached_keys_survive_issuer_outage(processes, certs, run_dir, double, oidc, seeded):
    key = RsaKey("later-1")
    keys = KeyServer([key.public_jwk()])
    issuer = f"{keys.url}/later"
    proxy = start_unready_proxy(processes, certs, run_dir, double, oidc, "issuer-later", f"{keys.url}/jwks", issuer)
    try:
        deadline = time.monotonic() + 20
        while http_status(f"{proxy.admin_url}/readyz") != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert http_status(f"{proxy.admin_url}/readyz") == 200
        keys.close()

        # A token never seen before, so it cannot come from the token cache.
        token = rs256_token(key, {"alg": "RS256", "kid": key.kid}, {"iss": issuer, "sub": ALLOWED_SUBJECT, "aud": AUDIENCE, "exp": int(time.time()) + 600})
        responses = send(proxy, certs, token)
        assert responses[0].status == 200, responses[0].body[:200]
    finally:
        processes.stop(proxy.process)


# The proxy's own files


def test_audit_on_full_disk_keeps_serving(fault_proxy, certs, token, double):
    proxy = fault_proxy("audit-dev-full", double.url, audit_file="/dev/full")
    for _ in range(3):
        responses = send(proxy, certs, token)
        assert responses[0].status == 200, responses[0].body[:200]

    time.sleep(0.5)
    with urllib.request.urlopen(f"{proxy.admin_url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    dropped = [line for line in metrics.splitlines() if line.startswith("cosmoguard_audit_records_dropped_total")]
    assert dropped and float(dropped[0].split()[-1]) >= 3, dropped
    assert "Failed to write audit records" in proxy.process.log_tail(20000)


def test_broken_policy_on_reload_keeps_old_policy(processes, certs, run_dir, double, oidc, seeded, token):
    policy_copy = run_dir / "reload-policy.toml"
    shutil.copy(Path(__file__).resolve().parent / "policy.toml", policy_copy)
    config_path, public_url, admin_url = write_config(run_dir, certs, "policy-reload", double.url, oidc.issuer, policy_file=policy_copy)
    proxy = stack.start_proxy(processes, config_path, public_url, admin_url, name="policy-reload")
    try:
        assert send(proxy, certs, token)[0].status == 200
        policy_copy.write_text("version = 1\n[[rules]]\nid = \n", encoding="utf-8")
        proxy.process.popen.send_signal(signal.SIGHUP)
        time.sleep(1)

        assert proxy.process.is_running()
        assert send(proxy, certs, token)[0].status == 200
        assert "Kept the previous policy" in proxy.process.log_tail(20000)
    finally:
        processes.stop(proxy.process)


def test_sigterm_drains_request_in_flight(processes, certs, run_dir, oidc, seeded, token):
    upstream = FaultServer("slow-headers", delay=3)
    config_path, public_url, admin_url = write_config(
        run_dir, certs, "sigterm-drain", upstream.url, oidc.issuer, edits=fault_edits(True, response_timeout="10s")
    )
    proxy = stack.start_proxy(processes, config_path, public_url, admin_url, name="sigterm-drain")
    try:
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(responses=send(proxy, certs, token, idle=8)))
        worker.start()
        deadline = time.monotonic() + 5
        while upstream.request_count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upstream.request_count == 1, "the slow request never reached the upstream"

        proxy.process.popen.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert not port_accepts("127.0.0.2", int(public_url.rsplit(":", 1)[1])), "still accepting after SIGTERM"
        worker.join(timeout=15)
        exit_code = proxy.process.popen.wait(timeout=20)

        assert result["responses"] and result["responses"][0].status == 200, result
        assert exit_code == 0, proxy.process.log_tail()
        lines = [line for line in proxy.audit_lines() if line.get("path") == READ_PATH]
        assert lines, "no audit line for the drained request"
        assert lines[-1]["status"] == 200, lines[-1]
        assert lines[-1]["completed"] is True, lines[-1]
    finally:
        processes.stop(proxy.process)
        upstream.close()


def test_sigterm_closes_idle_keep_alive_promptly(fault_proxy, certs, token):
    # An SDK keeps an idle pooled connection open and does not read it. The client has
    # sent nothing unread, so shutdown need not wait for it to close.
    upstream = FaultServer("ok")
    try:
        proxy = fault_proxy("sigterm-idle", upstream.url)
        headers = list(cosmos_headers(token).items()) + [("x-ms-documentdb-partitionkey", '["p1"]')]
        with open_socket(proxy.url, certs.ca_file) as sock:
            sock.sendall(build_request("GET", READ_PATH, host_of(proxy.url), headers, b""))
            received = b""
            while not parse_responses(received):
                chunk = sock.recv(65536)
                assert chunk, "the proxy closed the connection before responding"
                received += chunk
            assert parse_responses(received)[0].status == 200, received

            started = time.monotonic()
            proxy.process.popen.send_signal(signal.SIGTERM)
            exit_code = proxy.process.popen.wait(timeout=20)
            elapsed = time.monotonic() - started

        assert exit_code == 0, proxy.process.log_tail()
        assert elapsed < 2.5, f"shutdown took {elapsed:.1f} s with one idle connection open"
    finally:
        upstream.close()
