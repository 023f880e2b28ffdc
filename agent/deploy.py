"""`onboard deploy`: the files that run a trained model as a company's bot, with vLLM on a GPU.

    run(DeployConfig(workspace=ws, model=ws / "models/merged", out=Path("deploy-shop")))

writes into OUT:
- `Dockerfile` (+ `Dockerfile.dockerignore`): the gateway image, built from this project (its pyproject and
  constraints, the CPU torch that `make setup` pins); the same image runs the `chroma run` server of the index,
  so the index is read by the Chroma version that wrote it.
- `compose.yaml`: `vllm` (vllm/vllm-openai serving the merged model, or the base with the LoRA adapter), `chroma`
  (the workspace's index), `gateway` (`python -m serving` with the remote engine: keys, limits, /chat, the
  page), with health checks, and the workspace and model as volumes.
- `k8s/`: Deployments and Services for the three, a GPU request for vLLM, probes on /healthz and /readyz,
  and volumes (claims) for the model, the index and the workspace (which holds the key store).
- `README.md`: how to start each, and how to make the first API key.

A model whose last evaluation failed its gate is refused (agent.pipeline.check_evaluated) unless `ignore_gate`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from agent.errors import DeployError
from rag.workspace import Workspace

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
"""The project the gateway image is built from (its pyproject.toml)."""
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
VLLM_PORT = 8000
CHROMA_PORT = 8000
UID = 10001
"""The gateway image's user (not root)."""
PACKAGES = ("agent", "training", "serving", "rag", "evaluation")


@dataclass(frozen=True)
class DeployConfig:
    workspace: Path
    """Its index (served by the chroma service) and its prompts, and where keys and conversations are kept."""
    model: Path
    """A merged model folder (config.json), or a LoRA adapter folder (adapter_config.json) served on `base`."""
    out: Path
    base: Path | None = None
    """With an adapter: the base model folder [default: the adapter's base_model_name_or_path, when a folder]."""
    name: str | None = None
    """The model's name in the API [default: the model folder's name]."""
    port: int = 8080
    """The gateway's port (the host's, in compose)."""
    image: str = "onboard-gateway:latest"
    """The gateway image's tag: what compose builds, and what Kubernetes pulls (push it to your registry)."""
    vllm_image: str = VLLM_IMAGE
    gpu_memory_utilization: float = 0.90
    max_model_len: int | None = None
    """[default: the model's max_position_embeddings]."""
    force: bool = False
    """Write over files already in `out`."""
    ignore_gate: bool = False
    """Deploy a model whose last `onboard eval` failed its gate (said loudly)."""


@dataclass(frozen=True)
class Deployment:
    out: Path
    files: list[Path]
    mode: Literal["merged", "lora"]
    served_name: str
    rag_k: int
    notes: list[str] = field(default_factory=list)


def run(cfg: DeployConfig) -> Deployment:
    from agent.pipeline import check_evaluated

    ws = Workspace(cfg.workspace)
    if not ws.has_index:
        raise DeployError(f"{ws.root} has no index for the chroma service to serve: run `onboard ingest DOCS "
                          f"--workspace {ws.root}` first.")
    record = _ingest_record(ws)
    if record.get("chroma_url"):
        raise DeployError(f"{ws.root}'s index lives in the Chroma server at {record['chroma_url']}, not in the "
                          "workspace: deploy writes a chroma service for the workspace's own index.")
    mode, model, base, adapter = _model(cfg)
    check_evaluated(ws, model, force=cfg.ignore_gate, anyway="Deploy it anyway with --ignore-gate")
    name = cfg.name or model.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise DeployError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it is the model's name in the API).")
    card_k = _trained_k(model if mode == "merged" else adapter)
    spec = _Spec(cfg=cfg, ws=ws.root.resolve(), mode=mode, model=model, base=base, adapter=adapter, name=name,
                 rag_k=card_k, max_len=cfg.max_model_len or _max_len(base or model),
                 embedder=record.get("embedding_model"), embedding_url=record.get("embedding_url"))
    if spec.embedding_url:
        spec.notes.append(f"the index's embeddings come from {spec.embedding_url}: the gateway container must reach "
                          "that address (not a localhost one)")
    files = {
        "Dockerfile": _dockerfile(spec),
        "Dockerfile.dockerignore": "*\n" + "".join(f"!{p}\n" for p in _copied()) + "**/__pycache__\n",
        "compose.yaml": _yaml(_compose(spec), "docker compose -f compose.yaml up --build -d"),
        "k8s/storage.yaml": _yaml_all(_k8s_storage(spec)),
        "k8s/vllm.yaml": _yaml_all(_k8s_vllm(spec)),
        "k8s/chroma.yaml": _yaml_all(_k8s_chroma(spec)),
        "k8s/gateway.yaml": _yaml_all(_k8s_gateway(spec)),
        "k8s-setup/loader.yaml": _yaml_all([_k8s_loader()]),
        "README.md": _readme(spec),
    }
    out = cfg.out.resolve()
    there = [out / f for f in files if (out / f).exists()]
    if there and not cfg.force:
        raise DeployError(f"{out} already holds {', '.join(str(p.relative_to(out)) for p in there)}: pass --force "
                          "to write over them, or choose another --out.")
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return Deployment(out=out, files=written, mode=mode, served_name=name, rag_k=spec.rag_k, notes=spec.notes)


