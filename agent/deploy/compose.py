"""The gateway image (a Dockerfile built from the project) and compose.yaml: vLLM, a `chroma run` server of the
index, and the gateway."""

from __future__ import annotations

import sys

from agent.deploy.spec import (
    CHROMA_PORT,
    PACKAGES,
    ROOT,
    UID,
    VLLM_PORT,
    Spec,
    gateway_env,
    probe,
    torch_pin,
    vllm_args,
)


def dockerfile(s: Spec) -> str:
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
RUN pip install --index-url https://download.pytorch.org/whl/cpu "{torch_pin()}" \\
 && pip install -c constraints.txt . \\
 && useradd --uid {UID} --no-create-home --shell /usr/sbin/nologin onboard
USER {UID}
EXPOSE {s.cfg.port}
CMD ["python", "-m", "serving"]
"""



def compose(s: Spec) -> dict:
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
                "command": vllm_args(s, "/models"),
                "volumes": models,
                "environment": {"HF_HUB_OFFLINE": "1"},
                "ipc": "host",
                "deploy": {"resources": {"reservations": {"devices": [
                    {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}}},
                "healthcheck": {"test": probe(f"http://127.0.0.1:{VLLM_PORT}/health"), "interval": "15s",
                                "timeout": "5s", "retries": 5, "start_period": "600s"},
                "restart": "unless-stopped",
            },
            "chroma": {
                "image": s.cfg.image,
                "build": dict(build),
                "user": user,
                "command": ["chroma", "run", "--path", "/data", "--host", "0.0.0.0", "--port", str(CHROMA_PORT)],
                "volumes": [f"{s.ws / 'chroma'}:/data"],
                "healthcheck": {"test": probe(f"http://127.0.0.1:{CHROMA_PORT}/api/v2/heartbeat"),
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
                "healthcheck": {"test": probe(f"http://127.0.0.1:{s.cfg.port}/readyz"), "interval": "10s",
                                "timeout": "5s", "retries": 5, "start_period": "120s"},
                "restart": "unless-stopped",
            },
        },
    }


