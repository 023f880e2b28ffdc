"""A LangChain `BaseRetriever` over Onboard's retriever, so LangChain chains and agents can use it.

    from rag.langchain import OnboardRetriever
    retriever = OnboardRetriever.from_workspace(".onboard", k=4)
    docs = retriever.invoke("How long do refunds take?")
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.config import RagConfig
from rag.retrieval import Retriever


class OnboardRetriever(BaseRetriever):
    """Hybrid retrieval with citations, as LangChain `Document`s (metadata holds the citation)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    """A `rag.Retriever`."""
    k: int = 4
    filters: dict | None = None

    @classmethod
    def from_workspace(cls, workspace, k: int = 4, filters: dict | None = None, **cfg) -> OnboardRetriever:
        return cls(retriever=Retriever(RagConfig(workspace=workspace, **cfg)), k=k, filters=filters)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.retriever.search(query, self.k, filters=self.filters)
        return [Document(page_content=h.text, id=h.chunk_id, metadata={**h.metadata, **h.citation()}) for h in hits]
