"""Request spans exported over OTLP to a real receiver (rotel), and what happens when the
receiver goes away: requests still succeed and the dropped spans are counted."""

from __future__ import annotations

import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from e2e.conftest import require_binary
from support import stack
from support.processes import free_port, port_accepts
from support.proxy_client import request

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
SPAN_WAIT_SECONDS = 15.0


def rotel_binary() -> Path:
    """The receiver shipped inside the `rotel` PyPI package."""
    found = shutil.which("rotel-agent")
    if found:
        return Path(found)
    try:
        import rotel  # noqa: PLC0415
    except ImportError:
        pytest.skip("rotel is not installed; run `pip install --pre rotel`")
    return Path(rotel.__file__).parent / "rotel-agent"


def start_rotel(processes, run_dir: Path, grpc_port: int, http_port: int):
    """Start rotel on loopback, printing every received span to its log."""
    directory = run_dir / "rotel"
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        str(rotel_binary()), "start",
        "--exporter", "blackhole",
        "--debug-log", "traces",
        "--debug-log-verbosity", "detailed",
        "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
        "--pid-file", str(directory / "rotel.pid"),
        "--log-file", str(directory / "rotel.log"),
    ]
    return processes.start(f"rotel-{grpc_port}", argv, ready=lambda: port_accepts("127.0.0.1", grpc_port))


def start_traced_proxy(processes, certs, run_dir, double, oidc, name: str, endpoint: str, protocol: str) -> stack.Proxy:
    require_binary()
    config_path, public_url, admin_url = stack.write_proxy_config(
        run_dir / name, certs, double.url, oidc.issuer, Path(__file__).resolve().parent / "policy.toml"
    )
    with config_path.open("a", encoding="utf-8") as file:
        file.write(
            f"""
[telemetry]
endpoint = "{endpoint}"
protocol = "{protocol}"
service_name = "cosmoguard-e2e"
scheduled_delay = "200ms"
export_timeout = "1s"
max_queue_size = 64
"""
        )
    return stack.start_proxy(processes, config_path, public_url, admin_url, name=name)


def wait_for_log(process, needles: list[str], timeout: float = SPAN_WAIT_SECONDS) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = process.log_path.read_text(encoding="utf-8", errors="replace")
        if all(needle in text for needle in needles) or time.monotonic() > deadline:
            return text


def metric_value(admin_url: str, series: str) -> float:
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def send_three_requests(proxy: stack.Proxy, certs, token_for) -> tuple[int, int, int]:
    """An allowed read with a traceparent, a denied write and an unauthenticated read."""
    allowed = request(
        proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders", token=token_for("orders-app"),
        headers={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"},
    )
    denied = request(
        proxy.url, certs.ca_file, "POST", "/dbs/shop/colls/orders/docs", token=token_for("reporting"),
        headers={"x-ms-documentdb-partitionkey": '["c-1"]', "content-type": "application/json"},
        body=b'{"id": "span-test", "customerId": "c-1"}',
    )
    unauthenticated = request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders")
    return allowed.status, denied.status, unauthenticated.status


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_reach_receiver(processes, certs, run_dir, double, oidc, shop, token_for, protocol):
    grpc_port, http_port = free_port(), free_port()
    rotel = start_rotel(processes, run_dir, grpc_port, http_port)
    endpoint = f"http://127.0.0.1:{grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{http_port}"
    name = "traced-" + protocol.replace("/", "-")
    proxy = start_traced_proxy(processes, certs, run_dir, double, oidc, name, endpoint, protocol)

    assert send_three_requests(proxy, certs, token_for) == (200, 403, 401)

    needles = [PARENT_TRACE, "cosmoguard.decision", "allow", "deny", "unauthenticated"]
    log = wait_for_log(rotel, needles)
    for needle in needles:
        assert needle in log, f"{needle!r} not in the receiver's log:\n{log[-3000:]}"
    for attribute in [
        "db.system.name", "azure.cosmosdb", "db.namespace", "db.collection.name", "db.operation.name",
        "http.response.status_code", "enduser.id", "orders-app", "cosmoguard.rule_id",
        "test-apps-read-metadata", "cosmoguard.issuer", "client.address", "server.address",
        "cosmoguard-e2e",
    ]:
        assert attribute in log, f"{attribute!r} not in the receiver's log"

    audit = [line for line in proxy.audit_lines() if line.get("trace_id") == PARENT_TRACE]
    assert len(audit) == 1, "the allowed request's audit record names the caller's trace"
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while metric_value(proxy.admin_url, "cosmoguard_spans_exported_total") < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric_value(proxy.admin_url, "cosmoguard_spans_exported_total") >= 3

    processes.stop(proxy.process)
    processes.stop(rotel)


def test_requests_succeed_without_receiver(processes, certs, run_dir, double, oidc, shop, token_for):
    grpc_port = free_port()
    rotel = start_rotel(processes, run_dir, grpc_port, free_port())
    proxy = start_traced_proxy(processes, certs, run_dir, double, oidc, "traced-stopped", f"http://127.0.0.1:{grpc_port}", "grpc")
    processes.stop(rotel)
    assert not port_accepts("127.0.0.1", grpc_port)

    started = time.monotonic()
    for _ in range(3):
        assert send_three_requests(proxy, certs, token_for) == (200, 403, 401)
    assert time.monotonic() - started < 10, "requests must not wait on the collector"

    series = 'cosmoguard_spans_dropped_total{reason="export_failed"}'
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while metric_value(proxy.admin_url, series) < 9 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric_value(proxy.admin_url, series) >= 9, "each of the 9 spans is counted as dropped"
    assert metric_value(proxy.admin_url, "cosmoguard_spans_exported_total") == 0
    processes.stop(proxy.process)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
