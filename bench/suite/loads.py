"""Load tools: wrk and h2load (closed loop), the bench driver (open loop), parsed to dicts."""

import json
import re
import subprocess

DOC_PATH = "/dbs/bench/colls/items/docs/doc1"
PARTITION_KEY = '["p1"]'


def _duration_seconds(text):
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url, connections, duration, headers, threads=2, script=None, script_args=()):
    """Closed loop with wrk; returns requests, seconds and requests per second."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", script]
    argv.append(url)
    if script:
        argv += ["--", *script_args]
    output = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    match = re.search(r"(\d+) requests in ([\d.]+\w+)", output)
    if not match:
        return {"error": output[-500:]}
    requests = int(match.group(1))
    seconds = _duration_seconds(match.group(2))
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors = sum(int(group) for group in socket_errors.groups())
    return {
        "tool": "wrk",
        "requests": requests,
        "seconds": seconds,
        "requests_per_second": requests / seconds if seconds else 0.0,
        "non_success": int(non_2xx.group(1)) if non_2xx else 0,
        "errors": errors,
    }


def run_h2load(url, connections, duration, headers, threads=2):
    """Closed loop over HTTP/2 with h2load, one stream at a time per connection."""
    argv = ["h2load", "-t", str(threads), "-c", str(connections), "-m", "1", "-D", str(duration)]
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    output = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60).stdout
    finished = re.search(r"finished in ([\d.]+\w+), ([\d.]+) req/s", output)
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", output)
    if not finished or not counts:
        return {"error": output[-500:]}
    seconds = _duration_seconds(finished.group(1))
    done = int(counts.group(3))
    return {
        "tool": "h2load",
        "requests": done,
        "seconds": seconds,
        "requests_per_second": float(finished.group(2)),
        "non_success": done - int(counts.group(4)),
        "errors": int(counts.group(5)) + int(counts.group(6)),
    }


def run_driver(binary, port, path, rate, duration, connections, headers, tls_ca=None, http2=False, tokens=None, method="GET"):
    """Open loop (with `rate`) or closed loop with the bench driver; returns its JSON report."""
    argv = [binary, "--threads", "1", "load", "--address", f"127.0.0.1:{port}", "--path", path,
            "--method", method, "--connections", str(connections), "--duration", str(duration)]
    if rate:
        argv += ["--rate", str(rate)]
    if tls_ca:
        argv += ["--tls-ca", tls_ca]
    if http2:
        argv.append("--http2")
    if tokens:
        argv += ["--tokens", tokens]
    for header in headers:
        argv += ["--header", header]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if completed.returncode != 0:
        return {"error": completed.stderr[-500:]}
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    report["tool"] = "cosmoguard-bench load"
    return report
