"""What `onboard deploy` deploys: its options, the model (merged, or an adapter on its base) and what the
gateway needs to know about it, read once from the workspace and the model folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.errors import DeployError
from rag.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
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
    rag_k: int | None
    """Chunks per question (the model card's); None: the gateway's default."""
    notes: list[str] = field(default_factory=list)



@dataclass
class Spec:
    """What the files describe, resolved from the options, the workspace and the model folder."""

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


def ingest_record(ws: Workspace) -> dict:
    try:
        return json.loads(ws.ingest_record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{ws.root} has no ingest record ({ws.ingest_record}): run `onboard ingest DOCS "
                          f"--workspace {ws.root}` first.") from None


def resolve_model(cfg: DeployConfig) -> tuple[str, Path, Path | None, Path | None]:
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


def trained_k(folder: Path | None) -> int | None:
    from rag.model_card import ModelCard

    card = ModelCard.read(folder) if folder is not None else None
    return card.rag.context_chunks if card is not None and card.rag is not None else None


def max_len(model: Path) -> int:
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    return int(config.get("max_position_embeddings") or 4096)


def torch_pin() -> str:
    """The torch version `make setup` installs (constraints.txt)."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("torch=="):
            return line.strip()
    raise DeployError(f"{ROOT / 'constraints.txt'} pins no torch version")


def copied() -> list[str]:
    return ["pyproject.toml", "constraints.txt", "README.md", *PACKAGES]



def probe(url: str) -> list[str]:
    """A health check that needs no curl in the image."""
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=4)"]


def vllm_args(s: Spec, models: str) -> list[str]:
    args = ["--host", "0.0.0.0", "--port", str(VLLM_PORT), "--max-model-len", str(s.max_len),
            "--gpu-memory-utilization", str(s.cfg.gpu_memory_utilization)]
    if s.mode == "merged":
        return ["--model", f"{models}/model", "--served-model-name", s.name, *args]
    rank = json.loads((s.adapter / "adapter_config.json").read_text()).get("r", 16)
    return ["--model", f"{models}/base", "--served-model-name", f"{s.name}-base", "--enable-lora",
            "--lora-modules", f"{s.name}={models}/adapter", "--max-lora-rank", str(max(8, int(rank))), *args]


def gateway_env(s: Spec, vllm_host: str, chroma_host: str) -> dict[str, str]:
    env = {
        "ONBOARD_ENGINE": "remote",
        "ONBOARD_REMOTE_URL": f"http://{vllm_host}:{VLLM_PORT}/v1",
        "ONBOARD_REMOTE_MODEL": s.name,  # vLLM's served name, or the LoRA module's
        "ONBOARD_MODEL_NAME": s.name,
        "ONBOARD_WORKSPACE": "/workspace",
        "ONBOARD_CHROMA_URL": f"http://{chroma_host}:{CHROMA_PORT}",
        "ONBOARD_HOST": "0.0.0.0",
        "ONBOARD_PORT": str(s.cfg.port),
    }
    if s.rag_k is not None:  # as many chunks as the model was trained with (its card; the gateway has no model)
        env["ONBOARD_RAG_K"] = str(s.rag_k)
    return env


