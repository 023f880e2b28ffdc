"""`onboard deploy`: the compose file checked against the Compose specification's schema, the Kubernetes
manifests against Kubernetes' own schemas (kubernetes-validate, strict), both checked for agreeing images,
ports, probes and environment, and the gateway run here exactly as compose configures it, against a real
`chroma run` server of the workspace's index (vLLM, which needs CUDA, stood in for by an Onboard server of the
same model: the gateway only sees an OpenAI API)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from agent.deploy import ROOT, DeployConfig, run
from agent.errors import DeployError
from tests.serving.servers import free_port, serve_in_process

SCHEMA = Path(__file__).parent / "data" / "compose_spec.json"
"""The Compose specification's JSON schema, as docker-compose 1.29.2 shipped it (Apache-2.0)."""
K8S = "1.33.0"


@pytest.fixture(scope="module")
def deployed(workspace, merged_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "out"
    d = run(DeployConfig(workspace=workspace, model=merged_model, out=out, name="shop-bot"))
    return d, yaml.safe_load((out / "compose.yaml").read_text())


def _k8s(out: Path) -> dict[str, list[dict]]:
    return {p.stem: list(yaml.safe_load_all(p.read_text())) for p in sorted((out / "k8s").glob("*.yaml"))}


def _port(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"http://([\w.-]+):(\d+)(/v1)?", url)
    assert m, url
    return m.group(1), int(m.group(2))


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_the_compose_file_is_valid_and_its_services_agree(deployed, workspace, merged_model):
    d, compose = deployed
    errors = [e.message for e in jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text())).iter_errors(compose)]
    assert errors == []
    s = compose["services"]
    vllm, chroma, gateway = s["vllm"], s["chroma"], s["gateway"]
    env = gateway["environment"]
    host, port = _port(env["ONBOARD_REMOTE_URL"])
    assert host == "vllm" and port == int(_arg(vllm["command"], "--port"))
    assert env["ONBOARD_REMOTE_MODEL"] == _arg(vllm["command"], "--served-model-name") == "shop-bot"
    assert vllm["volumes"] == [f"{merged_model.resolve()}:/models/model:ro"] and _arg(vllm["command"], "--model") == "/models/model"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    host, port = _port(env["ONBOARD_CHROMA_URL"])
    assert host == "chroma" and port == int(_arg(chroma["command"], "--port"))
    assert chroma["command"][:2] == ["chroma", "run"] and _arg(chroma["command"], "--path") == "/data"
    assert chroma["volumes"] == [f"{(workspace / 'chroma').resolve()}:/data"]
    assert gateway["volumes"][0] == f"{workspace.resolve()}:/workspace" and env["ONBOARD_WORKSPACE"] == "/workspace"
    assert gateway["ports"] == [f"{env['ONBOARD_PORT']}:{env['ONBOARD_PORT']}"] and env["ONBOARD_ENGINE"] == "remote"
    assert env["ONBOARD_RAG_K"] == str(d.rag_k) and d.rag_k >= 1  # as the model card says; the gateway has no model
    assert f"127.0.0.1:{env['ONBOARD_PORT']}/readyz" in gateway["healthcheck"]["test"][-1]
    assert f"127.0.0.1:{_arg(vllm['command'], '--port')}/health'" in vllm["healthcheck"]["test"][-1]
    assert "/api/v2/heartbeat" in chroma["healthcheck"]["test"][-1]
    assert gateway["depends_on"] == {"vllm": {"condition": "service_healthy"}, "chroma": {"condition": "service_healthy"}}
    # one image, built from this project (not a hand-written list of dependencies)
    assert gateway["image"] == chroma["image"] and gateway["build"] == chroma["build"]
    assert Path(gateway["build"]["context"]) == ROOT and Path(gateway["build"]["dockerfile"]) == d.out / "Dockerfile"


