"""Runs the Cosmoguard load and memory suite and the criterion benches, and writes the raw
results as JSON for report.py.

Every server listens on 127.0.0.1. Setups are measured in rounds: each round runs one short
trial of every setup, in an order rotated per round, so drift on the machine hits all alike.
"""

import argparse
import glob
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time

import configs
import loads
from procs import ProcessSet, child_pids, cpu_seconds, status_kib, wait_http, wait_port

BASE_HEADERS = [f"x-ms-documentdb-partitionkey: {loads.PARTITION_KEY}", "x-ms-version: 2020-07-15"]

SETUPS = [
    {"name": "direct", "label": "Direct to the backend", "kind": "direct"},
    {"name": "nginx", "label": "nginx, plain reverse proxy", "kind": "nginx"},
    # The floor of any proxy built on hyper, which forwards HTTP/1.1 over a kept-alive pool and does no other work.
    {"name": "passthrough", "label": "Minimal hyper pass-through (no auth)", "kind": "passthrough"},
    {"name": "cg-cached", "label": "Cosmoguard: cached token, 100 rules, key signing", "kind": "cg", "rules": 100},
    {"name": "cg-1000", "label": "Cosmoguard: cached token, 1,000 rules", "kind": "cg", "rules": 1000},
    {"name": "cg-cold-rs256", "label": "Cosmoguard: new RS256 token every request", "kind": "cg", "rules": 100, "token": "rs256"},
    {"name": "cg-cold-es256", "label": "Cosmoguard: new ES256 token every request", "kind": "cg", "rules": 100, "token": "es256"},
    {"name": "cg-entra", "label": "Cosmoguard: Entra token signing (managed identity)", "kind": "cg", "rules": 100, "credential": "entra"},
    {"name": "direct-tls", "label": "Direct, client TLS", "kind": "direct", "tls": True},
    {"name": "nginx-tls", "label": "nginx, client TLS", "kind": "nginx", "tls": True},
    {"name": "cg-tls", "label": "Cosmoguard, client TLS", "kind": "cg", "rules": 100, "tls": True},
    {"name": "direct-h2", "label": "Direct, HTTP/2 (h2c)", "kind": "direct", "http2": True},
    {"name": "nginx-h2", "label": "nginx, HTTP/2 (h2c)", "kind": "nginx", "http2": True},
    {"name": "cg-h2", "label": "Cosmoguard, HTTP/2 (h2c)", "kind": "cg", "rules": 100, "http2": True},
    # One connection worker instead of one per CPU.
    {"name": "cg-1-worker", "label": "Cosmoguard, cached token, 1 connection worker", "kind": "cg", "rules": 100,
     "workers": 1},
]

# Measured only when --baseline-binary names an earlier build, to show what a change bought.
BASELINE_SETUP = {"name": "cg-baseline", "label": "Cosmoguard baseline build: cached token, 100 rules, key signing",
                  "kind": "cg", "rules": 100, "baseline": True}

SWEEP_SETUPS = ["direct", "nginx", "passthrough", "cg-cached", "cg-1000"]


# The wait before the second RSS reading with idle connections open.
IDLE_SETTLE_SECONDS = 15

