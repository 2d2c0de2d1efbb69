"""Rollout, release and exposure promises of the rendered overlays (`kubectl kustomize`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    DIGEST_PINNED,
    K8S,
    METRICS_PORT,
    OVERLAYS,
    PLACEHOLDER_DIGEST,
    all_containers,
    container,
    find,
    find_generated,
    kinds,
    pod_spec,
    render,
    workloads,
)

Resources = list[dict[str, Any]]
SERVER_LABELS = {"app.kubernetes.io/name": "nexus", "app.kubernetes.io/component": "server"}
# Paths only operators may reach through the edge.
RESTRICTED_PATHS = {"/admin/", "/api/v1/docs/", "/api/v1/schema/", "/metrics"}
ALLOW_LIST = "nginx.ingress.kubernetes.io/whitelist-source-range"


def server(resources: Resources) -> dict[str, Any]:
    return find(resources, "Deployment", "nexus")


def migrate_job(resources: Resources) -> dict[str, Any]:
    [job] = [r for r in resources if r["kind"] == "Job" and r["metadata"]["name"].startswith("nexus-migrate")]
    return job


def copy_of_k8s(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    return copy


# --- scaling and disruption ---------------------------------------------------------------

@pytest.mark.parametrize("overlay", ["base", "prod"])
def test_the_hpa_owns_the_replica_count(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    hpa = find(resources, "HorizontalPodAutoscaler", "nexus")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nexus"}
    assert "replicas" not in server(resources)["spec"], "kubectl apply would reset the HPA's count"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == ({"base": 2, "prod": 3}[overlay], 10)


@pytest.mark.parametrize("overlay", ["base", "prod"])
def test_hpa_scales_on_cpu_and_busy_instances_not_memory(overlay: str, rendered: dict[str, Resources]) -> None:
    metrics = find(rendered[overlay], "HorizontalPodAutoscaler", "nexus")["spec"]["metrics"]
    resource_metrics = {m["resource"]["name"]: m["resource"]["target"] for m in metrics if m["type"] == "Resource"}
    assert resource_metrics == {"cpu": {"type": "Utilization", "averageUtilization": 70}}
    [pods] = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert pods["metric"]["name"] == "nexus_runtime_busy_instances"
    assert pods["target"] == {"type": "AverageValue", "averageValue": "5"}
    # The custom metric exists only through the adapter rule shipped with the monitoring files.
    adapter = (K8S.parent / "monitoring" / "prometheus-adapter.yaml").read_text()
    assert "nexus_runtime_busy_instances" in adapter


@pytest.mark.parametrize("overlay", ["base", "prod"])
def test_pdb_lets_one_pod_go_at_a_time(overlay: str, rendered: dict[str, Resources]) -> None:
    pdb = find(rendered[overlay], "PodDisruptionBudget", "nexus")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SERVER_LABELS}}


def test_prod_placement_is_required_per_revision(rendered: dict[str, Resources]) -> None:
    spec = pod_spec(server(rendered["prod"]))
    [term] = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == SERVER_LABELS
    assert term["matchLabelKeys"] == ["pod-template-hash"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["podAntiAffinity"]
    [spread] = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    assert spread["labelSelector"]["matchLabels"] == SERVER_LABELS


@pytest.mark.parametrize("overlay", ["base", "prod"])
def test_connection_budget_fits_postgres(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    config = find_generated(resources, "ConfigMap", "nexus-config")["data"]
    pool, instances = int(config["DB_POOL_MAX_SIZE"]), int(config["MAX_INSTANCES"])
    assert pool >= instances + 2, "handler segments would wait for a connection before a sandbox"
    args = container(find(resources, "StatefulSet", "nexus-postgres"), "postgres")["args"]
    [max_connections] = [int(arg.split("=")[1]) for arg in args if arg.startswith("max_connections=")]
    max_replicas = find(resources, "HorizontalPodAutoscaler", "nexus")["spec"]["maxReplicas"]
    # Five for the migration Job, the backup, manage.py sessions and reserved slots.
    assert max_replicas * pool + 5 <= max_connections, (max_replicas, pool, max_connections)


# --- configuration as a revision ---------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_config_map_is_generated_and_referenced_by_its_hashed_name(overlay: str,
                                                                  rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    name = find_generated(resources, "ConfigMap", "nexus-config")["metadata"]["name"]
    assert not [r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "nexus-config"]
    for workload in workloads(resources):
        for item in all_containers(workload):
            for source in item.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] == name, (workload["metadata"]["name"], item["name"])


def test_a_changed_setting_is_a_new_config_map_name(tmp_path: Path, rendered: dict[str, Resources]) -> None:
    copy = copy_of_k8s(tmp_path)
    env_file = copy / "overlays" / "prod" / "nexus.env"
    env_file.write_text(env_file.read_text() + "MAX_PANELS=20\n")
    changed = render(copy / "overlays" / "prod")
    before = find_generated(rendered["prod"], "ConfigMap", "nexus-config")["metadata"]["name"]
    after = find_generated(changed, "ConfigMap", "nexus-config")
    assert after["data"]["MAX_PANELS"] == "20"
    assert after["metadata"]["name"] != before
    [source] = container(server(changed), "nexus")["envFrom"]
    assert source["configMapRef"]["name"] == after["metadata"]["name"]


# --- releases -------------------------------------------------------------------------------

def image_tag(image: str) -> str:
    return image.split("@", 1)[0].rsplit(":", 1)[1]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_migration_job_is_named_after_the_release(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    job = migrate_job(resources)
    version = job["metadata"]["labels"]["app.kubernetes.io/version"]
    assert job["metadata"]["name"] == f"nexus-migrate-{version}"
    # The version label and the image tag are the same release.
    assert image_tag(container(job, "migrate")["image"]) == version
    assert image_tag(container(server(resources), "nexus")["image"]) == version


def test_a_new_release_is_a_new_migration_job(tmp_path: Path, rendered: dict[str, Resources]) -> None:
    copy = copy_of_k8s(tmp_path)
    kustomization = copy / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text()
    assert text.count('"1.0.0"') == 2, "the release appears twice: image tag and Job version label"
    kustomization.write_text(text.replace('"1.0.0"', '"1.1.0-rc.1"'))
    job = migrate_job(render(copy / "overlays" / "prod"))
    assert job["metadata"]["name"] == "nexus-migrate-1.1.0-rc.1" != migrate_job(rendered["prod"])["metadata"]["name"]


def test_jobs_of_past_releases_expire(rendered: dict[str, Resources]) -> None:
    spec = migrate_job(rendered["prod"])["spec"]
    assert 86400 <= spec["ttlSecondsAfterFinished"] <= 30 * 86400


def test_prod_images_are_pinned_by_digest(rendered: dict[str, Resources]) -> None:
    images = {item["image"] for workload in workloads(rendered["prod"]) for item in all_containers(workload)}
    assert {image.split("@")[0] for image in images} == {
        "registry.example.com/nexus:1.0.0", "postgres:15-bookworm", "redis:7-bookworm"}
    for image in images:
        assert DIGEST_PINNED.match(image), f"not pinned by digest: {image}"


def test_digest_placeholders_are_the_documented_ones(rendered: dict[str, Resources]) -> None:
    """Placeholders are all-zero digests, never made-up ones that look real."""
    guide = (K8S.parents[1] / "docs" / "deployment.md").read_text()
    assert PLACEHOLDER_DIGEST in guide
    images = [item["image"] for workload in workloads(rendered["prod"]) for item in all_containers(workload)]
    dockerfile = (K8S.parent / "Dockerfile").read_text()
    for digest in {image.split("@")[1] for image in images} | set(re.findall(r"sha256:[0-9a-f]{64}", dockerfile)):
        assert digest == PLACEHOLDER_DIGEST or len(set(digest[7:])) > 4, digest


def test_only_prod_pins_the_data_images(rendered: dict[str, Resources]) -> None:
    """dev and the base run as they are on a laptop cluster: tags, no placeholder digests."""
    for overlay in ("base", "dev"):
        for workload in workloads(rendered[overlay]):
            for item in all_containers(workload):
                assert "@" not in item["image"], (overlay, item["image"])


# --- backups --------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_postgres_is_backed_up_nightly_onto_its_own_volume(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    cronjob = find(resources, "CronJob", "nexus-postgres-backup")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    [dump] = pod_spec(cronjob)["containers"]
    script = dump["args"][0]
    assert "pg_dump --format=custom" in script and "BACKUP_KEEP_DAYS" in script
    assert dump["image"] == container(find(resources, "StatefulSet", "nexus-postgres"), "postgres")["image"]
    volumes = {v["name"]: v for v in pod_spec(cronjob)["volumes"]}
    claim = volumes["backup"]["persistentVolumeClaim"]["claimName"]
    find(resources, "PersistentVolumeClaim", claim)
    assert volumes["credentials"]["secret"]["secretName"] == "nexus-postgres"


def test_postgres_credentials_are_files_not_environment(rendered: dict[str, Resources]) -> None:
    postgres = container(find(rendered["base"], "StatefulSet", "nexus-postgres"), "postgres")
    assert "envFrom" not in postgres
    names = {item["name"] for item in postgres["env"]}
    assert {"POSTGRES_USER_FILE", "POSTGRES_PASSWORD_FILE", "POSTGRES_DB_FILE"} <= names
    assert not {"POSTGRES_PASSWORD", "POSTGRES_USER"} & names


# --- exposure -------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_operator_paths_sit_behind_an_allow_list(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    restricted = find(resources, "Ingress", "nexus-restricted")
    annotations = restricted["metadata"]["annotations"]
    assert annotations[ALLOW_LIST] == "127.0.0.1/32", "deny by default until the operator sets the ranges"
    [rule] = restricted["spec"]["rules"]
    assert {path["path"] for path in rule["http"]["paths"]} == RESTRICTED_PATHS
    public = find(resources, "Ingress", "nexus")
    assert ALLOW_LIST not in public["metadata"]["annotations"]
    assert rule["host"] == public["spec"]["rules"][0]["host"], "same host: the more specific paths win"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_metrics_port_is_neither_in_the_service_nor_routed(overlay: str, rendered: dict[str, Resources]) -> None:
    resources = rendered[overlay]
    service_ports = {port["targetPort"] for port in find(resources, "Service", "nexus")["spec"]["ports"]}
    assert "metrics" not in service_ports and METRICS_PORT not in service_ports
    for ingress in (r for r in resources if r["kind"] == "Ingress"):
        for rule in ingress["spec"]["rules"]:
            assert all(path["backend"]["service"]["port"]["name"] in {"http", "ws"} for path in rule["http"]["paths"])


def test_prod_keeps_every_kind_of_the_base(rendered: dict[str, Resources]) -> None:
    assert kinds(rendered["base"]) - {"Secret"} == kinds(rendered["prod"])
