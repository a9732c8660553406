#!/usr/bin/env bash
# Install what the end-to-end tests and the demo need, on Debian 12 as root:
#   - Debian packages: prometheus (promtool and a Prometheus server), python3-venv, nodejs,
#     stunnel4 (the TLS terminator in front of the OTLP receiver in e2e/test_telemetry.py)
#   - tests/node_modules from tests/package-lock.json (npm ci)
#   - tests/.venv from tests/requirements.txt
# With --without-prometheus it skips the prometheus package. deploy/demo.sh passes it,
# because only the tests use promtool and the Prometheus server (tests/e2e/test_admin.py,
# and deploy/validate.sh for `promtool check rules`).
# Safe to run again: each step runs only when its result is missing or out of date.
set -euo pipefail

tests_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
min_node_major=20
min_node_minor=19

log() { printf 'install: %s\n' "$*"; }
fail() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

with_prometheus=1
for argument in "$@"; do
    case $argument in
        --without-prometheus) with_prometheus=0 ;;
        *) fail "unknown argument $argument; the only option is --without-prometheus" ;;
    esac
done

# Debian packages, keyed by the command that shows each one is present.
declare -A package_for_command=(
    [node]=nodejs
    [npm]=npm
    [python3]=python3
    [stunnel4]=stunnel4
)
if ((with_prometheus == 1)); then
    package_for_command[promtool]=prometheus
    package_for_command[prometheus]=prometheus
fi

missing_packages=()
for command in "${!package_for_command[@]}"; do
    if ! command -v "$command" >/dev/null 2>&1; then
        missing_packages+=("${package_for_command[$command]}")
    fi
done
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing_packages+=(python3-venv)
fi

if ((${#missing_packages[@]} > 0)); then
    mapfile -t missing_packages < <(printf '%s\n' "${missing_packages[@]}" | sort -u)
    if [[ $(id -u) -ne 0 ]]; then
        fail "missing Debian packages: ${missing_packages[*]}; run this script as root or install them"
    fi
    log "installing Debian packages: ${missing_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # NOTE: on a machine that runs systemd, the prometheus package also enables and starts a
    # prometheus service on port 9090. The tests start their own server and do not use it.
    apt-get install -y -q --no-install-recommends "${missing_packages[@]}"
fi

# oauth2-mock-server 8 needs Node.js 20.19 or newer. Debian 12's own nodejs is 18, so a
# machine with only that one needs a newer Node.js from elsewhere.
node_version="$(node --version)"
node_version="${node_version#v}"
IFS=. read -r node_major node_minor _ <<<"$node_version"
if ((node_major < min_node_major || (node_major == min_node_major && node_minor < min_node_minor))); then
    fail "Node.js $node_version is too old: the tests need $min_node_major.$min_node_minor or newer"
fi

# npm packages: reinstall only when package-lock.json changed since the last install.
lock_hash="$(sha256sum "$tests_dir/package-lock.json" | cut -d' ' -f1)"
npm_stamp="$tests_dir/node_modules/.cosmoguard-install-stamp"
if [[ ! -f $npm_stamp || $(cat "$npm_stamp") != "$lock_hash" ]]; then
    log "installing npm packages into $tests_dir/node_modules"
    (cd "$tests_dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$lock_hash" >"$npm_stamp"
else
    log "npm packages are up to date"
fi

# Python virtual environment: rebuild the package set only when requirements.txt changed.
venv="$tests_dir/.venv"
requirements_hash="$(sha256sum "$tests_dir/requirements.txt" | cut -d' ' -f1)"
venv_stamp="$venv/.cosmoguard-install-stamp"
if [[ ! -x $venv/bin/python ]]; then
    log "creating the Python virtual environment $venv"
    python3 -m venv "$venv"
fi
if [[ ! -f $venv_stamp || $(cat "$venv_stamp") != "$requirements_hash" ]]; then
    log "installing Python packages into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$tests_dir/requirements.txt"
    printf '%s\n' "$requirements_hash" >"$venv_stamp"
else
    log "Python packages are up to date"
fi

log "done"