class Suite:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.bin = args.bench_binary
        self.proxy_bin = args.proxy_binary
        self.processes = ProcessSet()
        self.results = {"trials": [], "sweep": [], "not_measured": {}, "memory": {}, "profiles": {}}
        self.quick = args.quick
        self.trial_seconds = 2 if self.quick else 4
        self.rounds = args.rounds or (1 if self.quick else 3)
        self.rate = args.rate
        self.nginx = None
        self.cached_token = open(os.path.join(self.work, "token-rs256.txt")).read().strip()

    # Servers -------------------------------------------------------------------------

    def log(self, message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def start_fixed_servers(self):
        work = self.work
        backend = [self.bin, "--threads", "2", "backend", "--address", f"127.0.0.1:{configs.BACKEND_PORT}"]
        self.backend = self.processes.start("backend", backend, f"{work}/backend.log")
        tls_backend = [self.bin, "--threads", "2", "backend", "--address", f"127.0.0.1:{configs.BACKEND_TLS_PORT}",
                       "--tls-certificate", f"{work}/server.pem", "--tls-key", f"{work}/server.key"]
        self.tls_backend = self.processes.start("backend-tls", tls_backend, f"{work}/backend-tls.log")
        idp = [self.bin, "--threads", "1", "idp", "--address", f"127.0.0.1:{configs.IDP_PORT}",
               "--rsa-key", f"{work}/rsa.pem", "--ec-key", f"{work}/ec.pem", "--identity-header", configs.IDENTITY_HEADER]
        self.idp = self.processes.start("idp", idp, f"{work}/idp.log")
        passthrough = [self.bin, "--threads", "2", "passthrough", "--address", f"127.0.0.1:{configs.PASSTHROUGH_PORT}",
                       "--upstream", f"127.0.0.1:{configs.BACKEND_PORT}"]
        self.passthrough = self.processes.start("passthrough", passthrough, f"{work}/passthrough.log")
        for port, process in [(configs.BACKEND_PORT, self.backend), (configs.BACKEND_TLS_PORT, self.tls_backend),
                              (configs.IDP_PORT, self.idp), (configs.PASSTHROUGH_PORT, self.passthrough)]:
            if not wait_port("127.0.0.1", port, 10, process):
                raise RuntimeError(f"a bench server did not start on port {port}; see {work}/*.log")
        self.start_nginx()

    def start_nginx(self):
        conf = configs.write_nginx(self.work, workers=2)
        self.nginx = self.processes.start("nginx", ["nginx", "-c", conf, "-p", self.work], f"{self.work}/nginx.log")
        if not wait_port("127.0.0.1", configs.NGINX_PORT, 10, self.nginx):
            raise RuntimeError(f"nginx did not start; see {self.work}/nginx-error.log")

    def nginx_pids(self):
        return [self.nginx.pid, *child_pids(self.nginx.pid)]

    def start_proxy(self, setup, wrapper=(), ready_timeout=20):
        """Starts a fresh Cosmoguard for one trial; returns the process or None with a reason."""
        credential = setup.get("credential", "key")
        policy = f"{self.work}/policy-{setup.get('rules', 100)}.toml"
        config = configs.write_proxy(self.work, setup["name"], policy, tls=setup.get("tls", False), credential=credential,
                                     workers=setup.get("workers"))
        log = f"{self.work}/proxy-{setup['name']}.log"
        binary = self.args.baseline_binary if setup.get("baseline") else self.proxy_bin
        argv = [*wrapper, binary, "serve", "--config", config]
        env = configs.proxy_environment(credential)
        env.update(setup.get("env", {}))
        process = self.processes.start(setup["name"], argv, log, env=env)
        ready = wait_http(f"http://127.0.0.1:{configs.PROXY_ADMIN_PORT}/readyz", ready_timeout, process)
        if not ready or not wait_port("127.0.0.1", configs.PROXY_PORT, 5, process):
            self.processes.stop(process)
            with open(log, errors="replace") as file:
                tail = file.read()[-800:]
            return None, f"did not become ready: {tail.strip()}"
        return process, None

    def stop_proxy(self, process, setup_name):
        self.processes.stop(process)
        audit = f"{self.work}/audit-{setup_name}.jsonl"
        if os.path.exists(audit):
            os.remove(audit)

    # Loads ---------------------------------------------------------------------------

    def endpoint(self, setup):
        """(port, scheme) clients use for the setup."""
        tls = setup.get("tls", False)
        if setup["kind"] == "direct":
            port = configs.BACKEND_TLS_PORT if tls else configs.BACKEND_PORT
        elif setup["kind"] == "nginx":
            port = configs.NGINX_TLS_PORT if tls else (configs.NGINX_H2_PORT if setup.get("http2") else configs.NGINX_PORT)
        elif setup["kind"] == "passthrough":
            # Only HTTP/1.1 without TLS, because the pass-through has no TLS or HTTP/2 listener.
            port = configs.PASSTHROUGH_PORT
        else:
            port = configs.PROXY_PORT
        return port, ("https" if tls else "http")

    def token_file(self, setup, part):
        algorithm = setup.get("token")
        if not algorithm:
            return None
        return f"{self.work}/cold-{algorithm}-{part}.txt"

    def closed_loop(self, setup, connections, part):
        port, scheme = self.endpoint(setup)
        url = f"{scheme}://localhost:{port}{loads.DOC_PATH}" if scheme == "https" else f"http://127.0.0.1:{port}{loads.DOC_PATH}"
        tokens = self.token_file(setup, part)
        if setup.get("http2"):
            headers = BASE_HEADERS + [f"authorization: Bearer {self.cached_token}"]
            return loads.run_h2load(url, connections, self.trial_seconds, headers)
        if tokens:
            script = os.path.join(os.path.dirname(__file__), "cold.lua")
            return loads.run_wrk(url, connections, self.trial_seconds, BASE_HEADERS, script=script, script_args=(tokens, "2"))
        headers = BASE_HEADERS + [f"Authorization: Bearer {self.cached_token}"]
        return loads.run_wrk(url, connections, self.trial_seconds, headers)

    def open_loop(self, setup, rate, part="c"):
        port, _scheme = self.endpoint(setup)
        tokens = self.token_file(setup, part)
        headers = list(BASE_HEADERS)
        if not tokens:
            headers.append(f"authorization: Bearer {self.cached_token}")
        tls_ca = f"{self.work}/ca.pem" if setup.get("tls") else None
        return loads.run_driver(self.bin, port, loads.DOC_PATH, rate, self.trial_seconds, 32, headers,
                                tls_ca=tls_ca, http2=setup.get("http2", False), tokens=tokens)

    def warm_up(self, setup):
        port, _ = self.endpoint(setup)
        headers = BASE_HEADERS + [f"authorization: Bearer {self.cached_token}"]
        tls_ca = f"{self.work}/ca.pem" if setup.get("tls") else None
        loads.run_driver(self.bin, port, loads.DOC_PATH, None, 0.3, 8, headers, tls_ca=tls_ca, http2=setup.get("http2", False))

    @staticmethod
    def with_cpu(load, before, after):
        user = after[0] - before[0]
        system = after[1] - before[1]
        requests = load.get("requests") or 0
        if requests:
            load["cpu_us_per_request"] = (user + system) / requests * 1e6
            load["user_us_per_request"] = user / requests * 1e6
            load["system_us_per_request"] = system / requests * 1e6
        return load

    # Phases --------------------------------------------------------------------------

    def measured_pids(self, setup, proxy):
        if setup["kind"] == "direct":
            return [(self.tls_backend if setup.get("tls") else self.backend).pid]
        if setup["kind"] == "nginx":
            return self.nginx_pids()
        if setup["kind"] == "passthrough":
            return [self.passthrough.pid]
        return [proxy.pid]

    def run_trial(self, setup, round_index):
        proxy = None
        if setup["kind"] == "cg":
            proxy, reason = self.start_proxy(setup)
            if proxy is None:
                self.results["not_measured"][setup["name"]] = reason
                self.log(f"{setup['name']}: not measured: {reason[:200]}")
                return
        try:
            self.warm_up(setup)
            pids = self.measured_pids(setup, proxy)
            trial = {"setup": setup["name"], "round": round_index}
            for connections, part in ((16, "a"), (64, "b")):
                before = cpu_seconds(pids)
                load = self.closed_loop(setup, connections, part)
                trial[f"closed_{connections}"] = self.with_cpu(load, before, cpu_seconds(pids))
            before = cpu_seconds(pids)
            load = self.open_loop(setup, self.rate)
            trial["open"] = self.with_cpu(load, before, cpu_seconds(pids))
            trial["peak_rss_kib"] = status_kib(pids, "VmHWM")
            trial["rss_kib"] = status_kib(pids, "VmRSS")
            self.results["trials"].append(trial)
            closed = trial["closed_64"].get("requests_per_second", 0)
            p50 = trial["open"].get("service_us", {}).get("p50", float("nan"))
            self.log(f"{setup['name']} round {round_index}: {closed:.0f} req/s at 64 connections, p50 {p50:.0f} us at {self.rate}/s")
        finally:
            if proxy is not None:
                self.stop_proxy(proxy, setup["name"])

    def run_rounds(self):
        setups = [setup for setup in SETUPS if not self.args.only or setup["name"] in self.args.only]
        if self.args.baseline_binary:
            setups.append(BASELINE_SETUP)
        for round_index in range(self.rounds):
            shift = round_index % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                if setup["name"] in self.results["not_measured"]:
                    continue
                self.run_trial(setup, round_index)

    def run_sweep(self):
        rates = [1000, 2000, 4000] if self.quick else [1000, 2000, 4000, 6000, 8000]
        by_name = {setup["name"]: setup for setup in SETUPS}
        for rate in rates:
            for name in SWEEP_SETUPS:
                setup = by_name[name]
                proxy = None
                if setup["kind"] == "cg":
                    proxy, reason = self.start_proxy(setup)
                    if proxy is None:
                        continue
                try:
                    self.warm_up(setup)
                    pids = self.measured_pids(setup, proxy)
                    before = cpu_seconds(pids)
                    load = self.open_loop(setup, rate)
                    load = self.with_cpu(load, before, cpu_seconds(pids))
                    load.update({"setup": name, "rate": rate})
                    self.results["sweep"].append(load)
                finally:
                    if proxy is not None:
                        self.stop_proxy(proxy, name)
            self.log(f"sweep at {rate}/s done")

    def run_memory(self):
        memory = self.results["memory"]
        setup = {"name": "cg-memory", "kind": "cg", "rules": 100}
        proxy, reason = self.start_proxy(setup)
        if proxy is None:
            memory["error"] = reason
            return
        try:
            self.warm_up({"kind": "cg"})
            time.sleep(0.5)
            memory["idle_rss_kib"] = status_kib([proxy.pid], "VmRSS")
            memory["idle_connections"] = self.idle_connections(configs.PROXY_PORT, [proxy.pid], with_token=True)
            memory["download"] = self.stream(proxy.pid, "/dbs/bench/colls/large/docs", None)
            memory["upload"] = self.stream(proxy.pid, "/dbs/bench/colls/sink/sprocs/big", 256 * 1024 * 1024)
        finally:
            self.stop_proxy(proxy, setup["name"])
        tls_setup = {"name": "cg-memory-tls", "kind": "cg", "rules": 100, "tls": True}
        proxy, reason = self.start_proxy(tls_setup)
        if proxy is None:
            memory["idle_connections_tls"] = {"error": reason}
        else:
            try:
                memory["idle_connections_tls"] = self.idle_connections(configs.PROXY_PORT, [proxy.pid], with_token=True,
                                                                       tls_ca=f"{self.work}/ca.pem")
            finally:
                self.stop_proxy(proxy, tls_setup["name"])
        memory["nginx_idle_connections"] = self.idle_connections(configs.NGINX_PORT, None, with_token=True)

    def idle_connections(self, port, pids, with_token, tls_ca=None):
        count = 2000 if self.quick else 10000
        headers = list(BASE_HEADERS)
        if with_token:
            headers.append(f"authorization: Bearer {self.cached_token}")
        argv = [self.bin, "--threads", "2", "idle", "--address", f"127.0.0.1:{port}", "--path", loads.DOC_PATH,
                "--connections", str(count), "--hold", "60"]
        if tls_ca:
            argv += ["--tls-ca", tls_ca]
        for header in headers:
            argv += ["--header", header]
        process = self.processes.start("idle", argv, f"{self.work}/idle.log", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            line = process.stdout.readline().decode()
            report = json.loads(line) if line.strip() else {"error": "no report"}
            time.sleep(1.0)
            measured = pids if pids is not None else self.nginx_pids()
            report["rss_kib"] = status_kib(measured, "VmRSS")
            report["requested"] = count
            if pids is not None:
                # Idle connections release their buffers after a moment, and the allocator
                # returns freed pages in the background, so RSS is read a second time.
                time.sleep(IDLE_SETTLE_SECONDS)
                report["settled_rss_kib"] = status_kib(measured, "VmRSS")
                report["settle_seconds"] = IDLE_SETTLE_SECONDS
            process.stdin.write(b"\n")
            process.stdin.flush()
        finally:
            self.processes.stop(process)
        return report

    def stream(self, pid, path, upload_bytes):
        baseline = status_kib([pid], "VmRSS")
        peak = [baseline]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status_kib([pid], "VmRSS"))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        argv = [self.bin, "--threads", "1", "stream", "--address", f"127.0.0.1:{configs.PROXY_PORT}", "--path", path,
                "--header", f"authorization: Bearer {self.cached_token}", "--header", f"x-ms-documentdb-partitionkey: {loads.PARTITION_KEY}"]
        if upload_bytes:
            argv += ["--upload-bytes", str(upload_bytes)]
        try:
            completed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        finally:
            done.set()
            sampler.join()
        report = json.loads(completed.stdout.strip().splitlines()[-1]) if completed.returncode == 0 else {"error": completed.stderr[-400:]}
        report.update({"baseline_rss_kib": baseline, "peak_rss_kib": peak[0], "growth_kib": peak[0] - baseline})
        return report

    def run_profiles(self):
        profiles = self.results["profiles"]
        setup = {"name": "cg-profile", "kind": "cg", "rules": 100}
        profiles["strace_proxy"] = self.strace_proxy(setup)
        profiles["strace_nginx"] = self.strace_nginx()
        if not self.args.skip_callgrind:
            profiles["callgrind_proxy"] = self.callgrind_proxy(setup)

    def strace_proxy(self, setup):
        output = f"{self.work}/strace-proxy.txt"
        proxy, reason = self.start_proxy(setup, wrapper=("strace", "-c", "-f", "-o", output), ready_timeout=30)
        if proxy is None:
            return {"error": reason}
        try:
            load = self.short_load(configs.PROXY_PORT)
            # Stop the proxy itself: strace then writes its summary and exits.
            for child in child_pids(proxy.pid):
                os.kill(child, 15)
            proxy.wait(timeout=30)
        finally:
            self.stop_proxy(proxy, setup["name"])
        return {"requests": load.get("requests", 0), "table": parse_strace(output)}

    def strace_nginx(self):
        self.processes.stop(self.nginx)
        output = f"{self.work}/strace-nginx.txt"
        conf = configs.write_nginx(self.work, workers=2)
        self.nginx = self.processes.start("nginx", ["strace", "-c", "-f", "-o", output, "nginx", "-c", conf, "-p", self.work],
                                          f"{self.work}/nginx.log")
        if not wait_port("127.0.0.1", configs.NGINX_PORT, 20, self.nginx):
            return {"error": "nginx under strace did not start"}
        load = self.short_load(configs.NGINX_PORT)
        master = child_pids(self.nginx.pid)
        for pid in master:
            os.kill(pid, 3)  # SIGQUIT: graceful nginx shutdown
        self.nginx.wait(timeout=30)
        self.processes.stop(self.nginx)
        self.start_nginx()
        return {"requests": load.get("requests", 0), "table": parse_strace(output)}

    def short_load(self, port):
        headers = BASE_HEADERS + [f"authorization: Bearer {self.cached_token}"]
        return loads.run_driver(self.bin, port, loads.DOC_PATH, None, 3, 16, headers)

    def callgrind_proxy(self, setup):
        output = f"{self.work}/callgrind.out"
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}")
        proxy, reason = self.start_proxy(setup, wrapper=wrapper, ready_timeout=120)
        if proxy is None:
            return {"error": reason}
        try:
            headers = BASE_HEADERS + [f"authorization: Bearer {self.cached_token}"]
            loads.run_driver(self.bin, configs.PROXY_PORT, loads.DOC_PATH, None, 2, 4, headers)
            subprocess.run(["callgrind_control", "-i", "on", str(proxy.pid)], capture_output=True, timeout=60)
            load = loads.run_driver(self.bin, configs.PROXY_PORT, loads.DOC_PATH, None, 4 if self.quick else 10, 4, headers)
            subprocess.run(["callgrind_control", "-i", "off", str(proxy.pid)], capture_output=True, timeout=60)
        finally:
            self.stop_proxy(proxy, setup["name"])
        files = sorted(glob.glob(output + "*"))
        if not files:
            return {"error": "callgrind wrote no output"}
        annotate = subprocess.run(["callgrind_annotate", "--threshold=99", files[-1]], capture_output=True, text=True).stdout
        annotate_inclusive = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99", files[-1]],
                                            capture_output=True, text=True).stdout
        calls = parse_callgrind_calls(files[-1])
        return {"requests": load.get("requests", 0), "self": parse_callgrind(annotate), "inclusive": parse_callgrind(annotate_inclusive),
                "allocations": calls_to(calls, ALLOCATING_FUNCTIONS), "frees": calls_to(calls, FREEING_FUNCTIONS),
                "task_polls": calls_to(calls, TASK_POLL_FUNCTIONS),
                "allocating_callers": callers_of(calls, ALLOCATING_FUNCTIONS)[:25]}

    def run_criterion(self):
        home = f"{self.work}/criterion"
        env = dict(os.environ, CRITERION_HOME=home)
        warm, measure = ("0.3", "0.7") if self.quick else ("1", "3")
        for executable in self.args.criterion:
            self.log(f"criterion: {os.path.basename(executable)}")
            subprocess.run([executable, "--bench", "--warm-up-time", warm, "--measurement-time", measure, "--noplot"],
                           env=env, stdout=open(f"{self.work}/criterion.log", "a"), stderr=subprocess.STDOUT, timeout=900)
        estimates = {}
        for path in glob.glob(f"{home}/**/new/benchmark.json", recursive=True):
            with open(path) as file:
                benchmark = json.load(file)
            with open(os.path.join(os.path.dirname(path), "estimates.json")) as file:
                estimate = json.load(file)
            estimates[benchmark["full_id"]] = {
                "median_ns": estimate["median"]["point_estimate"],
                "median_low_ns": estimate["median"]["confidence_interval"]["lower_bound"],
                "median_high_ns": estimate["median"]["confidence_interval"]["upper_bound"],
                "mean_ns": estimate["mean"]["point_estimate"],
            }
        self.results["criterion"] = estimates


