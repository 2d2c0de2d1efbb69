"""The Python kustomize renderer: its semantics, its refusals, and parity with kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from deploy_kustomize import KustomizeError, render, split_image, to_yaml
from deploy_support import MANAGED_COMPONENT, OVERLAYS

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:1.0
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
          resources: {limits: {cpu: "1"}}
        - name: sidecar
          image: busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
      initContainers:
        - name: init
          image: registry.example.com/web:1.0
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def kustomization(body: str) -> str:
    return "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + textwrap.dedent(body)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path / "base", {
        "kustomization.yaml": kustomization("namespace: shop\nresources:\n  - ns.yaml\n  - web.yaml\n"),
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
        "web.yaml": DEPLOYMENT,
    })


def overlay(tmp_path: Path, body: str, files: dict[str, str] | None = None) -> Path:
    return write(tmp_path / "overlay", {"kustomization.yaml": kustomization(body), **(files or {})})


def test_strategic_merge_merges_lists_by_key_and_deletes_with_null(tmp_path: Path, base: Path) -> None:
    patch = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 1
          template:
            spec:
              containers:
                - name: web
                  env:
                    - {name: B, value: "changed"}
                    - {name: C, value: "3"}
                  resources: {limits: {memory: 1Gi}, requests: null}
                - name: sidecar
                  $patch: delete
        """
    directory = overlay(tmp_path, "resources: [../base]\npatches:\n  - path: patch.yaml\n", {"patch.yaml": patch})
    web = render(directory)[1]
    assert web["spec"]["replicas"] == 1
    [container] = web["spec"]["template"]["spec"]["containers"]
    # kustomize's order: the patch's items first, then the ones it did not mention.
    assert container["env"] == [{"name": "B", "value": "changed"}, {"name": "C", "value": "3"},
                                {"name": "A", "value": "1"}]
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}


def test_json6902_and_resource_deletion(tmp_path: Path, base: Path) -> None:
    body = """\
        resources: [../base]
        patches:
          - target: {kind: Deployment, name: web}
            patch: |-
              - {op: test, path: /spec/replicas, value: 2}
              - {op: replace, path: /spec/replicas, value: 5}
              - {op: add, path: /metadata/annotations, value: {note: kept}}
          - patch: |-
              $patch: delete
              apiVersion: v1
              kind: Namespace
              metadata:
                name: shop
        """
    resources = render(overlay(tmp_path, body))
    assert [r["kind"] for r in resources] == ["Deployment"]
    assert resources[0]["spec"]["replicas"] == 5
    assert resources[0]["metadata"]["annotations"] == {"note": "kept"}


def test_namespace_images_and_labels(tmp_path: Path, base: Path) -> None:
    body = """\
        namespace: shop-dev
        resources: [../base]
        labels:
          - pairs: {env: dev}
        images:
          - {name: registry.example.com/web, newName: web, newTag: dev}
          - {name: busybox, newTag: "1.36"}
        """
    namespace, web = render(overlay(tmp_path, body))
    assert namespace["metadata"] == {"name": "shop-dev", "labels": {"env": "dev"}}
    assert web["metadata"]["namespace"] == "shop-dev"
    assert web["metadata"]["labels"] == {"app": "web", "env": "dev"}
    assert web["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    images = [c["image"] for c in web["spec"]["template"]["spec"]["containers"]]
    assert images == ["web:dev", "busybox:1.36"]
    assert web["spec"]["template"]["spec"]["initContainers"][0]["image"] == "web:dev"


@pytest.mark.parametrize(("body", "files", "message"), [
    ("resources: [../base]\nreplicas: [{name: web, count: 3}]\n", {}, "unsupported kustomization fields"),
    ("resources: [../missing]\n", {}, "does not exist"),
    ("resources: [../base/web.yaml, ../base/web.yaml]\n", {}, "declared twice"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n",
     {"p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nope}\nspec: {replicas: 1}\n"},
     "does not match exactly one resource"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n",
     {"p.yaml": "- {op: replace, path: /spec/replicas, value: 1}\n"}, "needs a target"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n    target: {kind: Deployment}\n",
     {"p.yaml": "- {op: test, path: /spec/replicas, value: 7}\n"}, "cannot apply"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n    target: {kind: Deployment}\n",
     {"p.yaml": "- {op: move, from: /spec, path: /x}\n"}, "unsupported JSON 6902 operation"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n",
     {"p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"}, "exactly one document"),
    ("resources: [../base]\npatches:\n  - path: p.yaml\n",
     {"p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
                "    spec:\n      containers:\n        - name: web\n          ports: [{containerPort: 80}]\n"},
     "'ports' lists is not supported"),
    ("resources: [../base]\nlabels:\n  - pairs: {a: b}\n    includeSelectors: true\n", {}, "not supported"),
])
def test_unsupported_or_invalid_input_is_refused(tmp_path: Path, base: Path, body: str,
                                                 files: dict[str, str], message: str) -> None:
    with pytest.raises(KustomizeError, match=message):
        render(overlay(tmp_path, body, files))


def test_split_image() -> None:
    assert split_image("nginx") == ("nginx", None, None)
    assert split_image("registry:5000/team/app:1.2") == ("registry:5000/team/app", "1.2", None)
    assert split_image("registry:5000/team/app") == ("registry:5000/team/app", None, None)
    assert split_image("app@sha256:abc") == ("app", None, "sha256:abc")


def test_output_is_yaml_that_round_trips() -> None:
    resources = render(OVERLAYS["prod"])
    assert list(yaml.safe_load_all(to_yaml(resources))) == resources


# --- parity with the real kustomize ------------------------------------------------------

def kubectl_kustomize(directory: Path) -> list[dict[str, object]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the renderer's own tests above still apply")
    completed = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc is not None]


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_same_output_as_kubectl_kustomize(name: str) -> None:
    assert render(OVERLAYS[name]) == kubectl_kustomize(OVERLAYS[name])


def test_same_output_as_kubectl_kustomize_with_the_managed_component(tmp_path: Path) -> None:
    directory = tmp_path / "managed"
    directory.mkdir()
    prod, component = (os.path.relpath(path, directory) for path in (OVERLAYS["prod"], MANAGED_COMPONENT))
    write(directory, {"kustomization.yaml": kustomization(f"resources:\n  - {prod}\ncomponents:\n  - {component}\n")})
    assert render(directory) == kubectl_kustomize(directory)


def test_same_output_as_kubectl_kustomize_for_the_synthetic_cases(tmp_path: Path, base: Path) -> None:
    body = """\
        namespace: shop-dev
        resources: [../base]
        labels:
          - pairs: {env: dev}
        images:
          - {name: registry.example.com/web, newName: web, newTag: dev}
        patches:
          - path: patch.yaml
          - target: {kind: Deployment, name: web}
            patch: |-
              - {op: replace, path: /spec/replicas, value: 5}
        """
    patch = """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          template:
            spec:
              containers:
                - name: web
                  env:
                    - {name: B, value: "changed"}
                    - {name: C, value: "3"}
                  resources: {requests: {cpu: 100m}, limits: null}
                - name: sidecar
                  $patch: delete
        """
    directory = overlay(tmp_path, body, {"patch.yaml": patch})
    assert render(directory) == kubectl_kustomize(directory)
