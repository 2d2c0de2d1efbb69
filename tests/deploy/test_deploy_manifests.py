"""Kubernetes manifests: schema validity, and the settings the deployment promises."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from deploy_support import (
    APP_ENV_VARS,
    BASE,
    CACHE_MOUNT,
    CONFIG_DIR_VAR,
    CONFIG_MOUNT,
    K8S,
    MANAGED_COMPONENT,
    METRICS_PORT,
    OVERLAYS,
    PLACEHOLDER,
    SECRET_ENV_VARS,
    SERVER_UID,
    all_containers,
    container,
    container_environment,
    find,
    find_generated,
    kinds,
    load_app_config_module,
    load_yaml_documents,
    pod_spec,
    pod_template,
    quantity_bytes,
    quantity_millicores,
    render,
    workloads,
)

Resources = list[dict[str, Any]]

# Oldest Kubernetes minor the manifests must work on, and the newest the package ships.
MIN_SCHEMA_VERSION = "1.30"
SCHEMA_VERSIONS = [MIN_SCHEMA_VERSION, kubernetes_validate.utils.latest_version()]
NAMESPACES = {"base": "nexus", "dev": "nexus-dev", "prod": "nexus"}
JOB_NAMES = {"base": "nexus-migrate", "dev": "nexus-migrate-dev", "prod": "nexus-migrate-1.0.0"}
SERVER_LABELS = {"app.kubernetes.io/name": "nexus", "app.kubernetes.io/component": "server"}
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
KUBERNETES_KINDS_BASE = {
    "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Deployment", "Service", "Ingress",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Job", "StatefulSet",
    "CronJob", "PersistentVolumeClaim",
}


def server(resources: Resources) -> dict[str, Any]:
    return find(resources, "Deployment", "nexus")


def config_map(resources: Resources) -> dict[str, str]:
    data: dict[str, str] = find_generated(resources, "ConfigMap", "nexus-config")["data"]
    return data


def migrate_job(resources: Resources) -> dict[str, Any]:
    [job] = [r for r in resources if r["kind"] == "Job" and r["metadata"]["name"].startswith("nexus-migrate")]
    return job


def validate(resource: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        pytest.fail(f"{name} is invalid for Kubernetes {version} at {where}: {error.message}")


def with_managed_component(tmp_path: Path, overlay: str) -> Resources:
    """Render a throw-away overlay: the given one plus the managed-data component."""
    directory = tmp_path / f"{overlay}-managed"
    directory.mkdir()
    overlay_path, component = (os.path.relpath(path, directory) for path in (OVERLAYS[overlay], MANAGED_COMPONENT))
    (directory / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {overlay_path}\ncomponents:\n  - {component}\n"
    )
    return render(directory)


# --- files and schemas ---------------------------------------------------------------

def referenced_files() -> set[Path]:
    """Every file a kustomization or component under deploy/k8s points at."""
    files: set[Path] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = load_yaml_documents(kustomization)[0]
        files.add(kustomization)
        for entry in spec.get("resources", []):
            if (kustomization.parent / entry).is_file():
                files.add((kustomization.parent / entry).resolve())
        for patch in spec.get("patches", []):
            if "path" in patch:
                files.add((kustomization.parent / patch["path"]).resolve())
        for generator in spec.get("configMapGenerator", []):
            files.update((kustomization.parent / env).resolve() for env in generator.get("envs", []))
    return {path.resolve() for path in files}


def test_every_yaml_file_parses_and_is_used() -> None:
    yaml_files = sorted(K8S.rglob("*.yaml"))
    assert len(yaml_files) >= 20
    for path in yaml_files:
        assert load_yaml_documents(path), f"{path} is empty"
    orphans = {path.resolve() for path in [*yaml_files, *K8S.rglob("*.env")]} - referenced_files()
    assert not orphans, f"files no kustomization uses: {sorted(map(str, orphans))}"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_base_manifest_files_validate(version: str, no_network: None) -> None:
    spec = load_yaml_documents(BASE / "kustomization.yaml")[0]
    count = 0
    for entry in spec["resources"]:
        for resource in load_yaml_documents(BASE / entry):
            validate(resource, version)
            count += 1
    assert count == 20


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rendered_overlays_validate(overlay: str, version: str, rendered: dict[str, Resources],
                                    no_network: None) -> None:
    for resource in rendered[overlay]:
        validate(resource, version)


def test_schema_validation_rejects_a_broken_manifest(rendered: dict[str, Resources], no_network: None) -> None:
    deployment = server(rendered["base"])
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, MIN_SCHEMA_VERSION, strict=True)
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, MIN_SCHEMA_VERSION, strict=True)


# --- inventory and namespaces ----------------------------------------------------------

def test_base_holds_every_resource_of_the_stack(rendered: dict[str, Resources]) -> None:
    base = rendered["base"]
    assert KUBERNETES_KINDS_BASE <= kinds(base)
    for kind, name in [("ServiceAccount", "nexus"), ("Service", "nexus"), ("Ingress", "nexus"),
                       ("HorizontalPodAutoscaler", "nexus"), ("PodDisruptionBudget", "nexus"),
                       ("NetworkPolicy", "nexus"), ("Job", "nexus-migrate"), ("Secret", "nexus-secrets"),
                       ("Ingress", "nexus-restricted"), ("CronJob", "nexus-postgres-backup"),
                       ("PersistentVolumeClaim", "nexus-postgres-backup"),
                       ("StatefulSet", "nexus-postgres"), ("Service", "nexus-postgres"),
                       ("Deployment", "nexus-redis"), ("Service", "nexus-redis")]:
        find(base, kind, name)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_everything_lands_in_the_overlay_namespace(overlay: str, rendered: dict[str, Resources]) -> None:
    namespace = NAMESPACES[overlay]
    resources = rendered[overlay]
    assert [r["metadata"]["name"] for r in resources if r["kind"] == "Namespace"] == [namespace]
    assert resources[0]["kind"] == "Namespace", "the namespace must be created first"
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace") == namespace, resource["metadata"]["name"]


def test_namespace_enforces_restricted_pod_security(rendered: dict[str, Resources]) -> None:
    labels = find(rendered["base"], "Namespace", "nexus")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# --- the server Deployment -------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rolling_update(overlay: str, rendered: dict[str, Resources]) -> None:
    deployment = server(rendered[overlay])
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert deployment["spec"]["revisionHistoryLimit"] >= 3, "rollback needs history"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_probes(overlay: str, rendered: dict[str, Resources]) -> None:
    nexus = container(server(rendered[overlay]), "nexus")
    port_names = {port["name"] for port in nexus["ports"]}
    assert nexus["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert nexus["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert nexus["startupProbe"]["httpGet"]["path"] == "/health/live"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert nexus[probe]["httpGet"]["port"] in port_names | {3000}
    startup = nexus["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "slow starts must not be killed"
    # The readiness checks time out after 3 s each; the probe must wait longer.
    assert nexus["readinessProbe"]["timeoutSeconds"] > 3


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_ports_match_configuration(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    deployment = server(resources)
    ports = {port["name"]: port["containerPort"] for port in container(deployment, "nexus")["ports"]}
    config = config_map(resources)
    assert ports == {"http": int(config["HTTP_PORT"]), "ws": int(config["WS_PORT"]),
                     "metrics": int(config["METRICS_PORT"])} == {"http": 3000, "ws": 3001, "metrics": METRICS_PORT}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == config["METRICS_PORT"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_base_resources_are_those_of_the_spec(rendered: dict[str, Resources]) -> None:
    resources = container(server(rendered["base"]), "nexus")["resources"]
    assert resources == {"requests": {"cpu": "100m", "memory": "1Gi"},
                         "limits": {"cpu": "1000m", "memory": "1Gi"}}


def test_dev_is_smaller_and_prod_not_smaller_than_base(rendered: dict[str, Resources]) -> None:
    def amounts(overlay: str) -> tuple[int, int, int, int]:
        resources = container(server(rendered[overlay]), "nexus")["resources"]
        return (quantity_millicores(resources["requests"]["cpu"]), quantity_bytes(resources["requests"]["memory"]),
                quantity_millicores(resources["limits"]["cpu"]), quantity_bytes(resources["limits"]["memory"]))

    base, dev, prod = amounts("base"), amounts("dev"), amounts("prod")
    assert all(d < b for d, b in zip(dev, base, strict=True)), (dev, base)
    assert all(p >= b for p, b in zip(prod, base, strict=True)), (prod, base)
    for overlay in OVERLAYS:
        for workload in workloads(rendered[overlay]):
            for item in all_containers(workload):
                requests, limits = item["resources"]["requests"], item["resources"]["limits"]
                assert quantity_millicores(requests["cpu"]) <= quantity_millicores(limits["cpu"])
                # Memory is reserved as it may be used: no pod is OOM-killed for a neighbour.
                assert quantity_bytes(requests["memory"]) == quantity_bytes(limits["memory"]), (
                    overlay, workload["metadata"]["name"], item["name"])


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_graceful_termination_budget(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    deployment = server(resources)
    nexus = container(deployment, "nexus")
    command = nexus["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert 1 <= pause <= 15
    grace = int(config_map(resources)["SHUTDOWN_GRACE_SECONDS"])
    period = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # The kubelet's clock covers the preStop pause and the server's own grace period.
    assert period >= pause + grace + 10, (period, pause, grace)


@pytest.mark.parametrize("overlay", ["base", "dev"])
def test_anti_affinity_prefers_replicas_on_different_nodes(overlay: str, rendered: dict[str, Resources]) -> None:
    deployment = server(rendered[overlay])
    terms = pod_spec(deployment)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert any(term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
               and term["podAffinityTerm"]["labelSelector"]["matchLabels"] == SERVER_LABELS for term in terms)
    assert deployment["spec"]["selector"]["matchLabels"] == SERVER_LABELS
    assert SERVER_LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_cache_and_tmp_volumes(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    deployment = server(resources)
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container(deployment, "nexus")["volumeMounts"]}
    assert config_map(resources)["CACHE_DIR"] == CACHE_MOUNT
    cache = volumes[mounts[CACHE_MOUNT]]["emptyDir"]
    assert cache["medium"] == "Memory"
    cache_limit = quantity_bytes(cache["sizeLimit"])
    assert cache_limit >= int(config_map(resources)["MAX_CACHE_SIZE_MB"]) * 2**20
    memory_limit = quantity_bytes(container(deployment, "nexus")["resources"]["limits"]["memory"])
    assert cache_limit <= memory_limit // 4, "the memory-backed cache counts against the memory limit"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "medium" not in volumes[mounts["/tmp"]]["emptyDir"]


# --- security ------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_pod_meets_the_restricted_profile(overlay: str, rendered: dict[str, Resources]) -> None:
    for workload in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] > 0, name
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert not {"hostNetwork", "hostPID", "hostIPC"} & spec.keys(), name
        assert all("hostPath" not in volume for volume in spec.get("volumes", [])), name
        for item in all_containers(workload):
            security = item["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, (name, item["name"])
            assert security["readOnlyRootFilesystem"] is True, (name, item["name"])
            assert security["capabilities"] == {"drop": ["ALL"]}, (name, item["name"])
            assert security.get("privileged", False) is False, (name, item["name"])
            assert "resources" in item and "limits" in item["resources"], (name, item["name"])


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_nexus_pods_run_as_the_image_user(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    for workload in (server(resources), migrate_job(resources)):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsUser"] == SERVER_UID
        assert spec["securityContext"]["runAsGroup"] == SERVER_UID
        assert spec["serviceAccountName"] == "nexus"
    assert find(resources, "ServiceAccount", "nexus")["automountServiceAccountToken"] is False


# --- configuration ---------------------------------------------------------------------

def nexus_containers(resources: Resources) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    deployment, job = server(resources), migrate_job(resources)
    return [(deployment, container(deployment, "nexus")),
            (deployment, container(deployment, "wait-for-migrations", init=True)),
            (job, container(job, "migrate"))]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_variable_the_app_reads_is_supplied(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    for workload, item in nexus_containers(resources):
        env, files = container_environment(workload, item, resources)
        assert env[CONFIG_DIR_VAR] == CONFIG_MOUNT, item["name"]
        mounts = {mount["mountPath"]: mount for mount in item["volumeMounts"]}
        assert mounts[CONFIG_MOUNT].get("readOnly") is True
        missing = APP_ENV_VARS - env.keys() - files.keys()
        assert not missing, f"{item['name']} in {overlay} does not get {sorted(missing)}"
        # Secrets only as files, never in the environment or a ConfigMap.
        assert SECRET_ENV_VARS <= files.keys(), item["name"]
        assert not SECRET_ENV_VARS & env.keys(), item["name"]
    assert not SECRET_ENV_VARS & config_map(resources).keys()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_config_map_holds_only_known_settings(overlay: str, rendered: dict[str, Resources]) -> None:
    module = load_app_config_module()
    assert module is not None
    known = (APP_ENV_VARS | set(module.setting_names())) - {CONFIG_DIR_VAR}
    keys = set(config_map(rendered[overlay]))
    assert keys <= known, f"settings the app does not read: {sorted(keys - known)}"
    assert all(isinstance(value, str) for value in config_map(rendered[overlay]).values())


def test_announced_variables_match_the_app_config_module() -> None:
    module = load_app_config_module()
    assert module is not None, "nexus/config.py is the contract of the settings (docs/configuration.md)"
    app_names = set(module.setting_names())
    assert APP_ENV_VARS - {CONFIG_DIR_VAR} <= app_names, sorted(APP_ENV_VARS - {CONFIG_DIR_VAR} - app_names)
    # Settings the app added beyond the announced list must work without being supplied.
    secret_or_required = {"JWT_SECRET", "SECRET_KEY"}
    docs = module.setting_docs()
    for name in sorted(app_names - APP_ENV_VARS):
        assert name not in secret_or_required
        default, _ = docs[name]
        assert default is not None, f"{name} has no default and the manifests do not supply it"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rendered_configuration_is_accepted_by_the_app(overlay: str, rendered: dict[str, Resources],
                                                      tmp_path: Path) -> None:
    module = load_app_config_module()
    assert module is not None
    resources = rendered[overlay]
    deployment = server(resources)
    env, files = container_environment(deployment, container(deployment, "nexus"), resources)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    sample_external = {"JWT_SECRET": "x" * 32, "SECRET_KEY": "y" * 50,
                       "DATABASE_URL": "postgres://nexus:pw@db.internal:5432/nexus"}
    for key, value in files.items():
        (config_dir / key).write_text(sample_external[key] if value == "<external>" else value)
    env[CONFIG_DIR_VAR] = str(config_dir)
    if overlay == "base":
        # The base carries secret.yaml's placeholders and DEBUG=false: the server refuses them.
        with pytest.raises(module.ConfigError, match="placeholder"):
            module.load_config(env)
        env["DEBUG"] = "true"
    config = module.load_config(env)
    assert config.CACHE_DIR == CACHE_MOUNT
    assert config.METRICS_PORT == METRICS_PORT
    assert config.HTTP_PORT == 3000 and config.WS_PORT == 3001
    assert config.AUTH_ENABLED is True
    assert config.DEBUG is (overlay != "prod")
    assert config.redis_enabled
    assert config.DATABASE_URL.startswith("postgres://")
    assert config.JWT_SECRET and config.SECRET_KEY


def test_secret_placeholders_are_marked_and_consistent(rendered: dict[str, Resources]) -> None:
    base = rendered["base"]
    app_secret = find(base, "Secret", "nexus-secrets")["stringData"]
    db_secret = find(base, "Secret", "nexus-postgres")["stringData"]
    assert set(app_secret) == SECRET_ENV_VARS
    for value in [app_secret["JWT_SECRET"], app_secret["SECRET_KEY"], db_secret["POSTGRES_PASSWORD"]]:
        assert value.startswith(PLACEHOLDER)
    url = urlsplit(app_secret["DATABASE_URL"])
    assert url.scheme == "postgres"
    assert (url.username, url.password) == (db_secret["POSTGRES_USER"], db_secret["POSTGRES_PASSWORD"])
    assert url.path == f"/{db_secret['POSTGRES_DB']}"
    postgres = find(base, "Service", url.hostname or "")
    assert url.port == postgres["spec"]["ports"][0]["port"] == 5432
    redis_url = urlsplit(config_map(base)["REDIS_URL"])
    assert redis_url.port == find(base, "Service", redis_url.hostname or "")["spec"]["ports"][0]["port"] == 6379


def test_prod_ships_no_placeholder_secrets(rendered: dict[str, Resources]) -> None:
    prod = rendered["prod"]
    assert "Secret" not in kinds(prod), "prod must not overwrite the real Secrets"
    assert PLACEHOLDER not in repr(prod)
    assert PLACEHOLDER in repr(rendered["dev"]), "dev keeps the placeholders so it runs as is"


# --- migrations ----------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_migrations_run_once_in_a_job(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    deployment, job = server(resources), find(resources, "Job", JOB_NAMES[overlay])
    migrate = container(job, "migrate")
    assert migrate["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 3
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    waiter = container(deployment, "wait-for-migrations", init=True)
    assert waiter["args"] == ["wait-for-migrations"]
    nexus = container(deployment, "nexus")
    assert nexus["args"] == ["serve"]
    assert migrate["image"] == waiter["image"] == nexus["image"]
    assert migrate["envFrom"] == nexus["envFrom"] == waiter["envFrom"]
    job_volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    server_volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert job_volumes["config"] == server_volumes["config"]


@pytest.mark.parametrize(("overlay", "image"), [("base", "registry.example.com/nexus:0.1.0"),
                                                ("dev", "nexus:dev"),
                                                ("prod", "registry.example.com/nexus:1.0.0@sha256:")])
def test_images(overlay: str, image: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    for workload, item in nexus_containers(resources):
        assert item["image"].startswith(image), (workload["metadata"]["name"], item["name"])


# --- traffic -------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_service_exposes_both_ports(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    service = find(resources, "Service", "nexus")
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"http": (3000, "http"), "ws": (3001, "ws")}
    assert service["spec"]["selector"] == SERVER_LABELS


@pytest.mark.parametrize(("overlay", "host"), [("base", "nexus.local"), ("dev", "nexus.localtest.me"),
                                               ("prod", "nexus.example.com")])
def test_ingress(overlay: str, host: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    ingress = find(resources, "Ingress", "nexus")
    restricted = find(resources, "Ingress", "nexus-restricted")
    assert restricted["spec"]["rules"][0]["host"] == host
    if overlay == "prod":
        assert restricted["spec"]["tls"] == ingress["spec"]["tls"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert annotations["nginx.org/websocket-services"] == "nexus"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == host
    service_ports = {port["name"] for port in find(resources, "Service", "nexus")["spec"]["ports"]}
    backends = {path["path"]: path["backend"]["service"] for path in rule["http"]["paths"]}
    assert backends["/"] == {"name": "nexus", "port": {"name": "http"}}
    assert all(b["name"] == "nexus" and b["port"]["name"] in service_ports for b in backends.values())
    if overlay == "prod":
        assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "nexus-tls"}]


def test_hpa_and_pdb_are_not_in_dev(rendered: dict[str, Resources]) -> None:
    # One dev replica can neither be scaled between bounds nor kept up through a drain.
    assert "HorizontalPodAutoscaler" not in kinds(rendered["dev"])
    assert "PodDisruptionBudget" not in kinds(rendered["dev"])
    assert server(rendered["dev"])["spec"]["replicas"] == 1


def egress_rule(policy: dict[str, Any], port: int) -> dict[str, Any]:
    rules = [rule for rule in policy["spec"]["egress"] if any(p["port"] == port for p in rule["ports"])]
    assert len(rules) == 1, f"expected one egress rule for port {port}"
    return rules[0]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_network_policy(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    policy = find(resources, "NetworkPolicy", "nexus")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    selector = spec["podSelector"]["matchLabels"]
    for workload in (server(resources), migrate_job(resources), find(resources, "CronJob", "nexus-postgres-backup")):
        assert labels_match(selector, pod_template(workload)["metadata"]["labels"])

    allowed = {}
    for rule in spec["ingress"]:
        [peer] = rule["from"]
        assert set(peer) == {"namespaceSelector"}
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        allowed[namespace] = {(p["protocol"], p["port"]) for p in rule["ports"]}
    # Clients reach the serving ports only; the monitoring stack the metrics port only.
    assert allowed == {"ingress-nginx": {("TCP", 3000), ("TCP", 3001)}, "monitoring": {("TCP", METRICS_PORT)}}

    egress = spec["egress"]
    assert len(egress) == 4
    dns = egress_rule(policy, 53)
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    [dns_peer] = dns["to"]
    assert dns_peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert dns_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}

    for port, workload in ((5432, find(resources, "StatefulSet", "nexus-postgres")),
                           (6379, find(resources, "Deployment", "nexus-redis"))):
        rule = egress_rule(policy, port)
        assert [(p["protocol"], p["port"]) for p in rule["ports"]] == [("TCP", port)]
        [peer] = rule["to"]
        assert set(peer) == {"podSelector"}, "only pods of the own namespace"
        assert labels_match(peer["podSelector"]["matchLabels"], workload["spec"]["template"]["metadata"]["labels"])

    public = egress_rule(policy, 443)
    assert {(p["protocol"], p["port"]) for p in public["ports"]} == {("TCP", 80), ("TCP", 443)}
    [peer] = public["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
    excepted = [ipaddress.ip_network(block) for block in peer["ipBlock"]["except"]]
    for private in PRIVATE_RANGES:
        assert any(ipaddress.ip_network(private).subnet_of(block) for block in excepted), private  # type: ignore[arg-type]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_data_services(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    statefulset = find(resources, "StatefulSet", "nexus-postgres")
    headless = find(resources, "Service", "nexus-postgres")
    assert statefulset["spec"]["serviceName"] == "nexus-postgres"
    assert headless["spec"]["clusterIP"] == "None"
    assert container(statefulset, "postgres")["image"].startswith("postgres:15")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    storage = claim["spec"]["resources"]["requests"]["storage"]
    assert storage == ("1Gi" if overlay == "dev" else "10Gi")
    mounts = {m["name"]: m["mountPath"] for m in container(statefulset, "postgres")["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/postgresql/data"
    redis = find(resources, "Deployment", "nexus-redis")
    assert container(redis, "redis")["image"].startswith("redis:7")
    for workload, service in ((statefulset, headless), (redis, find(resources, "Service", "nexus-redis"))):
        assert labels_match(service["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
        policy = find(resources, "NetworkPolicy", service["metadata"]["name"])
        [rule] = policy["spec"]["ingress"]
        assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nexus"}}}]


# --- managed PostgreSQL / Redis ----------------------------------------------------------

@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_managed_data_component(overlay: str, tmp_path: Path, no_network: None) -> None:
    resources = with_managed_component(tmp_path, overlay)
    for resource in resources:
        validate(resource, MIN_SCHEMA_VERSION)
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    for gone in [("StatefulSet", "nexus-postgres"), ("Service", "nexus-postgres"), ("Deployment", "nexus-redis"),
                 ("Service", "nexus-redis"), ("NetworkPolicy", "nexus-postgres"),
                 ("NetworkPolicy", "nexus-redis"), ("Secret", "nexus-postgres"),
                 ("CronJob", "nexus-postgres-backup"), ("PersistentVolumeClaim", "nexus-postgres-backup")]:
        assert gone not in names
    assert config_map(resources)["REDIS_URL"].startswith("rediss://")
    policy = find(resources, "NetworkPolicy", "nexus")
    for port in (5432, 6379):
        [peer] = egress_rule(policy, port)["to"]
        assert set(peer) == {"ipBlock"}
    assert egress_rule(policy, 443)["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert ("Secret", "nexus-secrets") in names if overlay == "dev" else ("Secret", "nexus-secrets") not in names


def test_managed_component_enabled_inside_the_prod_overlay(tmp_path: Path) -> None:
    """The documented route: uncomment the component in overlays/prod/kustomization.yaml."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kustomization = copy / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text()
    commented = "# components:\n#   - ../../components/managed-data\n"
    assert commented in text
    kustomization.write_text(text.replace(commented, "components:\n  - ../../components/managed-data\n"))
    resources = render(copy / "overlays" / "prod")
    assert "StatefulSet" not in kinds(resources) and "Secret" not in kinds(resources)
    assert "CronJob" not in kinds(resources)
    assert "replicas" not in server(resources)["spec"]


# --- the operator's guide ------------------------------------------------------------------

def test_deployment_guide_covers_operations_and_points_at_real_paths() -> None:
    guide = (K8S.parents[1] / "docs" / "deployment.md").read_text()
    for needle in ["kubectl rollout undo deployment/nexus -n nexus", "### AWS (EKS)", "### Google Cloud (GKE)",
                   "### Azure (AKS)", "maxUnavailable: 0", "preStop", "PodDisruptionBudget", "NEXUS_CONFIG_DIR",
                   "components/managed-data", "3600"]:
        assert needle in guide, needle
    for path in re.findall(r"(?<![\w/])(deploy/[\w./-]+)", guide):
        assert (K8S.parents[1] / path.rstrip(".")).exists(), f"docs/deployment.md names a missing path: {path}"