def test_the_image_is_built_from_the_project(deployed):
    d, _ = deployed
    dockerfile = (d.out / "Dockerfile").read_text()
    found = re.search(r"\[tool.setuptools.packages.find\]\ninclude = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    packages = re.findall(r'"(\w+)\*"', found.group(1))
    assert len(packages) == 5
    for package in packages:
        assert f"COPY {package} {package}\n" in dockerfile and f"!{package}\n" in (d.out / "Dockerfile.dockerignore").read_text()
    assert "pip install -c constraints.txt ." in dockerfile and "COPY pyproject.toml constraints.txt" in dockerfile
    torch = re.search(r"^TORCH\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f'"{torch}"' in dockerfile and "whl/cpu" in dockerfile  # the CPU torch `make setup` pins
    assert re.search(r"^USER \d+$", dockerfile, re.M) and 'CMD ["python", "-m", "serving"]' in dockerfile


def test_the_kubernetes_manifests_validate_and_agree(deployed):
    d, _ = deployed
    docs = _k8s(d.out)
    assert set(docs) == {"storage", "vllm", "chroma", "gateway"}
    for doc in (x for group in docs.values() for x in group):
        kubernetes_validate.validate(doc, K8S, strict=True)
    claims = {c["metadata"]["name"] for c in docs["storage"]}
    deployments = {x["metadata"]["name"]: x for g in docs.values() for x in g if x["kind"] == "Deployment"}
    services = {x["metadata"]["name"]: x for g in docs.values() for x in g if x["kind"] == "Service"}
    assert set(deployments) == set(services) == {"onboard-vllm", "onboard-chroma", "onboard-gateway"}
    ports = {}
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert services[name]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        (c,) = pod["spec"]["containers"]
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert services[name]["spec"]["ports"][0]["targetPort"] in named
        ports[name] = services[name]["spec"]["ports"][0]["port"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["port"] in named
        for v in pod["spec"]["volumes"]:
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims
    gateway = deployments["onboard-gateway"]["spec"]["template"]["spec"]
    vllm = deployments["onboard-vllm"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in gateway["containers"][0]["env"]}
    assert _port(env["ONBOARD_REMOTE_URL"]) == ("onboard-vllm", ports["onboard-vllm"])
    assert _port(env["ONBOARD_CHROMA_URL"]) == ("onboard-chroma", ports["onboard-chroma"])
    assert env["ONBOARD_REMOTE_MODEL"] == _arg(vllm["args"], "--served-model-name")
    assert ports["onboard-vllm"] == int(_arg(vllm["args"], "--port"))
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    probes = gateway["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz" and probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounts = {m["mountPath"]: m["name"] for m in probes["volumeMounts"]}
    assert mounts["/workspace"] == "workspace" and env["ONBOARD_WORKSPACE"] == "/workspace"  # keys live there
    assert gateway["securityContext"]["runAsNonRoot"] is True
    images = {deployments[n]["spec"]["template"]["spec"]["containers"][0]["image"] for n in ("onboard-gateway", "onboard-chroma")}
    assert images == {yaml.safe_load((d.out / "compose.yaml").read_text())["services"]["gateway"]["image"]}
    (loader,) = yaml.safe_load_all((d.out / "k8s-setup" / "loader.yaml").read_text())  # to copy the data in
    kubernetes_validate.validate(loader, K8S, strict=True)
    assert {v["persistentVolumeClaim"]["claimName"] for v in loader["spec"]["volumes"]} == claims
    assert "onboard-loader:/models/model" in (d.out / "README.md").read_text()


def test_an_adapter_is_served_on_its_base_with_lora(workspace, qlora_run, tiny_base, tmp_path):
    d = run(DeployConfig(workspace=workspace, model=qlora_run.output_dir, out=tmp_path / "out", name="shop-lora"))
    assert d.mode == "lora"
    vllm = yaml.safe_load((d.out / "compose.yaml").read_text())["services"]["vllm"]
    args = vllm["command"]
    assert "--enable-lora" in args and _arg(args, "--lora-modules") == "shop-lora=/models/adapter"
    assert _arg(args, "--model") == "/models/base" and int(_arg(args, "--max-lora-rank")) >= 8
    assert vllm["volumes"] == [f"{tiny_base.resolve()}:/models/base:ro", f"{qlora_run.adapter_dir.resolve()}:/models/adapter:ro"]
    for doc in _k8s(d.out)["vllm"]:
        kubernetes_validate.validate(doc, K8S, strict=True)


def test_what_deploy_refuses(workspace, merged_model, tmp_path):
    out = tmp_path / "out"
    run(DeployConfig(workspace=workspace, model=merged_model, out=out))
    with pytest.raises(DeployError, match="already holds .*compose.yaml.*--force"):
        run(DeployConfig(workspace=workspace, model=merged_model, out=out))
    run(DeployConfig(workspace=workspace, model=merged_model, out=out, force=True))
    with pytest.raises(DeployError, match="neither a model folder"):
        run(DeployConfig(workspace=workspace, model=tmp_path, out=tmp_path / "o2"))
    with pytest.raises(DeployError, match="--base is for serving a LoRA adapter"):
        run(DeployConfig(workspace=workspace, model=merged_model, out=tmp_path / "o3", base=merged_model))
    with pytest.raises(DeployError, match="no index"):
        run(DeployConfig(workspace=tmp_path / "empty", model=merged_model, out=tmp_path / "o4"))
    r = CliRunner().invoke(app, ["deploy", "-w", str(workspace), "--model", str(merged_model), "--out", str(out),
                                 "--name", "bad name"])
    assert r.exit_code == 1 and "--name 'bad name'" in r.output and "Traceback" not in r.output


def test_the_gateway_serves_as_compose_configures_it(deployed, workspace, merged_model, tmp_path):
    """compose.yaml's gateway environment, with each service's host name pointed at a local process."""
    d, compose = deployed
    ws = tmp_path / "ws"  # the chroma server gets a copy: other tests open the shared workspace's index embedded
    shutil.copytree(workspace, ws)
    chroma_port = free_port()
    chroma = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path", str(ws / "chroma"),
                               "--port", str(chroma_port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        upstream_env = {"ONBOARD_MODEL": str(merged_model), "ONBOARD_MODEL_NAME": "shop-bot", "ONBOARD_RAG_K": "0",
                        "ONBOARD_THREADS": "2"}
        with serve_in_process(upstream_env, tmp_path / "vllm.log") as vllm:
            env = dict(compose["services"]["gateway"]["environment"])
            env.update(ONBOARD_REMOTE_URL=env["ONBOARD_REMOTE_URL"].replace("vllm:8000", vllm.removeprefix("http://")),
                       ONBOARD_CHROMA_URL=env["ONBOARD_CHROMA_URL"].replace("chroma:8000", f"127.0.0.1:{chroma_port}"),
                       ONBOARD_WORKSPACE=str(ws), ONBOARD_HOST="127.0.0.1", ONBOARD_MAX_NEW_TOKENS="16")
            env.pop("ONBOARD_PORT")  # serve_in_process picks a free one
            with serve_in_process(env, tmp_path / "gateway.log", [sys.executable, "-m", "serving"]) as gateway:
                assert httpx.get(f"{gateway}/readyz", timeout=30).status_code == 200
                asked = httpx.post(f"{gateway}/chat", json={"message": "Do you ship to Canada?"}, timeout=120)
                assert asked.status_code == 200, asked.text
                answer = asked.json()
                assert any(s["source"] == "shipping.md" for s in answer["sources"])  # retrieved from the chroma server
                assert len(answer["sources"]) == int(env["ONBOARD_RAG_K"])
                assert httpx.get(f"{gateway}/v1/models").json()["data"][0]["id"] == "shop-bot"
                assert (ws / "serving" / "conversations.sqlite").exists()  # kept in the workspace volume
        log = (tmp_path / "gateway.log").read_text()
        assert "retrieval on" in log
    finally:
        chroma.terminate()
        chroma.wait(timeout=20)


@pytest.mark.slow
def test_docker_builds_the_image_and_accepts_the_compose_file(deployed):
    d, _ = deployed
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine here (`docker info` fails: only the client is installed), so the image is "
                    "not built and compose is not run; the files are checked against the Compose and Kubernetes "
                    "schemas above")
    subprocess.run(["docker", "compose", "-f", str(d.out / "compose.yaml"), "config", "--quiet"], check=True)
    subprocess.run(["docker", "build", "-f", str(d.out / "Dockerfile"), "-t", "onboard-gateway:test", str(ROOT)],
                   check=True)
