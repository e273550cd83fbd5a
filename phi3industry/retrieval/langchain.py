"""LangChain adapters for phi3industry objects."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field


class IndexRetriever(BaseRetriever):
    """A LangChain retriever over a phi3industry :class:`~phi3industry.retrieval.Retriever`.

    Each returned ``Document`` carries the hit's source, section, span, id and score in its
    metadata. ``k`` and any :meth:`Retriever.search` argument can be given per call.

    Example:
        >>> lc = retriever.as_langchain(k=3, hybrid=True)  # doctest: +SKIP
        >>> docs = lc.invoke("battery error E42", k=2)  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = 4
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        options = {**self.search_kwargs, **kwargs}
        k = options.pop("k", self.k)
        return [hit.to_langchain() for hit in self.index.search(query, k=k, **options)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        options = {**self.search_kwargs, **kwargs}
        k = options.pop("k", self.k)
        hits = await run_in_executor(None, self.index.search, query, k, **options)
        return [hit.to_langchain() for hit in hits]
