#!/usr/bin/env bash
# Runs the Cosmoguard benchmark suite on this machine and writes bench/RESULTS.md, the
# plots in bench/plots/ and the raw figures in bench/results.json.
#
#   bash bench/run.sh           # full suite: 3 rounds of 4 s trials, about 15 minutes
#   bash bench/run.sh --quick   # 1 round of 2 s trials, about 3 minutes
#
# Both build first (a fresh build takes several minutes more); --skip-build reuses the
# binaries and the newest criterion bench executables already in target/release.
#
#   bash bench/run.sh --skip-build --only direct,nginx,cg-cached --rounds 2
#
# measures only the named setups (names in bench/suite/suite.py) in the load rounds, skips the
# sweep, memory, profile and criterion phases, prints the figures and leaves RESULTS.md alone:
# the way to compare a change against its baseline. `--baseline BINARY` adds the setup
# `cg-baseline`, an earlier build with the cached-token configuration, to the same rounds.
# `--only memory` and `--only profiles` run the memory or the profile phase alone.
#
# Every server it starts listens on 127.0.0.1 and is stopped by its PID on exit. With
# BENCH_KEEP_WORK=1 the work directory (logs, strace and callgrind output) is kept.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=full
SUITE_ARGS=()
SKIP_BUILD=0
ONLY=""
expect=""
for argument in "$@"; do
    if [[ $expect == only ]]; then ONLY=$argument; expect=""; continue; fi
    if [[ $expect == rounds ]]; then SUITE_ARGS+=(--rounds "$argument"); expect=""; continue; fi
    if [[ $expect == baseline ]]; then SUITE_ARGS+=(--baseline-binary "$argument"); expect=""; continue; fi
    case "$argument" in
        --only) expect=only ;;
        --rounds) expect=rounds ;;
        --baseline) expect=baseline ;;
        --quick) MODE=quick; SUITE_ARGS+=(--quick) ;;
        --skip-callgrind) SUITE_ARGS+=(--skip-callgrind) ;;
        --skip-build) SKIP_BUILD=1 ;;
        *) echo "usage: bash bench/run.sh [--quick] [--skip-callgrind] [--skip-build] [--only SETUP,...] [--rounds N] [--baseline BINARY]" >&2; exit 2 ;;
    esac
done
RATE=2000

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

install_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v h2load >/dev/null || missing+=(nghttp2-client)
    command -v nginx >/dev/null || missing+=(nginx)
    command -v strace >/dev/null || missing+=(strace)
    command -v valgrind >/dev/null || missing+=(valgrind)
    command -v openssl >/dev/null || missing+=(openssl)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    local venv="$ROOT/target/bench-venv"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        log "creating $venv with matplotlib"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q matplotlib
    fi
    PYTHON="$venv/bin/python"
}

build() {
    log "building release binaries"
    (cd "$ROOT" && nice -n 10 cargo build --release -q -p cosmoguard -p cosmoguard-bench)
    log "building criterion benches"
    (cd "$ROOT" && nice -n 10 cargo bench -q -p cosmoguard-bench --no-run --message-format=json) \
        | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable") and "bench" in message["target"]["kind"]:
        print(message["executable"])
' >"$WORK/criterion-executables.txt"
}

make_keys_and_certificates() {
    cd "$WORK"
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem
    openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Cosmoguard bench CA" \
        -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext \
        -out server.pem 2>/dev/null
    printf '%s\n' 'C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==' >account.key
    cd - >/dev/null
}

make_policies_and_tokens() {
    local bench="$ROOT/target/release/cosmoguard-bench"
    for rules in 100 1000; do
        "$bench" policy --rules "$rules" >"$WORK/policy-$rules.toml"
    done
    local issuer="http://127.0.0.1:19110" audience="api://cosmoguard-bench"
    "$bench" mint --key "$WORK/rsa.pem" --algorithm RS256 --issuer "$issuer" --audience "$audience" \
        --count 1 --output "$WORK/token-rs256.txt"
    # Cold-token trials send each token once: parts a and b feed the closed-loop runs at 16
    # and 64 connections, part c the fixed-rate run. A fresh proxy per trial starts with an
    # empty cache, so the same files serve every round.
    local closed open
    if [[ $MODE == quick ]]; then closed=6000; open=$((RATE * 2 + 1000)); else closed=20000; open=$((RATE * 4 + 1000)); fi
    for algorithm in rs256 es256; do
        local key="$WORK/rsa.pem" name=RS256
        if [[ $algorithm == es256 ]]; then key="$WORK/ec.pem"; name=ES256; fi
        log "minting $((2 * closed + open)) $name tokens"
        "$bench" mint --key "$key" --algorithm "$name" --issuer "$issuer" --audience "$audience" \
            --count $((2 * closed + open)) --output "$WORK/cold-$algorithm-all.txt"
        sed -n "1,${closed}p" "$WORK/cold-$algorithm-all.txt" >"$WORK/cold-$algorithm-a.txt"
        sed -n "$((closed + 1)),$((2 * closed))p" "$WORK/cold-$algorithm-all.txt" >"$WORK/cold-$algorithm-b.txt"
        sed -n "$((2 * closed + 1)),\$p" "$WORK/cold-$algorithm-all.txt" >"$WORK/cold-$algorithm-c.txt"
    done
}

