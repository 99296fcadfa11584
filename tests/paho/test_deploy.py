"""The deployment files: the Dockerfile parses and builds a non-root image
with a data volume and a health check that needs no shell; the image's
configuration is one `strata serve` accepts; the Kubernetes manifests are
YAML of the right kinds, probing the admin listener's health endpoints.
(No image is built here: these machines cannot.)"""

from __future__ import annotations

from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

from conftest import strata_serve

ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile():
    df = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in df.structure]
    stages = [v for k, v in instructions if k == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build"), stages
    user = [v for k, v in instructions if k == "USER"]
    assert user == ["strata"], user
    assert ("VOLUME", '["/data"]') in instructions
    assert ("EXPOSE", "1883 8080") in instructions
    health = [v for k, v in instructions if k == "HEALTHCHECK"]
    assert health and '"admin", "health"' in health[0], health
    assert [v for k, v in instructions if k == "ENTRYPOINT"] == ['["/usr/local/bin/strata"]']
    # What it copies from the repository is there.
    for k, v in instructions:
        if k == "COPY" and not v.startswith("--from"):
            src = v.split()[0]
            assert src == "." or (ROOT / src).exists(), v


def test_the_images_configuration_is_accepted(tmp_path):
    # Its files and ports as a container has them, moved to this machine:
    # the keys file by environment variable, the listeners by flags.
    import os

    env_keys = {"STRATA_ADMIN__API_KEY_FILE": str(ROOT / "deploy/admin.keys")}
    old = {k: os.environ.get(k) for k in env_keys}
    os.environ.update(env_keys)
    try:
        admin: list[str] = []
        args = ["--config", str(ROOT / "deploy/strata.toml"), "--listen", "127.0.0.1:0", "--in-memory", "--admin-listen", "127.0.0.1:0"]
        with strata_serve(args, tmp_path / "stderr", admin=admin) as listening:
            assert listening and admin
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_the_kubernetes_manifests():
    docs = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/strata.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"StatefulSet", "Service"}
    sts = kinds["StatefulSet"]
    assert sts["apiVersion"] == "apps/v1"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "serve"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"mqtt": 1883, "admin": 8080}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/data" in mounts
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    svc = kinds["Service"]
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == {"mqtt", "admin"}
