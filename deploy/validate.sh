#!/usr/bin/env bash
# Validate everything under deploy/ offline, for CI and before a release:
#   1. Kubernetes manifests (deploy/kubernetes): kustomization file lists, rendering with
#      `kubectl kustomize`, strict schema validation with kubernetes-validate (built-in
#      kinds) and deploy/schemas (ServiceMonitor), cross-checks between the objects and
#      the Cosmoguard configuration, and `cosmoguard check` on the rendered ConfigMap.
#   2. `cosmoguard check --skip-missing-files` on every configuration file under deploy/.
#   3. `promtool check rules` on Prometheus rule files under deploy/observability.
# Exits 1 when any check fails, after running them all.
#
# Usage: deploy/validate.sh
# Environment:
#   COSMOGUARD_BIN       the binary to check configurations with
#                        (default: target/debug/cosmoguard; build it with
#                        `cargo build -p cosmoguard`)
#   KUBERNETES_VERSIONS  versions to validate against (default: "1.30 1.37"). 1.30 is the
#                        oldest with the preStop sleep action on by default.
# The first run installs deploy/requirements.txt into deploy/.venv from PyPI; later runs
# need no network.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deploy_dir="$repo_root/deploy"
cosmoguard_bin="${COSMOGUARD_BIN:-$repo_root/target/debug/cosmoguard}"
kubernetes_versions="${KUBERNETES_VERSIONS:-1.30 1.37}"
failures=0

log() { printf 'validate: %s\n' "$*"; }

if [[ ! -x $cosmoguard_bin ]]; then
    log "error: $cosmoguard_bin not found; run 'cargo build -p cosmoguard' or set COSMOGUARD_BIN" >&2
    exit 1
fi
if ! "$cosmoguard_bin" check --help | grep -q -- '--skip-missing-files'; then
    log "error: $cosmoguard_bin has no 'check --skip-missing-files'; rebuild it from this tree" >&2
    exit 1
fi

# Python environment with kubernetes-validate, rebuilt only when requirements.txt changes.
venv="$deploy_dir/.venv"
requirements_hash="$(sha256sum "$deploy_dir/requirements.txt" | cut -d' ' -f1)"
venv_stamp="$venv/.cosmoguard-install-stamp"
if [[ ! -x $venv/bin/python ]]; then
    log "creating the Python virtual environment $venv"
    python3 -m venv "$venv"
fi
if [[ ! -f $venv_stamp || $(cat "$venv_stamp") != "$requirements_hash" ]]; then
    log "installing Python packages into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$deploy_dir/requirements.txt"
    printf '%s\n' "$requirements_hash" >"$venv_stamp"
fi

log "checking Kubernetes manifests and configurations"
if ! "$venv/bin/python" "$deploy_dir/validate_manifests.py" \
    --cosmoguard "$cosmoguard_bin" --kubernetes-versions "$kubernetes_versions"; then
    failures=$((failures + 1))
fi

# Prometheus rule files: YAML files with a top-level `groups:` key.
observability_dir="$deploy_dir/observability"
if [[ -d $observability_dir ]]; then
    mapfile -t rule_files < <(grep -rlE --include='*.yml' --include='*.yaml' '^groups:' "$observability_dir" | sort)
    if ((${#rule_files[@]} == 0)); then
        log "no Prometheus rule files under deploy/observability"
    elif ! command -v promtool >/dev/null 2>&1; then
        log "error: promtool not found; install Debian's prometheus package (tests/install.sh does)" >&2
        failures=$((failures + 1))
    elif ! promtool check rules "${rule_files[@]}"; then
        failures=$((failures + 1))
    fi
else
    log "no deploy/observability directory; no alert rules to check"
fi

if ((failures > 0)); then
    log "FAILED: $failures of the checks above failed"
    exit 1
fi
log "all checks passed"
