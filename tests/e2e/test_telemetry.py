"""Request spans exported over OTLP to a real receiver (rotel), over plain http and over
TLS. For TLS, a real TLS terminator (stunnel) sits in front of the receiver, with and
without mutual TLS. When the receiver goes away or cannot be trusted, requests still
succeed and the dropped spans are counted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from e2e.conftest import require_binary
from support import stack
from support.certs import CollectorCertificateSet, generate_collector
from support.processes import ManagedProcess, free_port, port_accepts
from support.proxy_client import request

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
SPAN_WAIT_SECONDS = 15.0
PROTOCOLS = ["grpc", "http/protobuf"]
DROPPED_SERIES = 'cosmoguard_spans_dropped_total{reason="export_failed"}'
EXPORTED_SERIES = "cosmoguard_spans_exported_total"


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


def start_stunnel(
    processes, run_dir: Path, pki: CollectorCertificateSet, target_port: int, require_client_cert: bool = False
) -> tuple[ManagedProcess, int]:
    """Start stunnel on a free loopback port. It terminates TLS with the collector's
    certificate and relays the plain TCP stream to `target_port`. With
    `require_client_cert` it accepts only clients with a certificate from the collector CA.
    Returns the process and its TLS port."""
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:
        pytest.skip("stunnel4 is not installed; run tests/install.sh")
    port = free_port()
    directory = run_dir / "stunnel"
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "foreground = yes",
        "pid =",
        "debug = info",
        "[otlp]",
        f"accept = 127.0.0.1:{port}",
        f"connect = 127.0.0.1:{target_port}",
        f"cert = {pki.collector_cert}",
        f"key = {pki.collector_key}",
    ]
    if require_client_cert:
        lines += ["requireCert = yes", "verifyChain = yes", f"CAfile = {pki.ca_file}"]
    config_path = directory / f"stunnel-{port}.conf"
    config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    process = processes.start(
        f"stunnel-{port}", [binary, str(config_path)], ready=lambda: port_accepts("127.0.0.1", port)
    )
    return process, port


def write_traced_config(certs, run_dir, double, oidc, name: str, endpoint: str, protocol: str, tls_settings: str = ""):
    """Write a proxy configuration with a `[telemetry]` section and return what
    `stack.write_proxy_config` returns."""
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
{tls_settings}
"""
        )
    return config_path, public_url, admin_url


def start_traced_proxy(
    processes,
    certs,
    run_dir,
    double,
    oidc,
    name: str,
    endpoint: str,
    protocol: str,
    tls_settings: str = "",
    extra_env: Mapping[str, str] | None = None,
) -> stack.Proxy:
    """Start a proxy that exports to `endpoint`, with `tls_settings` as extra `[telemetry]`
    lines."""
    require_binary()
    config_path, public_url, admin_url = write_traced_config(
        certs, run_dir, double, oidc, name, endpoint, protocol, tls_settings
    )
    return stack.start_proxy(processes, config_path, public_url, admin_url, name=name, extra_env=extra_env)


def tls_lines(ca_file: Path, client: tuple[Path, Path] | None = None) -> str:
    """Return `[telemetry]` lines that trust `ca_file` and present the `client` certificate
    and key, if given."""
    lines = [f'ca_file = "{ca_file}"']
    if client:
        lines += [f'client_certificate_file = "{client[0]}"', f'client_key_file = "{client[1]}"']
    return "\n".join(lines)


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


def wait_for_metric(admin_url: str, series: str, minimum: float) -> float:
    """Return the value of `series` once it reaches `minimum`, or after SPAN_WAIT_SECONDS."""
    deadline = time.monotonic() + SPAN_WAIT_SECONDS
    while metric_value(admin_url, series) < minimum and time.monotonic() < deadline:
        time.sleep(0.2)
    return metric_value(admin_url, series)


def assert_spans_received(rotel) -> None:
    """Assert that the receiver logged the spans of `send_three_requests`."""
    needles = [PARENT_TRACE, "cosmoguard.decision", "allow", "deny", "unauthenticated"]
    log = wait_for_log(rotel, needles)
    for needle in needles:
        assert needle in log, f"{needle!r} not in the receiver's log:\n{log[-3000:]}"


def assert_spans_dropped(proxy: stack.Proxy, rotel) -> None:
    """Assert that the 3 spans of `send_three_requests` were counted as dropped and never
    reached the receiver."""
    assert wait_for_metric(proxy.admin_url, DROPPED_SERIES, 3) >= 3, "each of the 3 spans is counted as dropped"
    assert metric_value(proxy.admin_url, EXPORTED_SERIES) == 0
    log = rotel.log_path.read_text(encoding="utf-8", errors="replace")
    assert PARENT_TRACE not in log, "no span may reach the receiver"


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


@pytest.fixture(scope="session")
def collector_pki(run_dir: Path) -> CollectorCertificateSet:
    return generate_collector(run_dir / "collector-pki")


def start_receiver_behind_tls(
    processes, run_dir, collector_pki, protocol: str, require_client_cert: bool = False
) -> tuple[ManagedProcess, ManagedProcess, str]:
    """Start rotel and stunnel in front of its port for `protocol`. Returns rotel,
    stunnel and the https endpoint."""
    grpc_port, http_port = free_port(), free_port()
    rotel = start_rotel(processes, run_dir, grpc_port, http_port)
    target = grpc_port if protocol == "grpc" else http_port
    terminator, tls_port = start_stunnel(processes, run_dir, collector_pki, target, require_client_cert)
    return rotel, terminator, f"https://127.0.0.1:{tls_port}"


