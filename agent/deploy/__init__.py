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

import re

import yaml

from agent.deploy import compose as image
from agent.deploy import k8s
from agent.deploy.spec import (
    ROOT,
    DeployConfig,
    Deployment,
    Spec,
    copied,
    ingest_record,
    max_len,
    resolve_model,
    trained_k,
)
from agent.errors import DeployError
from rag.io import atomic_write
from rag.workspace import Workspace

__all__ = ["ROOT", "DeployConfig", "Deployment", "run"]


def run(cfg: DeployConfig) -> Deployment:
    from agent.pipeline import check_evaluated

    ws = Workspace(cfg.workspace)
    if not ws.has_index:
        raise DeployError(f"{ws.root} has no index for the chroma service to serve: run `onboard ingest DOCS "
                          f"--workspace {ws.root}` first.")
    record = ingest_record(ws)
    if record.get("chroma_url"):
        raise DeployError(f"{ws.root}'s index lives in the Chroma server at {record['chroma_url']}, not in the "
                          "workspace: deploy writes a chroma service for the workspace's own index.")
    mode, model, base, adapter = resolve_model(cfg)
    check_evaluated(ws, model, force=cfg.ignore_gate, anyway="Deploy it anyway with --ignore-gate")
    name = cfg.name or model.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise DeployError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it is the model's name in the API).")
    card_k = trained_k(model if mode == "merged" else adapter)
    spec = Spec(cfg=cfg, ws=ws.root.resolve(), mode=mode, model=model, base=base, adapter=adapter, name=name,
                 rag_k=card_k, max_len=cfg.max_model_len or max_len(base or model),
                 embedder=record.get("embedding_model"), embedding_url=record.get("embedding_url"))
    if spec.embedding_url:
        spec.notes.append(f"the index's embeddings come from {spec.embedding_url}: the gateway container must reach "
                          "that address (not a localhost one)")
    files = {
        "Dockerfile": image.dockerfile(spec),
        "Dockerfile.dockerignore": "*\n" + "".join(f"!{p}\n" for p in copied()) + "**/__pycache__\n",
        "compose.yaml": _yaml(image.compose(spec), "docker compose -f compose.yaml up --build -d"),
        "k8s/storage.yaml": _yaml_all(k8s.storage(spec)),
        "k8s/vllm.yaml": _yaml_all(k8s.vllm(spec)),
        "k8s/chroma.yaml": _yaml_all(k8s.chroma(spec)),
        "k8s/gateway.yaml": _yaml_all(k8s.gateway(spec)),
        "k8s-setup/loader.yaml": _yaml_all([k8s.loader()]),
        "README.md": readme(spec),
    }
    out = cfg.out.resolve()
    there = [out / f for f in files if (out / f).exists()]
    if there and not cfg.force:
        raise DeployError(f"{out} already holds {', '.join(str(p.relative_to(out)) for p in there)}: pass --force "
                          "to write over them, or choose another --out.")
    written = []
    for rel, text in files.items():
        path = out / rel
        atomic_write(path, text)
        written.append(path)
    return Deployment(out=out, files=written, mode=mode, served_name=name, rag_k=spec.rag_k, notes=spec.notes)



def _yaml(doc: dict, how: str) -> str:
    return f"# Written by `onboard deploy`. Start: {how}\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _yaml_all(docs: list[dict]) -> str:
    return "# Written by `onboard deploy`. Apply: kubectl apply -f k8s/\n" + yaml.safe_dump_all(
        docs, sort_keys=False, allow_unicode=True)


def readme(s: Spec) -> str:
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
