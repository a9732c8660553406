"""Writes bench/RESULTS.md and the PNG plots from the suite's results JSON."""

import argparse
import json
import os
import re
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from suite import BASELINE_SETUP, SETUPS, SWEEP_SETUPS  # noqa: E402

LABELS = {setup["name"]: setup["label"] for setup in [*SETUPS, BASELINE_SETUP]}



def tls_idle_text(connections):
    """Describes the idle TLS connections measurement, when the run has one."""
    if not connections or "rss_kib" not in connections:
        return "- Idle TLS connections: not measured in this run."
    return (f"- With {connections.get('open', 0):,} idle keep-alive TLS connections: "
            f"{connections['rss_kib'] / 1024:,.1f} MiB RSS one second after the last one opened"
            f"{settled_text(connections)}.")


def settled_text(connections):
    """Describes the second RSS reading of the idle connections, taken once the proxy has
    released idle connections and returned freed memory, when the run has one."""
    if "settled_rss_kib" not in connections:
        return ""
    return (f", and {connections['settled_rss_kib'] / 1024:,.1f} MiB after "
            f"{connections.get('settle_seconds', 0):.0f} s more")

def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def spread(values):
    values = [value for value in values if value is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def number(value, digits=0, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def summarize(results):
    summary = {}
    for setup in [*SETUPS, BASELINE_SETUP]:
        trials = [trial for trial in results["trials"] if trial["setup"] == setup["name"]]
        if not trials:
            continue

        def pick(section, *keys):
            values = []
            for trial in trials:
                value = trial.get(section, {})
                for key in keys:
                    value = value.get(key) if isinstance(value, dict) else None
                values.append(value)
            return values

        summary[setup["name"]] = {
            "rounds": len(trials),
            "rps16": pick("closed_16", "requests_per_second"),
            "rps64": pick("closed_64", "requests_per_second"),
            "cpu64": median(pick("closed_64", "cpu_us_per_request")),
            "user64": median(pick("closed_64", "user_us_per_request")),
            "system64": median(pick("closed_64", "system_us_per_request")),
            "cpu_open": median(pick("open", "cpu_us_per_request")),
            "user_open": median(pick("open", "user_us_per_request")),
            "system_open": median(pick("open", "system_us_per_request")),
            "p50": median(pick("open", "service_us", "p50")),
            "p99": median(pick("open", "service_us", "p99")),
            "p999": median(pick("open", "service_us", "p999")),
            "corrected_p99": median(pick("open", "corrected_us", "p99")),
            "achieved_rate": median(pick("open", "requests_per_second")),
            "peak_rss_mib": max((trial.get("peak_rss_kib") or 0) for trial in trials) / 1024,
            "tool_errors": [trial[section]["error"][:200] for trial in trials for section in ("closed_16", "closed_64", "open")
                            if "error" in trial.get(section, {})],
            "failures": sum((trial.get(section, {}).get("errors") or 0) + (trial.get(section, {}).get("non_success") or 0)
                            for trial in trials for section in ("closed_16", "closed_64", "open")),
        }
    return summary


def verdict(ok):
    if ok is None:
        return "not measured"
    return "met" if ok else "**missed**"


def criterion_median(results, key):
    entry = results.get("criterion", {}).get(key)
    return entry["median_ns"] if entry else None


def format_ns(value):
    if value is None:
        return "n/a"
    if value >= 1000:
        return f"{value / 1000:,.2f} µs"
    return f"{value:,.0f} ns"


def passthrough_floor_row(cg, nginx, passthrough):
    """Returns an informational targets row that compares the minimal hyper pass-through's CPU
    per request at 64 connections with nginx's and with Cosmoguard's. Returns None when the
    pass-through or nginx was not measured."""
    if not passthrough or not nginx or passthrough["cpu64"] is None or nginx["cpu64"] is None:
        return None
    floor = passthrough["cpu64"]
    figure = f"{number(floor, 1)} µs vs nginx {number(nginx['cpu64'], 1)} µs ({number(floor / nginx['cpu64'], 2)}×)"
    if cg and cg["cpu64"] is not None:
        figure += f"; Cosmoguard {number(cg['cpu64'], 1)} µs, {number(cg['cpu64'] - floor, 1)} µs above the floor"
    return ("Minimal hyper pass-through's CPU per request against nginx's (at 64 connections, saturated)",
            figure, "informational")


def target_rows(results, summary):
    rows = []
    cg, nginx, direct = summary.get("cg-cached"), summary.get("nginx"), summary.get("direct")
    if cg and nginx:
        for key, where in (("cpu_open", f"at {results['meta']['rate']:,} requests/s"), ("cpu64", "at 64 connections, saturated")):
            ok = None if cg[key] is None or nginx[key] is None else cg[key] <= nginx[key]
            rows.append((f"CPU per request ≤ nginx's ({where})", f"{number(cg[key], 1)} µs vs nginx {number(nginx[key], 1)} µs "
                         f"({number(cg[key] / nginx[key] if cg[key] and nginx[key] else None, 2)}×)", verdict(ok)))
        ours, theirs = median(cg["rps64"]), median(nginx["rps64"])
        ratio = ours / theirs if ours and theirs else None
        rows.append(("Requests/s at 64 connections ≥ 0.95 × nginx",
                     f"{number(ours)} vs {number(theirs)} ({number(ratio, 2)}×)", verdict(None if ratio is None else ratio >= 0.95)))
    passthrough_row = passthrough_floor_row(cg, nginx, summary.get("passthrough"))
    if passthrough_row:
        rows.append(passthrough_row)
    if cg and direct and cg["p50"] is not None and direct["p50"] is not None:
        added50 = cg["p50"] - direct["p50"]
        added99 = cg["p99"] - direct["p99"]
        rows.append((f"Added p50 latency over direct at {results['meta']['rate']:,}/s < 100 µs",
                     f"{added50:,.0f} µs ({cg['p50']:,.0f} vs {direct['p50']:,.0f})", verdict(added50 < 100)))
        rows.append((f"Added p99 latency over direct at {results['meta']['rate']:,}/s < 500 µs",
                     f"{added99:,.0f} µs ({cg['p99']:,.0f} vs {direct['p99']:,.0f})", verdict(added99 < 500)))
    memory = results.get("memory", {})
    if "idle_rss_kib" in memory:
        idle = memory["idle_rss_kib"] / 1024
        rows.append(("RSS idle < 40 MiB", f"{idle:.1f} MiB", verdict(idle < 40)))
    connections = memory.get("idle_connections", {})
    if "rss_kib" in connections:
        rss = connections["rss_kib"] / 1024
        rows.append((f"RSS with {connections.get('requested', 0):,} idle connections < 150 MiB",
                     f"{rss:.1f} MiB ({connections.get('open', 0):,} open, {connections.get('failed', 0)} failed{settled_text(connections)})", verdict(rss < 150)))
    tls_connections = memory.get("idle_connections_tls", {})
    if "rss_kib" in tls_connections:
        # SDKs reach the proxy over TLS, so the same bound is shown for TLS connections.
        rss = tls_connections["rss_kib"] / 1024
        rows.append((f"RSS with {tls_connections.get('requested', 0):,} idle TLS connections < 150 MiB",
                     f"{rss:.1f} MiB ({tls_connections.get('open', 0):,} open, {tls_connections.get('failed', 0)} failed{settled_text(tls_connections)})", verdict(rss < 150)))
    for direction in ("download", "upload"):
        stream = memory.get(direction, {})
        if "growth_kib" in stream:
            growth = stream["growth_kib"] / 1024
            moved = max(stream.get("bytes_received", 0), stream.get("bytes_sent", 0)) / 2**20
            rows.append((f"RSS growth streaming 256 MiB ({direction}) < 16 MiB",
                         f"{growth:.1f} MiB ({moved:.0f} MiB moved, status {stream.get('status')})", verdict(growth < 16)))
    for algorithm in ("RS256", "ES256"):
        bare = criterion_median(results, f"token_validation/jsonwebtoken/{algorithm}")
        cold = criterion_median(results, f"token_validation/cosmoguard_cold/{algorithm}")
        cached = criterion_median(results, f"token_validation/cosmoguard_cached/{algorithm}")
        if bare and cold:
            rows.append((f"Cold {algorithm} validation ≤ 1.2 × bare jsonwebtoken",
                         f"{format_ns(cold)} vs {format_ns(bare)} ({cold / bare:.2f}×)", verdict(cold / bare <= 1.2)))
        if cached:
            rows.append((f"Cached {algorithm} validation median < 1 µs", format_ns(cached), verdict(cached < 1000)))
    for request in ("read_allowed_by_last_rule", "query_allowed_by_group", "read_denied_no_rule"):
        ours = criterion_median(results, f"policy_decision/cosmoguard/{request}/1000")
        if ours:
            rows.append((f"Policy decision at 1,000 rules < 1 µs ({request})", format_ns(ours), verdict(ours < 1000)))
    for size in (10, 100, 1000):
        ratios = []
        for request in ("read_allowed_by_last_rule", "query_allowed_by_group", "read_denied_no_rule"):
            ours = criterion_median(results, f"policy_decision/cosmoguard/{request}/{size}")
            cedar = criterion_median(results, f"policy_decision/cedar/{request}/{size}")
            if ours and cedar:
                ratios.append(cedar / ours)
        if ratios:
            rows.append((f"Policy ≥ 4× faster than Cedar at {size:,} rules (each request)",
                         f"{min(ratios):.1f}× to {max(ratios):.1f}× faster", verdict(min(ratios) >= 4)))
    return rows


def plot_sweep(results, path):
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharex=True)
    for name in SWEEP_SETUPS:
        points = sorted((entry for entry in results["sweep"] if entry["setup"] == name and "service_us" in entry),
                        key=lambda entry: entry["rate"])
        if not points:
            continue
        rates = [entry["rate"] for entry in points]
        for axis, key in zip(axes, ("p50", "p99", "p999")):
            axis.plot(rates, [entry["service_us"][key] for entry in points], marker="o", label=LABELS.get(name, name))
    for axis, title in zip(axes, ("p50", "p99", "p99.9")):
        axis.set_title(f"{title} latency")
        axis.set_xlabel("offered load (requests/s, open loop)")
        axis.set_ylabel("µs")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_cpu(summary, path):
    names = [name for name in LABELS if name in summary and summary[name]["cpu64"] is not None]
    figure, axes = plt.subplots(1, 2, figsize=(15, 5), sharey=True)
    for axis, (user_key, system_key, title) in zip(axes, (("user64", "system64", "64 connections, saturated"),
                                                          ("user_open", "system_open", "fixed offered load"))):
        users = [summary[name][user_key] or 0 for name in names]
        systems = [summary[name][system_key] or 0 for name in names]
        positions = range(len(names))
        axis.barh(positions, users, label="user")
        axis.barh(positions, systems, left=users, label="system")
        axis.set_yticks(list(positions), [LABELS[name] for name in names], fontsize=8)
        axis.set_xlabel("CPU µs per request of the server process (utime + stime)")
        axis.set_title(title)
        axis.grid(True, axis="x", alpha=0.3)
    # The axes share y, so one inversion puts the first setup at the top of both.
    axes[0].invert_yaxis()
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def setup_table(results, summary):
    direct = summary.get("direct", {})
    lines = [
        "| Setup | Rounds | req/s, 16 conn. | req/s, 64 conn. | p50 µs | p99 µs | p99.9 µs | added p50 / p99 µs | CPU µs/req at load (user+sys) | CPU µs/req, 64 conn. | peak RSS MiB | failed requests |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        added = "—"
        if direct and name != "direct" and row["p50"] is not None and direct.get("p50") is not None:
            added = f"{row['p50'] - direct['p50']:,.0f} / {row['p99'] - direct['p99']:,.0f}"
        lines.append(
            f"| {LABELS[name]} | {row['rounds']} | {spread(row['rps16'])} | {spread(row['rps64'])} | {number(row['p50'])} | "
            f"{number(row['p99'])} | {number(row['p999'])} | {added} | {number(row['cpu_open'], 1)} "
            f"({number(row['user_open'], 1)}+{number(row['system_open'], 1)}) | {number(row['cpu64'], 1)} "
            f"({number(row['user64'], 1)}+{number(row['system64'], 1)}) | {row['peak_rss_mib']:.1f} | {row['failures']} |"
        )
    return "\n".join(lines)


def criterion_tables(results):
    estimates = results.get("criterion", {})
    lines = ["| Benchmark | Median | 95% interval of the median |", "|---|---|---|"]
    for key in sorted(estimates):
        if key.startswith("policy_decision/"):
            continue
        entry = estimates[key]
        lines.append(f"| `{key}` | {format_ns(entry['median_ns'])} | {format_ns(entry['median_low_ns'])} – {format_ns(entry['median_high_ns'])} |")
    policy = ["| Request | Rules | Cosmoguard | Cedar | Cedar ÷ Cosmoguard |", "|---|---|---|---|---|"]
    for request in ("read_allowed_by_last_rule", "query_allowed_by_group", "read_denied_no_rule"):
        for size in (10, 100, 1000):
            ours = criterion_median(results, f"policy_decision/cosmoguard/{request}/{size}")
            cedar = criterion_median(results, f"policy_decision/cedar/{request}/{size}")
            if ours is None or cedar is None:
                continue
            policy.append(f"| {request} | {size:,} | {format_ns(ours)} | {format_ns(cedar)} | {cedar / ours:.1f}× |")
    return "\n".join(lines), "\n".join(policy)


def strace_table(profiles):
    proxy = profiles.get("strace_proxy", {})
    nginx = profiles.get("strace_nginx", {})
    if not proxy.get("table"):
        return "strace was not run."
    per_request = {}
    for label, data in (("proxy", proxy), ("nginx", nginx)):
        requests = data.get("requests") or 0
        for row in data.get("table", []):
            per_request.setdefault(row["syscall"], {})[label] = row["calls"] / requests if requests else None
    order = sorted(per_request, key=lambda name: -(per_request[name].get("proxy") or 0))[:14]
    lines = [f"Requests in the traced runs: Cosmoguard {proxy.get('requests', 0):,}, nginx {nginx.get('requests', 0):,} "
             "(16 connections, closed loop, 3 s, under `strace -c -f`).", "",
             "| System call | Cosmoguard calls/request | nginx calls/request |", "|---|---|---|"]
    for name in order:
        lines.append(f"| `{name}` | {number(per_request[name].get('proxy'), 2)} | {number(per_request[name].get('nginx'), 2)} |")
    totals = {label: sum(row["calls"] for row in data.get("table", [])) / (data.get("requests") or 1)
              for label, data in (("proxy", proxy), ("nginx", nginx))}
    lines.append(f"| all | {totals['proxy']:.2f} | {totals['nginx']:.2f} |")
    return "\n".join(lines)


def short_function(name):
    """Drops callgrind's source-file prefix and object suffix from a function name."""
    name = re.sub(r"\s*\[[^\]]*\]$", "", name)
    return re.sub(r"^(\S*?\.(rs|c|h|S)|\?\?\?):", "", name)


def callgrind_section(profiles):
    data = profiles.get("callgrind_proxy")
    if not data:
        return "callgrind was not run."
    if "error" in data:
        return f"callgrind failed: {data['error'][:300]}"
    requests = data.get("requests") or 1
    total = data["self"].get("total") or 0
    lines = [f"{requests:,} requests (4 connections, closed loop) with instrumentation on after start-up: "
             f"{total / requests:,.0f} user-space instructions per request in the proxy. Top functions by own (exclusive) cost:", "",
             "| Instructions/request | Share | Function |", "|---|---|---|"]
    for row in data["self"]["rows"][:25]:
        lines.append(f"| {row['instructions'] / requests:,.0f} | {row['percent']:.1f}% | `{clip(short_function(row['function']))}` |")
    lines += ["", "Cosmoguard's own functions by inclusive cost (their callees included):", "",
              "| Instructions/request | Share | Function |", "|---|---|---|"]
    seen = set()
    for row in data["inclusive"]["rows"]:
        function = short_function(row["function"])
        if not function.startswith("cosmoguard::") or function in seen:
            continue
        seen.add(function)
        lines.append(f"| {row['instructions'] / requests:,.0f} | {row['percent']:.1f}% | `{clip(function)}` |")
        if len(seen) >= 15:
            break
    lines += ["", allocation_section(data, requests)]
    return "\n".join(lines)


def allocation_section(data, requests):
    """Heap allocations and task polls per request, from the callgrind run's call counts."""
    if "allocations" not in data:
        return "The callgrind run did not count calls."
    lines = [f"Per request the proxy made {data['allocations'] / requests:.1f} heap allocations "
             f"({data['frees'] / requests:.1f} frees) and {data['task_polls'] / requests:.1f} task polls "
             "(each run of a woken Tokio task), counted as calls in the same run. Allocations by calling function:", "",
             "| Allocations/request | Calling function |", "|---|---|"]
    for row in data.get("allocating_callers", [])[:15]:
        per_request = row["calls"] / requests
        if per_request < 0.5:
            break
        lines.append(f"| {per_request:.1f} | `{clip(short_function(row['function']))}` |")
    return "\n".join(lines)


def clip(function):
    function = function.replace("|", "\\|")
    return function if len(function) <= 120 else function[:117] + "..."


def print_summary(results):
    """Prints the load figures of a partial run, one setup per line."""
    summary = summarize(results)
    print(f"{'setup':<16} {'req/s 16':>22} {'req/s 64':>22} {'CPU µs, 64 (user+sys)':>22} {'CPU µs at rate':>15} "
          f"{'p50':>6} {'p99':>6}")
    for name, row in summary.items():
        cpu64 = f"{number(row['cpu64'], 1)} ({number(row['user64'], 1)}+{number(row['system64'], 1)})"
        print(f"{name:<16} {spread(row['rps16']):>22} {spread(row['rps64']):>22} {cpu64:>22} "
              f"{number(row['cpu_open'], 1):>15} {number(row['p50']):>6} {number(row['p99']):>6}")
    if results.get("memory"):
        print(json.dumps(results["memory"], indent=1))
    profiles = results.get("profiles")
    if profiles:
        print(strace_table(profiles))
        print(callgrind_section(profiles))
    for name, reason in results.get("not_measured", {}).items():
        print(f"{name}: not measured: {reason[:300]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", required=True)
    parser.add_argument("--output", help="where to write the results page")
    parser.add_argument("--plots", help="the directory for the PNG plots")
    parser.add_argument("--summary", action="store_true", help="print the main figures instead of writing the page")
    args = parser.parse_args()
    results = json.load(open(args.results))
    if args.summary:
        print_summary(results)
        return
    if not args.output or not args.plots:
        parser.error("--output and --plots are required unless --summary is given")
    meta = results["meta"]
    summary = summarize(results)
    os.makedirs(args.plots, exist_ok=True)
    plot_sweep(results, os.path.join(args.plots, "latency_vs_load.png"))
    plot_cpu(summary, os.path.join(args.plots, "cpu_per_request.png"))
    plots_relative = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.output)))

    micro, policy = criterion_tables(results)
    table = setup_table(results, summary)
    memory = results.get("memory", {})
    nginx_idle = memory.get("nginx_idle_connections", {})
    not_measured = "\n".join(f"- {LABELS.get(name, name)}: not measured. The proxy {reason[:400]}" for name, reason in
                             results.get("not_measured", {}).items()) or "Every setup was measured."
    notes_path = os.path.join(os.path.dirname(__file__), "notes.md")
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""

    text = f"""# Cosmoguard benchmark results

Written by `bench/suite/report.py` from the run below; the raw figures are in `bench/results.json`.

- Command: `{meta['command']}` ({'quick mode: one round of short trials' if meta['quick'] else 'full mode'}: {meta['rounds']} round(s) of {meta['trial_seconds']} s trials)
- Date: {meta['date']}; load average at start {' '.join(meta['load_average'])}
- Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB, Linux {meta['kernel']}
- Versions: {meta['rustc']}; {meta['nginx']}; {meta['wrk']}; {meta['h2load']}

Every process runs on this one machine and talks over 127.0.0.1: the load tool, the server
under test and the Cosmos-shaped backend (`cosmoguard-bench backend`, 2 Tokio threads) share
the 2 cores, so absolute figures are low and every setup pays the same tax. Each round runs
one trial of every setup, in an order rotated per round, and a fresh Cosmoguard process is
started for each trial (so cold-token trials start with an empty token cache).

## Targets

| Target | Figure | Verdict |
|---|---|---|
""" + "\n".join(f"| {name} | {figure} | {result} |" for name, figure, result in target_rows(results, summary)) + f"""

## Setups side by side

Requests are point reads (`GET /dbs/bench/colls/items/docs/doc1`, about 400 bytes of JSON
with the service's headers) with a bearer token. Throughput: closed loop, `wrk -t 2` for
HTTP/1.1 and `h2load -t 2 -m 1` for HTTP/2, median over rounds (min–max in brackets).
Latency: open loop at {meta['rate']:,} requests/s over 32 connections from
`cosmoguard-bench load`, measured from the moment each request is written; median of the
rounds' percentiles. CPU: utime + stime of the server process (nginx: master and workers;
direct: the backend) from `/proc/PID/stat` before and after, divided by the requests of that
run; the clock tick is 10 ms. nginx runs 2 workers with upstream keep-alive and a buffered
access log (`buffer=64k`), and Cosmoguard its default 2 connection workers (one per CPU) with an audit log file.
The minimal hyper pass-through (`cosmoguard-bench passthrough`, 2 Tokio threads) forwards
HTTP/1.1 over a pool of kept-alive upstream connections and does nothing else, so its CPU per
request is what hyper, Tokio and the sockets cost a proxy built on them before any work of its
own. It has no TLS or HTTP/2 rows.

{table}

The cold-token rows' closed-loop figures are lower bounds: each run has 20,000 distinct
tokens, wrk stops a thread when its share is used, and wrk divides by the whole 4 s, so
about 5,000 requests/s is the most those rows can show. Their latency and CPU per request
are measured like the others. Their peak RSS includes the token cache, which keeps every
verified token (60,000 per trial here).

{not_measured}

![CPU per request]({plots_relative}/cpu_per_request.png)

## Latency against offered load

Open loop, one trial per rate and setup, interleaved by rate.

![Latency percentiles against offered load]({plots_relative}/latency_vs_load.png)

## Memory

- Idle, after start-up and a short warm-up: {number(memory.get('idle_rss_kib', 0) / 1024, 1)} MiB RSS.
- With {memory.get('idle_connections', {}).get('open', 0):,} idle keep-alive connections (one request each, then idle):
  {number(memory.get('idle_connections', {}).get('rss_kib', 0) / 1024, 1)} MiB RSS one second after the last one opened{settled_text(memory.get('idle_connections', {}))}; nginx with the same
  load: {number(nginx_idle.get('rss_kib', 0) / 1024, 1)} MiB (master and workers).
{tls_idle_text(memory.get('idle_connections_tls'))}
- Streaming a 256 MiB feed response: RSS {number(memory.get('download', {}).get('baseline_rss_kib', 0) / 1024, 1)} MiB before,
  {number(memory.get('download', {}).get('peak_rss_kib', 0) / 1024, 1)} MiB at peak, in {number(memory.get('download', {}).get('seconds'), 2)} s.
- Streaming a 256 MiB request body: RSS {number(memory.get('upload', {}).get('baseline_rss_kib', 0) / 1024, 1)} MiB before,
  {number(memory.get('upload', {}).get('peak_rss_kib', 0) / 1024, 1)} MiB at peak, in {number(memory.get('upload', {}).get('seconds'), 2)} s.

RSS is sampled from `/proc/PID/status` every 10 ms while the body streams. The upload is a
stored procedure execution (`POST /dbs/bench/colls/sink/sprocs/big`): the proxy reads create,
upsert and replace bodies (up to 4 MiB) to check the ids they name, so those cannot carry
256 MiB, and Cosmos DB itself limits a document to 2 MiB.
{memory.get('rerun_note', '')}

## Micro-benchmarks (criterion)

`cargo bench -p cosmoguard-bench`; medians of criterion's samples.

{micro}

### Policy decisions against Cedar

The same generated description is written as a Cosmoguard policy and as Cedar policies
(`bench/src/policy_gen.rs`): exact-subject, group, subject-glob and deny rules in turn, with
the request's allowing rule last. Both engines are checked to reach the same decision before
timing. Cedar gets its request and entities built outside the timed loop.

{policy}

## Profiles

### System calls

{strace_table(results.get('profiles', {}))}

### Where the proxy's user-space instructions go (callgrind)

`perf stat` reports counters as not supported on this machine, so the profile is
`valgrind --tool=callgrind`, which counts instructions but not kernel time.

{callgrind_section(results.get('profiles', {}))}

{notes}
"""
    with open(args.output, "w") as file:
        file.write(text)


if __name__ == "__main__":
    main()
