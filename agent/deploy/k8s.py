"""The Kubernetes manifests: Deployments and Services for vLLM (one GPU), the chroma server and the gateway,
claims for the model, the index and the workspace, and a loader pod to copy them in."""

from __future__ import annotations

from agent.deploy.spec import CHROMA_PORT, UID, VLLM_PORT, Spec, gateway_env, vllm_args

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


def storage(s: Spec) -> list[dict]:
    size = max(10, int(sum(f.stat().st_size for f in (s.base or s.model).rglob("*") if f.is_file()) / 2**30 * 2) + 5)
    return [_claim("onboard-models", f"{size}Gi"), _claim("onboard-chroma", "10Gi"),
            _claim("onboard-workspace", "5Gi")]


def vllm(s: Spec) -> list[dict]:
    container = {
        "name": "vllm", "image": s.cfg.vllm_image, "args": vllm_args(s, "/models"),
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


def chroma(s: Spec) -> list[dict]:
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


def gateway(s: Spec) -> list[dict]:
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


def loader() -> dict:
    """A pod that mounts the three claims, to copy the model, the index and the workspace in (then deleted:
    the claims are ReadWriteOnce)."""
    claims = {"models": "onboard-models", "index": "onboard-chroma", "workspace": "onboard-workspace"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta("onboard-loader"),
            "spec": {**_NON_ROOT, "restartPolicy": "Never",
                     "containers": [{"name": "loader", "image": "busybox:1.36", "command": ["sleep", "86400"],
                                     "volumeMounts": [{"name": n, "mountPath": f"/{n}"} for n in claims]}],
                     "volumes": [{"name": n, "persistentVolumeClaim": {"claimName": c}} for n, c in claims.items()]}}


