"""Onboard's RAG layer: load documents, chunk, embed, store in Chroma, retrieve (hybrid) with citations.

Importing this package loads no model; models load on first use. For LangChain: `rag.langchain.OnboardRetriever`.
"""

from rag.config import RagConfig
from rag.errors import RagError
from rag.ingest import IngestReport
from rag.ingest import run as ingest
from rag.prompt import DEFAULT_K, build_rag_messages
from rag.retrieval import Hit, Retriever

__all__ = ["RagConfig", "RagError", "IngestReport", "ingest", "DEFAULT_K", "build_rag_messages", "Hit", "Retriever"]