def start_stack_behind_tls(
    processes, certs, run_dir, double, oidc, collector_pki, protocol: str, name: str, ca_file: Path
) -> tuple[ManagedProcess, ManagedProcess, stack.Proxy]:
    """Start rotel behind stunnel and a proxy that exports to it over TLS, trusting
    `ca_file`. Returns rotel, stunnel and the proxy."""
    rotel, terminator, endpoint = start_receiver_behind_tls(processes, run_dir, collector_pki, protocol)
    name = f"{name}-{protocol.replace('/', '-')}"
    proxy = start_traced_proxy(processes, certs, run_dir, double, oidc, name, endpoint, protocol, tls_lines(ca_file))
    return rotel, terminator, proxy


def stop_processes(processes, *managed: ManagedProcess) -> None:
    """Stop each process by PID, in the order given."""
    for process in managed:
        processes.stop(process)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_reach_receiver_over_tls(
    processes, certs, run_dir, double, oidc, shop, token_for, collector_pki, protocol
):
    rotel, terminator, proxy = start_stack_behind_tls(
        processes, certs, run_dir, double, oidc, collector_pki, protocol, "traced-tls", collector_pki.ca_file
    )

    assert send_three_requests(proxy, certs, token_for) == (200, 403, 401)
    assert_spans_received(rotel)
    assert wait_for_metric(proxy.admin_url, EXPORTED_SERIES, 3) >= 3
    terminator_log = terminator.log_path.read_text(encoding="utf-8", errors="replace")
    assert "TLS accepted" in terminator_log, "the spans came through the TLS terminator"
    assert "connected remote server" in terminator_log

    stop_processes(processes, proxy.process, terminator, rotel)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mutual_tls_needs_client_certificate(
    processes, certs, run_dir, double, oidc, shop, token_for, collector_pki, protocol
):
    rotel, terminator, endpoint = start_receiver_behind_tls(
        processes, run_dir, collector_pki, protocol, require_client_cert=True
    )
    suffix = protocol.replace("/", "-")

    anonymous = start_traced_proxy(
        processes, certs, run_dir, double, oidc, f"traced-no-client-cert-{suffix}", endpoint, protocol,
        tls_lines(collector_pki.ca_file),
    )
    assert send_three_requests(anonymous, certs, token_for) == (200, 403, 401)
    assert_spans_dropped(anonymous, rotel)
    processes.stop(anonymous.process)

    client = (collector_pki.client_cert, collector_pki.client_key)
    authenticated = start_traced_proxy(
        processes, certs, run_dir, double, oidc, f"traced-client-cert-{suffix}", endpoint, protocol,
        tls_lines(collector_pki.ca_file, client),
    )
    assert send_three_requests(authenticated, certs, token_for) == (200, 403, 401)
    assert_spans_received(rotel)
    assert wait_for_metric(authenticated.admin_url, EXPORTED_SERIES, 3) >= 3

    stop_processes(processes, authenticated.process, terminator, rotel)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_dropped_when_ca_is_wrong(
    processes, certs, run_dir, double, oidc, shop, token_for, collector_pki, protocol
):
    rotel, terminator, proxy = start_stack_behind_tls(
        processes, certs, run_dir, double, oidc, collector_pki, protocol, "traced-wrong-ca",
        collector_pki.other_ca_file,
    )

    assert send_three_requests(proxy, certs, token_for) == (200, 403, 401)
    assert_spans_dropped(proxy, rotel)

    stop_processes(processes, proxy.process, terminator, rotel)


def test_tls_files_from_environment(processes, certs, run_dir, double, oidc, shop, token_for, collector_pki):
    rotel, terminator, endpoint = start_receiver_behind_tls(
        processes, run_dir, collector_pki, "grpc", require_client_cert=True
    )
    tls_env = {
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(collector_pki.ca_file),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(collector_pki.client_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(collector_pki.client_key),
    }
    proxy = start_traced_proxy(
        processes, certs, run_dir, double, oidc, "traced-tls-env", endpoint, "grpc", extra_env=tls_env
    )

    assert send_three_requests(proxy, certs, token_for) == (200, 403, 401)
    assert_spans_received(rotel)

    stop_processes(processes, proxy.process, terminator, rotel)


def run_cosmoguard(command: str, config_path: Path, extra_env: Mapping[str, str] | None = None):
    """Run `cosmoguard COMMAND --config config_path` to its end and return the result."""
    env = dict(os.environ, NO_COLOR="1", **(extra_env or {}))
    argv = [str(require_binary()), command, "--config", str(config_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=config_path.parent)


def test_unusable_tls_file_stops_check_and_start(certs, run_dir, double, oidc, collector_pki):
    endpoint = f"https://127.0.0.1:{free_port()}"
    not_a_certificate = collector_pki.client_key
    config_path, _, _ = write_traced_config(
        certs, run_dir, double, oidc, "traced-bad-ca", endpoint, "grpc", tls_lines(not_a_certificate)
    )
    for command in ["check", "serve"]:
        result = run_cosmoguard(command, config_path)
        assert result.returncode != 0, f"{command} accepted a CA file without a certificate"
        assert "telemetry.ca_file: " in result.stderr, result.stderr
        assert f"{not_a_certificate} contains no PEM certificate; set it to" in result.stderr, result.stderr
        assert "PRIVATE KEY" not in result.stderr + result.stdout

    config_path, _, _ = write_traced_config(certs, run_dir, double, oidc, "traced-bad-env-key", endpoint, "grpc")
    missing_key = run_dir / "no-such-key.pem"
    tls_env = {
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(collector_pki.client_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(missing_key),
    }
    result = run_cosmoguard("serve", config_path, tls_env)
    assert result.returncode != 0, "serve started with a missing client key"
    assert f"OTEL_EXPORTER_OTLP_CLIENT_KEY: cannot read {missing_key}" in result.stderr, result.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