write_meta() {
    "$PYTHON" - "$WORK/meta.json" "$MODE" <<'PY'
import json, os, platform, subprocess, sys, datetime
def first_line(argv):
    try:
        completed = subprocess.run(argv, capture_output=True, text=True)
        return (completed.stdout or completed.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "not found"
cpu = "unknown"
with open("/proc/cpuinfo") as file:
    for line in file:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
meta = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "command": "bash bench/run.sh" + (" --quick" if sys.argv[2] == "quick" else ""),
    "cpu": cpu,
    "cores": os.cpu_count(),
    "kernel": platform.release(),
    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "rustc": first_line(["rustc", "--version"]),
    "nginx": first_line(["nginx", "-v"]),
    "wrk": first_line(["wrk", "-v"]),
    "h2load": first_line(["h2load", "--version"]),
    "load_average": open("/proc/loadavg").read().split()[:3],
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
}

SUITE_PID=""
cleanup() {
    local status=$?
    if [[ -n $SUITE_PID ]] && kill -0 "$SUITE_PID" 2>/dev/null; then
        kill -TERM "$SUITE_PID" 2>/dev/null || true
        wait "$SUITE_PID" 2>/dev/null || true
    fi
    if ((status == 0)) && [[ -z ${BENCH_KEEP_WORK:-} ]]; then
        rm -rf "$WORK"
    elif ((status == 0)); then
        echo "work directory kept: $WORK" >&2
    else
        echo "bench run failed (exit $status); logs kept in $WORK" >&2
    fi
}

WORK=$(mktemp -d /tmp/cosmoguard-bench.XXXXXX)
trap cleanup EXIT
# 10,000 idle connections need that many descriptors in the proxy and in the client.
ulimit -n "$(ulimit -Hn)"

install_tools
if ((SKIP_BUILD)); then
    for bench in classify identity policy signing; do
        # The newest build of each bench; head ends the pipe early, which pipefail would
        # report as a failure.
        (set +o pipefail; ls -t "$ROOT"/target/release/deps/"$bench"-* 2>/dev/null | grep -v '\.d$' | head -1)
    done >"$WORK/criterion-executables.txt"
else
    build
fi
make_keys_and_certificates
make_policies_and_tokens
write_meta

log "running the $MODE suite (work directory $WORK)"
mapfile -t CRITERION <"$WORK/criterion-executables.txt"
if [[ -n $ONLY ]]; then
    if [[ $ONLY == memory ]]; then
        SUITE_ARGS+=(--memory-only)
    elif [[ $ONLY == profiles ]]; then
        SUITE_ARGS+=(--profiles-only)
    else
        IFS=, read -r -a names <<<"$ONLY"
        SUITE_ARGS+=(--only "${names[@]}" --rounds-only)
    fi
    CRITERION=()
fi
cd "$ROOT/bench/suite"
"$PYTHON" suite.py --work "$WORK" --bench-binary "$ROOT/target/release/cosmoguard-bench" \
    --proxy-binary "$ROOT/target/release/cosmoguard" --criterion "${CRITERION[@]}" --rate "$RATE" \
    --output "$WORK/results.json" --meta "$WORK/meta.json" "${SUITE_ARGS[@]}" &
SUITE_PID=$!
wait "$SUITE_PID"
SUITE_PID=""

if [[ -n $ONLY ]]; then
    "$PYTHON" report.py --results "$WORK/results.json" --summary
    exit 0
fi
cp "$WORK/results.json" "$ROOT/bench/results.json"
"$PYTHON" report.py --results "$ROOT/bench/results.json" --output "$ROOT/bench/RESULTS.md" --plots "$ROOT/bench/plots"
log "wrote bench/RESULTS.md"
