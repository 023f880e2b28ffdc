"""Onboard's serving layer: an OpenAI-compatible chat API over a model and the RAG index.

Importing this package starts nothing and imports no engine.
"""
