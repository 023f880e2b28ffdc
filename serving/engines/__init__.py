"""Inference engines behind one interface (`engines.base.Engine`), chosen by `ServeSettings.engine`.

Each engine module is imported only when chosen: the transformers engine pulls in torch, the remote
one only httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.engines.base import Engine
    from serving.settings import ServeSettings


def load_engine(settings: ServeSettings) -> Engine:
    """The engine `settings` ask for, ready to generate. Blocking (loads weights or checks the upstream):
    call it at start-up, not from a request.

    Raises:
        ModelNotLoaded: transformers: the model folder has no config.json or no chat template;
            remote: the upstream does not serve `remote_model`.
        UpstreamError: remote: the upstream cannot be reached.
    """
    if settings.engine == "remote":
        from serving.engines.remote import RemoteEngine

        key = settings.remote_api_key.get_secret_value() if settings.remote_api_key else None
        engine = RemoteEngine(settings.remote_url, settings.remote_model, key, settings.remote_timeout)
        engine.check()
        return engine
    if settings.engine == "llamacpp":
        from serving.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(settings.model, settings.llamacpp_python, settings.threads, settings.remote_timeout)
    from serving.engines.hf import TransformersEngine

    return TransformersEngine(settings.model, threads=settings.threads, max_batch=settings.max_batch)
