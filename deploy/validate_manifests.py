"""Validate Cosmoguard's Kubernetes manifests and configurations offline.

deploy/validate.sh runs this with deploy/.venv's Python. For every kustomization under
deploy/kubernetes it checks the file lists and renders it. Each object is validated against
the Kubernetes JSON schemas of kubernetes-validate (strict: unknown fields are rejected) or
the bundled ServiceMonitor schema. The objects are cross-checked against each other and
against the Cosmoguard configuration in the ConfigMap, and `cosmoguard check` runs on that
configuration. Every *.toml under deploy/ with a [listener] table is checked as well.

Prints one line per finding and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"
KUBERNETES_DIR = DEPLOY_DIR / "kubernetes"
SERVICEMONITOR_SCHEMA = DEPLOY_DIR / "schemas" / "servicemonitor-monitoring-v1.json"
RUN_RS = REPO_ROOT / "proxy" / "src" / "run.rs"

# The image's CMD reads this file (deploy/Dockerfile).
IMAGE_CONFIG_PATH = "/etc/cosmoguard/cosmoguard.toml"
# The service account token file that the AKS workload identity webhook projects.
WORKLOAD_IDENTITY_TOKEN_FILE = "/var/run/secrets/azure/tokens/azure-identity-token"
# Seconds between the proxy's exit after the drain and the kubelet's SIGKILL.
MIN_SHUTDOWN_MARGIN_SECONDS = 1
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class Report:
    """The findings of one run. Any error makes the run fail."""

    def __init__(self) -> None:
        self.error_count = 0

    def error(self, where: str, message: str) -> None:
        self.error_count += 1
        print(f"ERROR {where}: {message}")

    def warn(self, where: str, message: str) -> None:
        print(f"WARN  {where}: {message}")

    def ok(self, where: str, message: str) -> None:
        print(f"OK    {where}: {message}")


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def shutdown_grace_seconds() -> int:
    """Read SHUTDOWN_GRACE from proxy/src/run.rs, so the manifests follow the code."""
    text = RUN_RS.read_text()
    match = re.search(r"const SHUTDOWN_GRACE: Duration = Duration::from_secs\((\d+)\);", text)
    if match is None:
        raise SystemExit(
            f"validate: SHUTDOWN_GRACE not found in {relative(RUN_RS)}; "
            "update shutdown_grace_seconds() in deploy/validate_manifests.py"
        )
    return int(match.group(1))


# ---------------------------------------------------------------------------------------
# Kustomization file lists


def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def check_kustomization_files(directory: Path, report: Report) -> dict:
    """Check that every listed file exists and every YAML file in the directory is listed."""
    path = find_kustomization(directory)
    where = relative(path)
    kustomization = yaml.safe_load(path.read_text()) or {}
    listed: set[Path] = set()

    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            if find_kustomization(target) is None:
                report.error(where, f"resource {entry} is a directory without a kustomization")
        elif not target.is_file():
            report.error(where, f"resource {entry} not found")
        listed.add(target)
    for patch in kustomization.get("patches", []):
        if "path" in patch:
            target = (directory / patch["path"]).resolve()
            if not target.is_file():
                report.error(where, f"patch {patch['path']} not found")
            listed.add(target)
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    ):
        for entry in generator.get("files", []):
            # An entry may be `key=path`.
            file_name = entry.split("=", 1)[-1]
            target = (directory / file_name).resolve()
            if not target.is_file():
                report.error(where, f"generator {generator.get('name')}: file {file_name} not found")
            listed.add(target)

    for candidate in sorted(directory.iterdir()):
        if candidate.suffix in (".yaml", ".yml") and candidate.name not in KUSTOMIZATION_NAMES:
            if candidate.resolve() not in listed:
                report.error(
                    where,
                    f"{candidate.name} is in the directory but not in resources or patches; "
                    "list it or remove it",
                )
    return kustomization


# ---------------------------------------------------------------------------------------
# Rendering


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(directory: Path, report: Report) -> list[dict] | None:
    command = kustomize_command()
    where = relative(directory)
    if command is None:
        return None
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        report.error(where, f"{' '.join(command)} failed: {result.stderr.strip()}")
        return []
    objects = [item for item in yaml.safe_load_all(result.stdout) if item]
    report.ok(where, f"rendered {len(objects)} objects with {' '.join(command)}")
    return objects


def load_plain_resources(directory: Path, kustomization: dict) -> list[dict]:
    """Read the resource files of a kustomization without applying it (no kustomize)."""
    objects = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        if target.is_file():
            objects.extend(item for item in yaml.safe_load_all(target.read_text()) if item)
    return objects


# ---------------------------------------------------------------------------------------
# Schemas


def object_name(item: dict) -> str:
    return f"{item.get('kind')}/{item.get('metadata', {}).get('name')}"


def validate_schemas(where: str, objects: list[dict], versions: list[str], report: Report) -> None:
    servicemonitor_schema = json.loads(SERVICEMONITOR_SCHEMA.read_text())
    for item in objects:
        name = object_name(item)
        if item.get("apiVersion") == "monitoring.coreos.com/v1" and item.get("kind") == "ServiceMonitor":
            errors = list(jsonschema.Draft202012Validator(servicemonitor_schema).iter_errors(item))
            for error in errors:
                path = ".".join(str(part) for part in error.absolute_path)
                report.error(where, f"{name}: {path}: {error.message} (bundled ServiceMonitor schema)")
            if not errors:
                report.ok(where, f"{name} matches the bundled ServiceMonitor schema")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                report.error(where, f"{name}: {path}: {error.message} (Kubernetes {version})")
            except kubernetes_validate.SchemaNotFoundError as error:
                report.error(where, f"{name}: {error.message}; no schema to validate it")
                break
        else:
            report.ok(where, f"{name} is valid for Kubernetes {', '.join(versions)}")


# ---------------------------------------------------------------------------------------
# Cross-checks between objects


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [item for item in objects if item.get("kind") == kind]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def container_ports(container: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports", []) if "name" in port}


def check_deployment(where: str, deployment: dict, grace_seconds: int, report: Report) -> None:
    name = object_name(deployment)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    if not selects(spec["selector"].get("matchLabels", {}), pod_labels):
        report.error(where, f"{name}: spec.selector does not match the pod template labels")
    if "replicas" in spec:
        report.warn(where, f"{name}: spec.replicas is set; each apply resets the autoscaler's count")

    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        report.error(where, f"{name}: securityContext.runAsNonRoot must be true")
    if not isinstance(pod_security.get("runAsUser"), int) or pod_security["runAsUser"] == 0:
        report.error(where, f"{name}: securityContext.runAsUser must be a non-zero uid (65532)")

    for container in pod["containers"]:
        label = f"{name} container {container['name']}"
        security = container.get("securityContext", {})
        seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            report.error(where, f"{label}: seccompProfile must be RuntimeDefault")
        if security.get("readOnlyRootFilesystem") is not True:
            report.error(where, f"{label}: readOnlyRootFilesystem must be true")
        if security.get("allowPrivilegeEscalation") is not False:
            report.error(where, f"{label}: allowPrivilegeEscalation must be false")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            report.error(where, f"{label}: capabilities.drop must be [ALL]")
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(section, {}):
                    report.error(where, f"{label}: resources.{section}.{resource} is missing")

        ports = container_ports(container)
        for probe_name, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            probe = container.get(probe_name, {}).get("httpGet")
            if probe is None:
                report.error(where, f"{label}: {probe_name} must be an httpGet probe on {path}")
                continue
            if probe.get("path") != path:
                report.error(where, f"{label}: {probe_name} path is {probe.get('path')}, expected {path}")
            if probe.get("port") not in ("admin", ports.get("admin")):
                report.error(where, f"{label}: {probe_name} must use the admin port")

        sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        if sleep is None:
            report.error(where, f"{label}: lifecycle.preStop.sleep.seconds is missing")
            sleep = 0
        termination = pod.get("terminationGracePeriodSeconds", 30)
        needed = sleep + grace_seconds + MIN_SHUTDOWN_MARGIN_SECONDS
        if termination < needed:
            report.error(
                where,
                f"{label}: terminationGracePeriodSeconds {termination} is below preStop {sleep} s "
                f"+ drain {grace_seconds} s + margin {MIN_SHUTDOWN_MARGIN_SECONDS} s = {needed} s",
            )
        else:
            report.ok(where, f"{label}: shutdown fits: {sleep} s + {grace_seconds} s drain <= {termination} s")


def check_selectors(where: str, objects: list[dict], report: Report) -> None:
    deployments = by_kind(objects, "Deployment")
    pod_labels = {
        deployment["metadata"]["name"]: deployment["spec"]["template"]["metadata"].get("labels", {})
        for deployment in deployments
    }
    all_ports: dict[str, int] = {}
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            all_ports.update(container_ports(container))

    for service in by_kind(objects, "Service"):
        name = object_name(service)
        selector = service["spec"].get("selector", {})
        if not any(selects(selector, labels) for labels in pod_labels.values()):
            report.error(where, f"{name}: selector matches no Deployment's pods")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and target not in all_ports:
                report.error(where, f"{name}: targetPort {target} is not a named container port")
    for budget in by_kind(objects, "PodDisruptionBudget"):
        selector = budget["spec"].get("selector", {}).get("matchLabels", {})
        if not any(selects(selector, labels) for labels in pod_labels.values()):
            report.error(where, f"{object_name(budget)}: selector matches no Deployment's pods")
    for autoscaler in by_kind(objects, "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment" or target.get("name") not in pod_labels:
            report.error(where, f"{object_name(autoscaler)}: scaleTargetRef names no Deployment here")
        resources = [metric.get("resource", {}).get("name") for metric in autoscaler["spec"].get("metrics", [])]
        if "cpu" not in resources:
            report.error(where, f"{object_name(autoscaler)}: no CPU metric")
    services = by_kind(objects, "Service")
    for monitor in by_kind(objects, "ServiceMonitor"):
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        matched = [service for service in services if selects(selector, service["metadata"].get("labels", {}))]
        if not matched:
            report.error(where, f"{object_name(monitor)}: selector matches no Service")
            continue
        port_names = {port.get("name") for service in matched for port in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if "port" in endpoint and endpoint["port"] not in port_names:
                report.error(where, f"{object_name(monitor)}: port {endpoint['port']} is not a port of {[object_name(s) for s in matched]}")


# ---------------------------------------------------------------------------------------
# The Cosmoguard configuration inside the rendered objects


def run_cosmoguard_check(binary: Path, config: Path, where: str, report: Report, require_policy: bool) -> None:
    result = subprocess.run(
        [str(binary), "check", "--skip-missing-files", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        report.error(where, f"cosmoguard check failed:\n{output}")
    elif require_policy and "not checked" in output:
        report.error(where, f"cosmoguard check did not find the policy file:\n{output}")
    else:
        report.ok(where, "cosmoguard check passed" + (" (policy not present here)" if "not checked" in output else ""))


def socket_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def socket_host(address: str) -> str:
    return address.rsplit(":", 1)[0].strip("[]")


def check_config_against_objects(where: str, config: dict, objects: list[dict], report: Report) -> None:
    deployment = by_kind(objects, "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = container_ports(container)
    mounts = {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    namespace = deployment["metadata"].get("namespace", "default")

    listener_port = socket_port(config["listener"]["address"])
    if ports.get("https") != listener_port:
        report.error(where, f"listener.address port {listener_port} is not the container port https ({ports.get('https')})")
    admin_address = config.get("admin", {}).get("address", "127.0.0.1:9464")
    if ports.get("admin") != socket_port(admin_address):
        report.error(where, f"admin.address port {socket_port(admin_address)} is not the container port admin ({ports.get('admin')})")
    if ipaddress.ip_address(socket_host(admin_address)).is_loopback:
        report.error(where, f"admin.address {admin_address} is loopback; the kubelet's probes cannot reach it")

    config_dir = str(Path(IMAGE_CONFIG_PATH).parent)
    config_mount = mounts.get(config_dir)
    if config_mount is None:
        report.error(where, f"nothing is mounted at {config_dir}, where the image reads its configuration")
    elif "subPath" in config_mount:
        report.error(where, f"the mount at {config_dir} uses subPath, so ConfigMap updates never reach the pod")

    tls = config["listener"].get("tls")
    if tls:
        for key in ("certificate", "private_key"):
            path = Path(config_dir, tls[key])
            mount = next((m for m in mounts.values() if path.is_relative_to(m["mountPath"])), None)
            volume = volumes.get(mount["name"]) if mount else None
            if volume is None or "secret" not in volume:
                report.error(where, f"listener.tls.{key} {path} is not inside a mounted Secret")

    public_url = config["listener"].get("public_url")
    if public_url:
        parts = urlsplit(public_url)
        host = parts.hostname or ""
        if host.endswith(".svc.cluster.local"):
            service_name, service_namespace = host.split(".")[:2]
            port = parts.port or 443
            service = next((s for s in by_kind(objects, "Service") if s["metadata"]["name"] == service_name), None)
            if service is None or service_namespace != namespace:
                report.error(where, f"listener.public_url {public_url} names no Service of namespace {namespace}")
            elif port not in [p["port"] for p in service["spec"]["ports"]]:
                report.error(where, f"listener.public_url port {port} is not a port of Service {service_name}")

    credential = config["upstream"]["credential"]
    env_names = {variable["name"] for variable in container.get("env", [])}
    kind = credential.get("kind")
    if kind == "key" and "key_env" in credential and credential["key_env"] not in env_names:
        report.error(where, f"upstream.credential.key_env {credential['key_env']} is not set in the container")
    if kind == "workload_identity":
        check_workload_identity(where, credential, deployment, objects, report)


def check_workload_identity(where: str, credential: dict, deployment: dict, objects: list[dict], report: Report) -> None:
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    if labels.get("azure.workload.identity/use") != "true":
        report.error(where, 'workload identity needs the pod label azure.workload.identity/use: "true"')
    account_name = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
    account = next((a for a in by_kind(objects, "ServiceAccount") if a["metadata"]["name"] == account_name), None)
    annotation = (account or {}).get("metadata", {}).get("annotations", {}).get("azure.workload.identity/client-id")
    if annotation is None:
        report.error(where, f"ServiceAccount {account_name} lacks the annotation azure.workload.identity/client-id")
    elif "client_id" in credential and credential["client_id"] != annotation:
        report.error(where, f"upstream.credential.client_id {credential['client_id']} differs from the ServiceAccount annotation {annotation}")
    token_file = credential.get("token_file")
    if token_file is not None and token_file != WORKLOAD_IDENTITY_TOKEN_FILE:
        report.error(where, f"upstream.credential.token_file {token_file} is not where the webhook projects the token ({WORKLOAD_IDENTITY_TOKEN_FILE})")


def check_configmaps(where: str, objects: list[dict], binary: Path, report: Report) -> None:
    """Write each ConfigMap that contains a Cosmoguard configuration to a directory and check it."""
    found = False
    for config_map in by_kind(objects, "ConfigMap"):
        data = config_map.get("data", {})
        for key, text in data.items():
            if not key.endswith(".toml"):
                continue
            parsed = tomllib.loads(text)
            if "listener" not in parsed:
                continue
            found = True
            label = f"{where} {object_name(config_map)} {key}"
            with tempfile.TemporaryDirectory(prefix="cosmoguard-validate-") as scratch:
                for name, content in data.items():
                    (Path(scratch) / name).write_text(content)
                run_cosmoguard_check(binary, Path(scratch) / key, label, report, require_policy=True)
            check_config_against_objects(label, parsed, objects, report)
    if not found:
        report.error(where, "no ConfigMap contains a Cosmoguard configuration ([listener] table)")


# ---------------------------------------------------------------------------------------
# Entry point


# A placeholder that a script fills in before use, such as @PROXY_PORT@ in deploy/demo.
TEMPLATE_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
# The value of every @..._PORT@ placeholder: any valid port number passes the check.
PLACEHOLDER_PORT = "1"


def check_template_config(binary: Path, path: Path, report: Report) -> None:
    """Check a configuration template with its port placeholders filled in.

    The template and the other TOML files of its directory (the policy) are copied to a
    scratch directory, so that relative paths resolve as they do next to the template.
    """
    where = relative(path)
    text = path.read_text()
    filled = TEMPLATE_PLACEHOLDER.sub(
        lambda match: PLACEHOLDER_PORT if match.group(1).endswith("_PORT") else match.group(0), text
    )
    remaining = sorted(set(TEMPLATE_PLACEHOLDER.findall(filled)))
    if remaining:
        report.warn(where, f"not checked: placeholders other than ports remain: {', '.join(remaining)}")
        return
    with tempfile.TemporaryDirectory(prefix="cosmoguard-validate-") as scratch:
        for sibling in path.parent.glob("*.toml"):
            shutil.copy(sibling, scratch)
        (Path(scratch) / path.name).write_text(filled)
        run_cosmoguard_check(binary, Path(scratch) / path.name, f"{where} (ports filled in)", report, require_policy=False)


def check_loose_configs(binary: Path, report: Report) -> None:
    """Run `cosmoguard check` on every Cosmoguard configuration file under deploy/."""
    for path in sorted(DEPLOY_DIR.rglob("*.toml")):
        # deploy/demo/.run/ contains the last demo run's filled-in configuration.
        if ".venv" in path.parts or ".run" in path.parts:
            continue
        text = path.read_text()
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            report.error(relative(path), f"invalid TOML: {error}")
            continue
        if "listener" not in parsed:
            continue
        if TEMPLATE_PLACEHOLDER.search(text):
            check_template_config(binary, path, report)
        else:
            run_cosmoguard_check(binary, path, relative(path), report, require_policy=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cosmoguard", type=Path, required=True, help="the cosmoguard binary to run `check` with")
    parser.add_argument(
        "--kubernetes-versions",
        default="1.30 1.37",
        help="space-separated Kubernetes versions to validate against (default: %(default)s)",
    )
    arguments = parser.parse_args()
    versions = arguments.kubernetes_versions.split()
    report = Report()
    grace_seconds = shutdown_grace_seconds()

    directories = sorted({path.parent for name in KUSTOMIZATION_NAMES for path in KUBERNETES_DIR.rglob(name)})
    if not directories:
        report.error(relative(KUBERNETES_DIR), "no kustomization found")
    if kustomize_command() is None:
        report.warn(
            relative(KUBERNETES_DIR),
            "neither kubectl nor kustomize is installed: resource files are validated one by one "
            "and overlays' patches and generated ConfigMaps are not checked",
        )
    for directory in directories:
        where = relative(directory)
        kustomization = check_kustomization_files(directory, report)
        objects = render(directory, report)
        if objects is None:
            validate_schemas(where, load_plain_resources(directory, kustomization), versions, report)
            continue
        validate_schemas(where, objects, versions, report)
        for deployment in by_kind(objects, "Deployment"):
            check_deployment(where, deployment, grace_seconds, report)
        check_selectors(where, objects, report)
        check_configmaps(where, objects, arguments.cosmoguard, report)

    check_loose_configs(arguments.cosmoguard, report)

    if report.error_count:
        print(f"validate_manifests: {report.error_count} errors")
        return 1
    print("validate_manifests: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
