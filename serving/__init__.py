"""Onboard's serving layer: an OpenAI-compatible chat API over a model and the RAG index.

    settings.py       ServeSettings (ONBOARD_* env) and resolve_rag_k (the model card's RAG k)
    app.py            create_app (lifespan, error handlers, size limit, routers) and run
    deps.py           Annotated[..., Depends(...)] aliases over app.state
    routes/           chat (+ /tokenize), embeddings, models, health
    engines/          the Engine protocol (base), transformers (hf), an OpenAI-compatible upstream (remote)
    protocol.py       request/response models and the one ErrorResponse
    errors.py         ServingError and its kinds

Importing this package starts nothing and imports no engine.
"""
