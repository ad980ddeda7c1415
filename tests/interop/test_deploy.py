"""deploy/ checked without a cluster or a Docker engine: the Kubernetes manifests (and the
EERIE overlay, its patches applied as kustomize would) against the API schemas of
kubernetes-validate, the configuration they mount against the server's own check, and the
image's runtime packages against the libraries the binary links."""

import copy
import json
import re
import subprocess
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from conftest import REPO, _binary

K8S = REPO / "deploy/k8s"
KUBERNETES = "1.31"


def kustomize(folder: Path) -> list[dict]:
    """The resources of a kustomization: its files and bases, generated ConfigMaps, and its
    JSON 6902 patches applied (the subset of kustomize these manifests use)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    resources = []
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            resources.extend(kustomize(path))
        else:
            resources.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for generator in spec.get("configMapGenerator", []):
        data = {Path(f).name: (folder / f).read_text() for f in generator["files"]}
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        resources = [r for r in resources if not (r["kind"] == "ConfigMap" and r["metadata"]["name"] == generator["name"]
                                                  and generator.get("behavior") == "replace")]
        resources.append(config_map)
    for patch in spec.get("patches", []):
        target = patch["target"]
        for i, resource in enumerate(resources):
            if resource["kind"] == target["kind"] and resource["metadata"]["name"] == target["name"]:
                resources[i] = jsonpatch.apply_patch(copy.deepcopy(resource), yaml.safe_load(patch["patch"]))
    return resources


@pytest.mark.parametrize("folder", [K8S / "base", K8S / "overlays/eerie"], ids=["base", "eerie"])
def test_manifests_validate_against_the_kubernetes_api(folder, tmp_path):
    resources = kustomize(folder)
    kinds = sorted(r["kind"] for r in resources)
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)
    deployment = next(r for r in resources if r["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    # The mounted configuration is one the server accepts.
    config_map = next(r for r in resources if r["kind"] == "ConfigMap")
    for name, text in config_map["data"].items():
        (tmp_path / name).write_text(text)
    checked = subprocess.run([str(_binary()), "check-config", "--config", str(tmp_path / "cloudify.toml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    if folder.name == "eerie":
        assert deployment["spec"]["replicas"] == 4
        assert {"name": "CLOUDIFY_SERVER__PUBLIC_URL", "value": "https://eerie.cloud.dkrz.de"} in container["env"]
        # The overlay's STAC profile is the example's (kustomize loads nothing outside the folder).
        assert json.loads(config_map["data"]["stac-profile.json"]) == \
            json.loads((REPO / "examples/eerie/stac-profile.json").read_text())


def test_the_image_installs_every_library_the_binary_links():
    """The Dockerfile's runtime packages hold the libraries the server binary needs (the
    build stage runs the same `cargo build` as the end-to-end test static_mode)."""
    dockerfile = (REPO / "deploy/Dockerfile").read_text()
    runtime = dockerfile.split("FROM debian:bookworm-slim", 1)[1]
    installed = set(re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", runtime).group(1).split())
    # In every Debian image already (apt itself needs them).
    installed |= {"libc6", "libgcc-s1", "libstdc++6"}
    dynamic = subprocess.run(["objdump", "-p", str(_binary())], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"NEEDED\s+(\S+)", dynamic)
    assert "libnetcdf.so.19" in needed
    for library in needed:
        owner = subprocess.run(["dpkg", "-S", library], capture_output=True, text=True)
        packages = {line.split(":")[0] for line in owner.stdout.splitlines() if "/usr/lib" in line or "/lib/" in line}
        assert packages & installed, f"{library} ({packages}) is not installed by the image"
    assert "USER cloudify" in runtime and "HEALTHCHECK" in runtime and "/health" in runtime


def test_the_nginx_config_is_accepted_by_nginx(tmp_path):
    from test_scale_out import nginx_config

    conf = nginx_config(tmp_path, listen=18080, replicas=[19001, 19002])
    tested = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stderr
