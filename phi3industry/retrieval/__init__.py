"""Retrieval: documents in, a Chroma index kept in sync, dense / hybrid / MMR search out.

Example:
    >>> from phi3industry.retrieval import Retriever, RetrieverConfig
    >>> retriever = Retriever(RetrieverConfig(path="kb-index"))  # doctest: +SKIP
    >>> print(retriever.sync(["manuals/"]).summary())  # doctest: +SKIP
    >>> retriever.search("What does error E-214 mean?", k=3, hybrid=True)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.retrieval.config import RetrieverConfig
    from phi3industry.retrieval.index import INDEX_FILE, Retriever
    from phi3industry.retrieval.search import Hit
    from phi3industry.retrieval.sync import SyncReport

_LAZY = {
    "Hit": "phi3industry.retrieval.search",
    "INDEX_FILE": "phi3industry.retrieval.index",
    "Retriever": "phi3industry.retrieval.index",
    "RetrieverConfig": "phi3industry.retrieval.config",
    "SyncReport": "phi3industry.retrieval.sync",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "INDEX_FILE",
    "Hit",
    "Retriever",
    "RetrieverConfig",
    "SyncReport",
]
