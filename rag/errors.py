"""Errors raised by the RAG layer. Each says what went wrong and what to do next."""

from __future__ import annotations


class RagError(Exception):
    """Base class: a user-facing failure in loading, ingesting or retrieving documents."""


class DocsNotFound(RagError):
    pass


class NoDocuments(RagError):
    pass


class BadDocument(RagError):
    pass


class EmbeddingMismatch(RagError):
    pass


class EmptyIndex(RagError):
    pass
