"""The admin listener: health, readiness and Prometheus metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from support.processes import free_port, http_status
from support.proxy_client import request


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def test_health_and_readiness(proxy):
    assert http_status(f"{proxy.admin_url}/healthz") == 200
    assert http_status(f"{proxy.admin_url}/readyz") == 200


def test_metrics_pass_promtool(proxy, certs, token_for):
    # Traffic of several kinds first, so the exposition has labelled series.
    request(proxy.url, certs.ca_file, "GET", "/", token=token_for("orders-app"))
    request(proxy.url, certs.ca_file, "GET", "/dbs/shop/colls/orders/docs/none", token=None)
    request(proxy.url, certs.ca_file, "GET", "/dbs/shop/widgets/x", token=token_for("orders-app"))
    exposition = fetch_text(f"{proxy.admin_url}/metrics")
    assert "# TYPE" in exposition
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing; run tests/install.sh"

    checked = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)

    assert checked.returncode == 0, f"promtool check metrics failed:\n{checked.stdout}{checked.stderr}"


def metric_value(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in the exposition")


def test_process_metrics_describe_the_proxy(proxy):
    exposition = fetch_text(f"{proxy.admin_url}/metrics")
    pid = proxy.process.popen.pid
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    open_fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))

    resident = metric_value(exposition, "process_resident_memory_bytes")
    assert 0.5 < resident / (rss_kib * 1024) < 2, (resident, rss_kib)
    descriptors = metric_value(exposition, "process_open_fds")
    assert abs(descriptors - open_fds) <= 4, (descriptors, open_fds)
    # The prometheus crate counts CPU time in whole seconds, so a fresh proxy shows 0.
    assert metric_value(exposition, "process_cpu_seconds_total") >= 0
    assert metric_value(exposition, "process_start_time_seconds") <= time.time()


def test_prometheus_scrapes_metrics(proxy, processes, run_dir, certs, token_for):
    """A real Prometheus server scrapes the admin listener, and `promtool query instant`
    reads the proxy's request counters from it."""
    allowed = request(proxy.url, certs.ca_file, "GET", "/", token=token_for("orders-app"))
    assert allowed.status == 200, allowed.body
    denied = request(proxy.url, certs.ca_file, "GET", "/dbs/shop", token=token_for("nobody-granted"))
    assert denied.status == 403, denied.body
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing; run tests/install.sh")
    admin = urllib.parse.urlsplit(proxy.admin_url)

    directory = run_dir / "prometheus"
    directory.mkdir(exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: cosmoguard\n    static_configs:\n"
        f"      - targets: ['{admin.hostname}:{admin.port}']\n",
        encoding="utf-8",
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        ready=lambda: http_status(f"{base}/-/ready") == 200,
    )

    try:
        query = urllib.parse.urlencode({"query": 'up{job="cosmoguard"}'})
        deadline = time.monotonic() + 30
        value = None
        while time.monotonic() < deadline:
            result = json.loads(fetch_text(f"{base}/api/v1/query?{query}"))["data"]["result"]
            if result:
                value = result[0]["value"][1]
                if value == "1":
                    break
            time.sleep(0.5)
        assert value == "1", f"Prometheus reports up={value} for the admin listener"

        promtool = shutil.which("promtool")
        assert promtool, "promtool is missing; run tests/install.sh"
        for expression in (
            'sum(cosmoguard_requests_total{operation="read_account",decision="allow"})',
            'sum(cosmoguard_requests_total{decision="deny",status_class="4xx"})',
        ):
            queried = subprocess.run(
                [promtool, "query", "instant", base, expression], capture_output=True, text=True, timeout=30
            )
            assert queried.returncode == 0, queried.stderr
            # promtool prints one line per series: `{labels} => VALUE @[TIMESTAMP]`.
            values = [float(line.split("=>")[1].split("@")[0]) for line in queried.stdout.splitlines() if "=>" in line]
            assert values and values[0] >= 1, f"{expression}: {queried.stdout!r}"
    finally:
        processes.stop(server)