def parse_strace(path):
    rows = []
    try:
        text = open(path).read()
    except OSError:
        return rows
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]) and fields[-1] != "total":
            calls = int(fields[3])
            rows.append({"syscall": fields[-1], "calls": calls, "seconds": float(fields[1])})
    return rows


# The allocator's entry points as callgrind names them (jemalloc's prefixed symbols, or
# glibc's in a build without jemalloc), and tokio's task poll, each run of a woken task.
ALLOCATING_FUNCTIONS = re.compile(r"^(_rjem_)?(malloc|calloc|realloc|mallocx|rallocx)$")
FREEING_FUNCTIONS = re.compile(r"^(_rjem_)?(free|sdallocx|dallocx)$")
TASK_POLL_FUNCTIONS = re.compile(r"^tokio::runtime::task::raw::poll$")


def parse_callgrind_calls(path):
    """Reads the call counts of a callgrind output file: {(caller, callee): calls}."""
    names = {}
    calls = {}
    caller = callee = None
    with open(path, errors="replace") as file:
        for line in file:
            match = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if match:
                kind, ident, name = match.groups()
                if name:
                    names[ident] = name
                if kind == "fn":
                    caller = ident
                else:
                    callee = ident
                continue
            if line.startswith("calls=") and callee is not None:
                key = (caller, callee)
                calls[key] = calls.get(key, 0) + int(line[len("calls="):].split()[0])
    return {(names.get(caller, caller), names.get(callee, callee)): count for (caller, callee), count in calls.items()}


