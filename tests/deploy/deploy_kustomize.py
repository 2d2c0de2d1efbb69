"""A small kustomize-compatible renderer for the manifests under deploy/k8s.

It implements the subset of kustomize the project uses - ``resources`` (files and
directories), ``components``, ``patches`` (strategic merge and JSON 6902, from files or
inline, with or without ``target``), ``namespace``, ``images`` and ``labels`` (metadata
only) - and refuses anything else with a ``KustomizeError`` instead of rendering it
differently from kustomize. Output order follows kustomize's default (``legacy``) order.

Used by the tests (no kustomize binary needed); when ``kubectl`` is present a test also
checks that its output equals ``kubectl kustomize``'s.

    python tests/deploy/deploy_kustomize.py deploy/k8s/overlays/prod   # print the YAML
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import yaml

Resource = dict[str, Any]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "namespace", "resources", "components", "patches", "images", "labels"}
PATCH_FIELDS = {"path", "patch", "target"}
TARGET_FIELDS = {"group", "version", "kind", "name", "namespace"}
IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}

# Strategic-merge keys of the associative lists that may appear in patches here.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
# Lists whose merge key depends on where they sit; not supported rather than guessed.
AMBIGUOUS_LISTS = {"ports"}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "CustomResourceDefinition", "PersistentVolume", "StorageClass",
    "PriorityClass", "IngressClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "APIService", "CSIDriver", "RuntimeClass", "Node",
}
# Kinds whose namespace kustomize also rewrites in nested fields; not supported here.
NAMESPACE_REFERENCING = {"RoleBinding", "ClusterRoleBinding"}
ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition", "ServiceAccount",
    "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ConfigMap", "Secret",
    "Endpoints", "Service", "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim",
    "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class KustomizeError(Exception):
    """The kustomization is invalid or uses a feature this renderer does not implement."""


def render(directory: str | Path) -> list[Resource]:
    """Build the kustomization in ``directory`` the way ``kustomize build`` does."""
    return sorted(_build(Path(directory), "Kustomization"), key=_legacy_order)


def to_yaml(resources: list[Resource]) -> str:
    return yaml.safe_dump_all(resources, sort_keys=True, default_flow_style=False)


def load_documents(path: Path) -> list[Resource]:
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except yaml.YAMLError as exc:
        raise KustomizeError(f"{path}: invalid YAML: {exc}") from None
    for doc in documents:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= doc.keys():
            raise KustomizeError(f"{path}: every document needs apiVersion, kind and metadata")
    return documents


def resource_id(resource: Resource) -> tuple[str, str, str, str]:
    metadata = resource["metadata"]
    return resource["apiVersion"], resource["kind"], metadata.get("namespace", ""), metadata["name"]


# --- kustomizations -------------------------------------------------------------------

def _load_kustomization(directory: Path, kind: str) -> dict[str, Any]:
    for name in KUSTOMIZATION_NAMES:
        path = directory / name
        if path.is_file():
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            break
    else:
        raise KustomizeError(f"{directory}: no kustomization file")
    if spec.get("kind", "Kustomization") != kind:
        raise KustomizeError(f"{directory}: expected a {kind}, found {spec.get('kind')}")
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    return spec


def _build(directory: Path, kind: str, inherited: list[Resource] | None = None) -> list[Resource]:
    spec = _load_kustomization(directory, kind)
    resources = list(inherited or [])
    for entry in spec.get("resources", []):
        target = directory / entry
        if target.is_dir():
            resources.extend(_build(target, "Kustomization"))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    _check_unique(directory, resources)
    for component in spec.get("components", []):
        resources = _build(directory / component, "Component", resources)
    return _transform(directory, spec, resources)


def _check_unique(directory: Path, resources: list[Resource]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for resource in resources:
        key = resource_id(resource)
        if key in seen:
            raise KustomizeError(f"{directory}: resource {key} is declared twice")
        seen.add(key)


def _transform(directory: Path, spec: dict[str, Any], resources: list[Resource]) -> list[Resource]:
    for patch in spec.get("patches", []):
        resources = _apply_patch(directory, patch, resources)
    if "namespace" in spec:
        resources = [_set_namespace(resource, spec["namespace"]) for resource in resources]
    for labels in spec.get("labels", []):
        resources = [_add_labels(resource, labels) for resource in resources]
    for image in spec.get("images", []):
        resources = [_set_image(resource, image) for resource in resources]
    return resources


# --- patches ---------------------------------------------------------------------------

def _apply_patch(directory: Path, entry: dict[str, Any], resources: list[Resource]) -> list[Resource]:
    unknown = set(entry) - PATCH_FIELDS
    if unknown or ("path" in entry) == ("patch" in entry):
        raise KustomizeError(f"{directory}: a patch needs exactly one of path/patch (and optional target)")
    if "path" in entry:
        source = directory / entry["path"]
        text = source.read_text(encoding="utf-8")
    else:
        source, text = directory, entry["patch"]
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    if len(documents) != 1:
        raise KustomizeError(f"{source}: a patch holds exactly one document")
    body = documents[0]
    target = entry.get("target")
    if isinstance(body, list):
        if target is None:
            raise KustomizeError(f"{source}: a JSON 6902 patch needs a target")
        return [_json6902(source, r, body) if _matches(r, target) else r for r in resources]
    if not isinstance(body, dict):
        raise KustomizeError(f"{source}: a patch is a mapping or a list of operations")
    return _strategic_patch(source, body, target, resources)


def _strategic_patch(
    source: Path, body: dict[str, Any], target: dict[str, Any] | None, resources: list[Resource]
) -> list[Resource]:
    if target is None:
        selector = {
            "kind": body.get("kind"),
            "name": body.get("metadata", {}).get("name"),
            **_group_version(body.get("apiVersion", "")),
        }
        if body.get("metadata", {}).get("namespace"):
            selector["namespace"] = body["metadata"]["namespace"]
        if sum(_matches(r, selector, exact=True) for r in resources) != 1:
            raise KustomizeError(f"{source}: the patch does not match exactly one resource")
        target, exact = selector, True
    else:
        exact = False
    result: list[Resource] = []
    for resource in resources:
        if not _matches(resource, target, exact=exact):
            result.append(resource)
        elif body.get("$patch") != "delete":
            result.append(_merge(resource, {k: v for k, v in body.items() if k != "$patch"}, source))
    return result


def _group_version(api_version: str) -> dict[str, str]:
    group, _, version = api_version.rpartition("/")
    return {"group": group, "version": version}


def _matches(resource: Resource, target: dict[str, Any], exact: bool = False) -> bool:
    unknown = set(target) - TARGET_FIELDS
    if unknown:
        raise KustomizeError(f"unsupported patch target fields {sorted(unknown)}")
    actual = {
        "kind": resource["kind"],
        "name": resource["metadata"]["name"],
        "namespace": resource["metadata"].get("namespace", ""),
        **_group_version(resource["apiVersion"]),
    }
    for field, wanted in target.items():
        if wanted is None or (field in ("group", "version") and wanted == "" and not exact):
            continue
        if exact and field in ("group", "version"):
            if wanted != actual[field]:
                return False
        elif not re.fullmatch(str(wanted), actual[field]):
            return False
    return True


def _merge(current: Any, patch: Any, source: Path) -> Any:
    if not isinstance(current, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(current)
    for key, value in patch.items():
        if key.startswith("$"):
            raise KustomizeError(f"{source}: directive {key} is not supported")
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, source)
        elif isinstance(value, list) and key in AMBIGUOUS_LISTS:
            raise KustomizeError(f"{source}: merging '{key}' lists is not supported; use a JSON 6902 patch")
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(merged.get(key), list):
            merged[key] = _merge_list(merged[key], value, MERGE_KEYS[key], source)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_list(current: list[Any], patch: list[Any], merge_key: str, source: Path) -> list[Any]:
    """Items named by the patch come first, in patch order, then the untouched ones (as kustomize)."""
    originals = {item.get(merge_key): item for item in current if isinstance(item, dict)}
    mentioned: set[Any] = set()
    merged: list[Any] = []
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise KustomizeError(f"{source}: every list item needs its merge key '{merge_key}'")
        key, directive = item[merge_key], item.get("$patch")
        if directive not in (None, "delete"):
            raise KustomizeError(f"{source}: directive $patch: {directive} is not supported in lists")
        mentioned.add(key)
        if directive == "delete":
            continue
        merged.append(_merge(originals[key], item, source) if key in originals else copy.deepcopy(item))
    merged.extend(copy.deepcopy(item) for item in current if item.get(merge_key) not in mentioned)
    return merged


def _json6902(source: Path, resource: Resource, operations: list[Any]) -> Resource:
    for operation in operations:
        if not isinstance(operation, dict) or operation.get("op") not in {"add", "remove", "replace", "test"}:
            raise KustomizeError(f"{source}: unsupported JSON 6902 operation {operation!r}")
    try:
        patched: Resource = jsonpatch.apply_patch(resource, operations)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise KustomizeError(f"{source}: cannot apply to {resource_id(resource)}: {exc}") from None
    return patched


# --- transformers ----------------------------------------------------------------------

def _set_namespace(resource: Resource, namespace: str) -> Resource:
    if resource["kind"] in NAMESPACE_REFERENCING:
        raise KustomizeError(f"setting the namespace of a {resource['kind']} is not supported")
    updated = copy.deepcopy(resource)
    if resource["kind"] == "Namespace":
        updated["metadata"]["name"] = namespace
    elif resource["kind"] not in CLUSTER_SCOPED:
        updated["metadata"]["namespace"] = namespace
    return updated


def _add_labels(resource: Resource, entry: dict[str, Any]) -> Resource:
    if set(entry) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise KustomizeError(f"unsupported labels fields {sorted(entry)}")
    if entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise KustomizeError("labels with includeSelectors/includeTemplates are not supported")
    updated = copy.deepcopy(resource)
    labels = updated["metadata"].setdefault("labels", {})
    labels.update({key: str(value) for key, value in entry.get("pairs", {}).items()})
    return updated


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """Name, tag and digest of an image reference."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, None, digest
    slash, colon = image.rfind("/"), image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :], None
    return image, None, None