# ------------------------------------------------------------------------------------------- what is deployed

@dataclass
class _Spec:
    cfg: DeployConfig
    ws: Path
    mode: Literal["merged", "lora"]
    model: Path
    base: Path | None
    adapter: Path | None
    name: str
    rag_k: int | None
    max_len: int
    embedder: str | None
    embedding_url: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def upstream_name(self) -> str:
        """The model id vLLM answers to: the merged model's name, or the LoRA module's."""
        return self.name


def _ingest_record(ws: Workspace) -> dict:
    try:
        return json.loads(ws.ingest_record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{ws.root} has no ingest record ({ws.ingest_record}): run `onboard ingest DOCS "
                          f"--workspace {ws.root}` first.") from None


def _model(cfg: DeployConfig) -> tuple[str, Path, Path | None, Path | None]:
    """('merged', model, None, None) or ('lora', adapter, base, adapter)."""
    model = cfg.model.resolve()
    for adapter in (model, model / "adapter"):
        if (adapter / "adapter_config.json").is_file():
            base = cfg.base
            if base is None:
                named = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
                base = Path(named) if named and Path(named).is_dir() else None
                if base is None:
                    raise DeployError(f"{adapter} is a LoRA adapter whose base ({named or 'not recorded'}) is not a "
                                      "folder here: pass --base with the base model's folder (vLLM serves it "
                                      "offline), or merge it first (`onboard merge`).")
            if not (base / "config.json").is_file():
                raise DeployError(f"--base {base}: not a model folder (no config.json).")
            return "lora", adapter, base.resolve(), adapter
    if (model / "config.json").is_file():
        if cfg.base is not None:
            raise DeployError(f"--base {cfg.base}: {model} is a merged model (no adapter_config.json); --base is for "
                              "serving a LoRA adapter on its base. Leave --base out.")
        return "merged", model, None, None
    raise DeployError(f"--model {cfg.model}: neither a model folder (config.json) nor a LoRA adapter "
                      "(adapter_config.json). `onboard merge` writes WORKSPACE/models/merged.")


def _trained_k(folder: Path | None) -> int | None:
    from rag.model_card import ModelCard

    card = ModelCard.read(folder) if folder is not None else None
    return card.rag.context_chunks if card is not None and card.rag is not None else None


def _max_len(model: Path) -> int:
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    return int(config.get("max_position_embeddings") or 4096)


def _torch_pin() -> str:
    """The torch version `make setup` installs (constraints.txt)."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.strip()
    raise DeployError(f"{ROOT / 'constraints.txt'} pins no torch version")


def _copied() -> list[str]:
    return ["pyproject.toml", "constraints.txt", "README.md", *PACKAGES]


# ------------------------------------------------------------------------------------------------- the image

def _dockerfile(s: _Spec) -> str:
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    copies = "".join(f"COPY {p} {p}\n" for p in PACKAGES)
    return f"""\
# The Onboard gateway (python -m serving) and the `chroma run` server of its index, built from the project:
#   docker build -f {s.cfg.out.resolve() / 'Dockerfile'} -t {s.cfg.image} {ROOT}
# Written by `onboard deploy`; the build context is the project's folder, so the image holds the code and the
# dependency versions of this checkout (pyproject.toml, constraints.txt).
FROM python:{py}-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 \\
    TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False TOKENIZERS_PARALLELISM=false HOME=/tmp
WORKDIR /opt/onboard
COPY pyproject.toml constraints.txt README.md ./
{copies}# torch's CPU build first (the gateway runs no model; an unpinned torch would pull a multi-GB CUDA build)
RUN pip install --index-url https://download.pytorch.org/whl/cpu "{_torch_pin()}" \\
 && pip install -c constraints.txt . \\
 && useradd --uid {UID} --no-create-home --shell /usr/sbin/nologin onboard
USER {UID}
EXPOSE {s.cfg.port}
CMD ["python", "-m", "serving"]
"""


# ---------------------------------------------------------------------------------------------------- compose

def _probe(url: str) -> list[str]:
    """A health check that needs no curl in the image."""
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=4)"]


def _vllm_args(s: _Spec, models: str) -> list[str]:
    args = ["--host", "0.0.0.0", "--port", str(VLLM_PORT), "--max-model-len", str(s.max_len),
            "--gpu-memory-utilization", str(s.cfg.gpu_memory_utilization)]
    if s.mode == "merged":
        return ["--model", f"{models}/model", "--served-model-name", s.name, *args]
    rank = json.loads((s.adapter / "adapter_config.json").read_text()).get("r", 16)
    return ["--model", f"{models}/base", "--served-model-name", f"{s.name}-base", "--enable-lora",
            "--lora-modules", f"{s.name}={models}/adapter", "--max-lora-rank", str(max(8, int(rank))), *args]


def gateway_env(s: _Spec, vllm_host: str, chroma_host: str) -> dict[str, str]:
    env = {
        "ONBOARD_ENGINE": "remote",
        "ONBOARD_REMOTE_URL": f"http://{vllm_host}:{VLLM_PORT}/v1",
        "ONBOARD_REMOTE_MODEL": s.upstream_name,
        "ONBOARD_MODEL_NAME": s.name,
        "ONBOARD_WORKSPACE": "/workspace",
        "ONBOARD_CHROMA_URL": f"http://{chroma_host}:{CHROMA_PORT}",
        "ONBOARD_HOST": "0.0.0.0",
        "ONBOARD_PORT": str(s.cfg.port),
    }
    if s.rag_k is not None:  # as many chunks as the model was trained with (its card; the gateway has no model)
        env["ONBOARD_RAG_K"] = str(s.rag_k)
    return env


def _compose(s: _Spec) -> dict:
    build = {"context": str(ROOT), "dockerfile": str(s.cfg.out.resolve() / "Dockerfile")}  # built from the project
    owner = s.ws.stat()
    user = f"{owner.st_uid}:{owner.st_gid}"  # the workspace's owner: bind-mounted files stay writable
    if s.mode == "merged":
        models = [f"{s.model}:/models/model:ro"]
    else:
        models = [f"{s.base}:/models/base:ro", f"{s.adapter}:/models/adapter:ro"]
    workspace = [f"{s.ws}:/workspace"]
    if s.embedder and not s.embedding_url:  # a local embedding folder: where the index says it is
        workspace.append(f"{s.embedder}:{s.embedder}:ro")
    return {
        "services": {
            "vllm": {
                "image": s.cfg.vllm_image,
                "command": _vllm_args(s, "/models"),
                "volumes": models,
                "environment": {"HF_HUB_OFFLINE": "1"},
                "ipc": "host",
                "deploy": {"resources": {"reservations": {"devices": [
                    {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}}},
                "healthcheck": {"test": _probe(f"http://127.0.0.1:{VLLM_PORT}/health"), "interval": "15s",
                                "timeout": "5s", "retries": 5, "start_period": "600s"},
                "restart": "unless-stopped",
            },
            "chroma": {
                "image": s.cfg.image,
                "build": dict(build),
                "user": user,
                "command": ["chroma", "run", "--path", "/data", "--host", "0.0.0.0", "--port", str(CHROMA_PORT)],
                "volumes": [f"{s.ws / 'chroma'}:/data"],
                "healthcheck": {"test": _probe(f"http://127.0.0.1:{CHROMA_PORT}/api/v2/heartbeat"),
                                "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "30s"},
                "restart": "unless-stopped",
            },
            "gateway": {
                "image": s.cfg.image,
                "build": dict(build),
                "user": user,
                "command": ["python", "-m", "serving"],
                "environment": gateway_env(s, "vllm", "chroma"),
                "volumes": workspace,
                "ports": [f"{s.cfg.port}:{s.cfg.port}"],
                "depends_on": {"vllm": {"condition": "service_healthy"},
                               "chroma": {"condition": "service_healthy"}},
                "healthcheck": {"test": _probe(f"http://127.0.0.1:{s.cfg.port}/readyz"), "interval": "10s",
                                "timeout": "5s", "retries": 5, "start_period": "120s"},
                "restart": "unless-stopped",
            },
        },
    }


# ------------------------------------------------------------------------------------------------- kubernetes

_LABEL = "app.kubernetes.io/name"


def _meta(name: str) -> dict:
    return {"name": name, "labels": {_LABEL: name, "app.kubernetes.io/part-of": "onboard"}}


def _claim(name: str, size: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(name),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def _deployment(name: str, container: dict, volumes: list[dict], extra: dict | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name),
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},  # one writer per volume
                     "selector": {"matchLabels": {_LABEL: name}},
                     "template": {"metadata": {"labels": {_LABEL: name}},
                                  "spec": {**(extra or {}), "containers": [container], "volumes": volumes}}}}


def _service(name: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name),
            "spec": {"selector": {_LABEL: name}, "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}


def _http_probe(path: str, period: int = 10, failures: int = 3) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


_NON_ROOT = {"securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID}}


def _k8s_storage(s: _Spec) -> list[dict]:
    size = max(10, int(sum(f.stat().st_size for f in (s.base or s.model).rglob("*") if f.is_file()) / 2**30 * 2) + 5)
    return [_claim("onboard-models", f"{size}Gi"), _claim("onboard-chroma", "10Gi"),
            _claim("onboard-workspace", "5Gi")]


def _k8s_vllm(s: _Spec) -> list[dict]:
    container = {
        "name": "vllm", "image": s.cfg.vllm_image, "args": _vllm_args(s, "/models"),
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
        "ports": [{"name": "http", "containerPort": VLLM_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                         {"name": "shm", "mountPath": "/dev/shm"}],
        "startupProbe": _http_probe("/health", period=10, failures=90),  # loading weights: up to 15 minutes
        "readinessProbe": _http_probe("/health"),
        "livenessProbe": _http_probe("/health", period=20),
    }
    volumes = [{"name": "models", "persistentVolumeClaim": {"claimName": "onboard-models", "readOnly": True}},
               {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    return [_deployment("onboard-vllm", container, volumes), _service("onboard-vllm", VLLM_PORT)]


def _k8s_chroma(s: _Spec) -> list[dict]:
    container = {
        "name": "chroma", "image": s.cfg.image,
        "command": ["chroma", "run", "--path", "/data", "--host", "0.0.0.0", "--port", str(CHROMA_PORT)],
        "ports": [{"name": "http", "containerPort": CHROMA_PORT}],
        "volumeMounts": [{"name": "index", "mountPath": "/data"}],
        "readinessProbe": _http_probe("/api/v2/heartbeat"),
        "livenessProbe": _http_probe("/api/v2/heartbeat", period=20),
    }
    volumes = [{"name": "index", "persistentVolumeClaim": {"claimName": "onboard-chroma"}}]
    return [_deployment("onboard-chroma", container, volumes, _NON_ROOT), _service("onboard-chroma", CHROMA_PORT)]


def _k8s_gateway(s: _Spec) -> list[dict]:
    env = [{"name": k, "value": v} for k, v in gateway_env(s, "onboard-vllm", "onboard-chroma").items()]
    mounts = [{"name": "workspace", "mountPath": "/workspace"}]
    volumes = [{"name": "workspace", "persistentVolumeClaim": {"claimName": "onboard-workspace"}}]
    if s.embedder and not s.embedding_url:
        s.notes.append(f"the index was built with the embedding model at {s.embedder}: Kubernetes mounts it from "
                       "that path on the node (k8s/gateway.yaml's `embedder` hostPath volume)")
        mounts.append({"name": "embedder", "mountPath": s.embedder, "readOnly": True})
        volumes.append({"name": "embedder", "hostPath": {"path": s.embedder, "type": "Directory"}})
    container = {
        "name": "gateway", "image": s.cfg.image, "command": ["python", "-m", "serving"], "env": env,
        "ports": [{"name": "http", "containerPort": s.cfg.port}],
        "volumeMounts": mounts,
        "startupProbe": _http_probe("/healthz", period=5, failures=60),
        "readinessProbe": _http_probe("/readyz"),
        "livenessProbe": _http_probe("/healthz", period=20),
    }
    return [_deployment("onboard-gateway", container, volumes, _NON_ROOT), _service("onboard-gateway", s.cfg.port)]


def _k8s_loader() -> dict:
    """A pod that mounts the three claims, to copy the model, the index and the workspace in (then deleted:
    the claims are ReadWriteOnce)."""
    claims = {"models": "onboard-models", "index": "onboard-chroma", "workspace": "onboard-workspace"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta("onboard-loader"),
            "spec": {**_NON_ROOT, "restartPolicy": "Never",
                     "containers": [{"name": "loader", "image": "busybox:1.36", "command": ["sleep", "86400"],
                                     "volumeMounts": [{"name": n, "mountPath": f"/{n}"} for n in claims]}],
                     "volumes": [{"name": n, "persistentVolumeClaim": {"claimName": c}} for n, c in claims.items()]}}


# --------------------------------------------------------------------------------------------------- writing

def _yaml(doc: dict, how: str) -> str:
    return f"# Written by `onboard deploy`. Start: {how}\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _yaml_all(docs: list[dict]) -> str:
    return "# Written by `onboard deploy`. Apply: kubectl apply -f k8s/\n" + yaml.safe_dump_all(
        docs, sort_keys=False, allow_unicode=True)


def _readme(s: _Spec) -> str:
    out = s.cfg.out.resolve()
    served = (f"the merged model {s.model}" if s.mode == "merged"
              else f"the base {s.base} with the LoRA adapter {s.adapter}")
    k8s_model = (f"`kubectl cp {s.model} onboard-loader:/models/model`" if s.mode == "merged" else
                 f"`kubectl cp {s.base} onboard-loader:/models/base` and `kubectl cp {s.adapter} "
                 "onboard-loader:/models/adapter`")
    notes = "".join(f"- Note: {n}.\n" for n in s.notes)
    return f"""# Deploying `{s.name}`

Written by `onboard deploy` for {served}, with the index and prompts of the workspace {s.ws}.
vLLM serves the model on a GPU; the gateway (`python -m serving`, the remote engine) adds retrieval from the
`chroma` service, API keys and rate limits, `/chat` with sessions and handoff, `/feedback`, `/metrics` and the
chat page at `/`. Chunks per question: {s.rag_k if s.rag_k is not None else 'the default'} (the model card's).
{notes}
## Docker Compose (one machine with an NVIDIA GPU and the NVIDIA container toolkit)

    docker compose -f {out / 'compose.yaml'} up --build -d
    onboard keys create my-site -w {s.ws}        # the gateway then asks every caller for a key
    open http://localhost:{s.cfg.port}/

The workspace is mounted read-write at /workspace: keys (serving/keys.sqlite), conversations and feedback
stay there, on the host. `docker compose ... logs gateway` shows what it does.

## Kubernetes

1. Build the gateway image (it also runs the chroma service) and push it where the cluster pulls from:
   `docker build -f {out / 'Dockerfile'} -t {s.cfg.image} {ROOT}` and `docker push {s.cfg.image}` (the manifests
   name it; `onboard deploy --image REGISTRY/NAME:TAG --force` writes them with your registry's name).
2. `kubectl apply -f {out / 'k8s' / 'storage.yaml'} -f {out / 'k8s-setup' / 'loader.yaml'}`, then copy the data
   into the claims through the loader pod: {k8s_model}; the workspace's `chroma/` folder's contents into
   onboard-loader:/index; the rest of the workspace into onboard-loader:/workspace. Then `kubectl delete pod
   onboard-loader` (the claims are ReadWriteOnce).
3. `kubectl apply -f {out / 'k8s'}`. vLLM asks for one `nvidia.com/gpu`; its start-up probe allows 15 minutes
   to load the weights. Probes: /healthz (alive) and /readyz (model and index ready) on the gateway.
4. Keys: `kubectl exec deploy/onboard-gateway -- onboard keys create my-site -w /workspace`.
"""