def calls_to(calls, pattern):
    return sum(count for (_caller, callee), count in calls.items() if pattern.search(callee))


def callers_of(calls, pattern):
    """Returns [{"function", "calls"}] of the callers of matching functions, most calls first."""
    by_caller = {}
    for (caller, callee), count in calls.items():
        if pattern.search(callee):
            by_caller[caller] = by_caller.get(caller, 0) + count
    return [{"function": name, "calls": count} for name, count in sorted(by_caller.items(), key=lambda item: -item[1])]


def parse_callgrind(text):
    rows = []
    total = None
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$", line)
        if match:
            instructions = int(match.group(1).replace(",", ""))
            name = match.group(3)
            if "PROGRAM TOTALS" in name:
                total = instructions
                continue
            rows.append({"instructions": instructions, "percent": float(match.group(2)), "function": name})
    return {"total": total, "rows": rows[:80]}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", required=True, help="the run's temporary directory, with keys, tokens and policies")
    parser.add_argument("--bench-binary", required=True)
    parser.add_argument("--proxy-binary", required=True)
    parser.add_argument("--criterion", nargs="*", default=[], help="criterion bench executables")
    parser.add_argument("--quick", action="store_true", help="one round of short trials")
    parser.add_argument("--rate", type=int, default=2000, help="offered load, requests/s, for the fixed-load latency")
    parser.add_argument("--only", nargs="*", help="measure only these setups")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--baseline-binary", help="an earlier cosmoguard build, measured as its own setup")
    parser.add_argument("--rounds-only", action="store_true", help="skip the sweep, memory and profile phases")
    parser.add_argument("--memory-only", action="store_true", help="run only the memory phase")
    parser.add_argument("--profiles-only", action="store_true", help="run only the strace and callgrind profiles")
    parser.add_argument("--rounds", type=int, help="number of rounds (default 3, or 1 with --quick)")
    parser.add_argument("--output", required=True, help="where to write the results JSON")
    parser.add_argument("--meta", required=True, help="a JSON file of machine and version facts")
    args = parser.parse_args()

    suite = Suite(args)
    suite.results["meta"] = json.load(open(args.meta))
    suite.results["meta"].update({"quick": args.quick, "rate": args.rate, "rounds": suite.rounds,
                                  "trial_seconds": suite.trial_seconds})
    try:
        suite.start_fixed_servers()
        if suite.args.memory_only:
            suite.run_memory()
            return
        if suite.args.profiles_only:
            suite.run_profiles()
            return
        if suite.args.criterion:
            suite.run_criterion()
        suite.log("load rounds")
        suite.run_rounds()
        if suite.args.rounds_only:
            return
        suite.log("latency sweep")
        suite.run_sweep()
        suite.log("memory")
        suite.run_memory()
        suite.log("profiles")
        suite.run_profiles()
    finally:
        suite.processes.stop_all()
        with open(args.output, "w") as file:
            json.dump(suite.results, file, indent=1)
    suite.log(f"results in {args.output}")


if __name__ == "__main__":
    sys.exit(main())