def _set_image(resource: Resource, entry: dict[str, Any]) -> Resource:
    if set(entry) - IMAGE_FIELDS or "name" not in entry:
        raise KustomizeError(f"unsupported images entry {entry}")
    updated = copy.deepcopy(resource)
    for container in _containers(updated):
        name, tag, digest = split_image(container.get("image", ""))
        if name != entry["name"]:
            continue
        name = entry.get("newName", name)
        if "digest" in entry:
            container["image"] = f"{name}@{entry['digest']}"
        elif "newTag" in entry:
            container["image"] = f"{name}:{entry['newTag']}"
        else:
            container["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")
    return updated


def _containers(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                found.extend(item for item in value if isinstance(item, dict))
            else:
                found.extend(_containers(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_containers(item))
    return found


def _legacy_order(resource: Resource) -> tuple[int, str, str, str]:
    kind = resource["kind"]
    if kind in ORDER_FIRST:
        rank = ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        rank = len(ORDER_FIRST) + 1 + ORDER_LAST.index(kind)
    else:
        rank = len(ORDER_FIRST)
    group_version = _group_version(resource["apiVersion"])
    gvk = f"{group_version['group'] or '~G'}_{group_version['version']}_{kind}"
    metadata = resource["metadata"]
    return rank, gvk, metadata.get("namespace", ""), metadata["name"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: deploy_kustomize.py KUSTOMIZATION_DIR")
    try:
        sys.stdout.write(to_yaml(render(sys.argv[1])))
    except KustomizeError as error:
        raise SystemExit(f"error: {error}") from None
