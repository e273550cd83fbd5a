"""The optional reranking stage: a cross-encoder reads the query with each candidate passage.

A bi-encoder (the embedder) compares one vector per text; a cross-encoder reads query and
passage together and scores their match, which is slower but more precise. Search fetches
``rerank_top_n`` candidates (hybrid or dense, near-duplicates collapsed), the cross-encoder
scores each, and the ``k`` best are kept.

Any sentence-transformers ``CrossEncoder`` works: a local directory or a hub id already in
the local Hugging Face cache (``cross-encoder/ms-marco-MiniLM-L-6-v2``,
``BAAI/bge-reranker-base``).

Example:
    >>> from phi3industry.retrieval.rerank import load_reranker
    >>> reranker = load_reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")  # doctest: +SKIP
    >>> reranker.score("reset it", ["Hold the reset button.", "Pallets"])  # doctest: +SKIP
    array([ 5.1, -9.3], dtype=float32)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from phi3industry.errors import ModelNotFoundError


class Reranker:
    """A sentence-transformers ``CrossEncoder`` that scores (query, passage) pairs.

    Args:
        model: The loaded ``CrossEncoder``.
        name: The name or path it was loaded from.
    """

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        self._lock = threading.Lock()  # one forward pass at a time (server threads share it)

    def score(self, query: str, passages: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Score each passage against ``query`` (higher: more relevant).

        Returns:
            A float32 array, one score per passage.
        """
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            scores = self.model.predict(
                [(query, passage) for passage in passages],
                batch_size=batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(passages), -1)[:, -1]

    def __repr__(self) -> str:
        return f"Reranker({self.name!r})"


def _offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(
        os.environ.get(var, "").strip().lower() in truthy
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _resolve(name: str) -> str:
    """A local directory for ``name`` (a directory, or a hub id in the local cache)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"Reranker directory {str(path)!r} holds no config.json, so it is not a "
                "cross-encoder (a sentence-transformers CrossEncoder saved with .save(DIR))."
            )
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or "/" not in name:
        raise ModelNotFoundError(
            f"Reranker {name!r} is neither an existing directory nor a hub id "
            "('owner/name', e.g. 'cross-encoder/ms-marco-MiniLM-L-6-v2')."
        )
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not in the local hub cache
        if _offline():
            raise ModelNotFoundError(
                f"Reranker {name!r} is not in the local Hugging Face cache and downloads are "
                "off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Download it where the hub "
                f"is reachable (huggingface-cli download {name}) or pass a local directory."
            ) from exc
    return name


@lru_cache(maxsize=4)
def load_reranker(name: str, device: str | None = None) -> Reranker:
    """Load a cross-encoder by local directory or hub id (cached per process).

    Raises:
        ModelNotFoundError: If it is neither a directory nor a reachable hub id.
    """
    location = _resolve(name)
    from sentence_transformers import CrossEncoder

    try:
        model = CrossEncoder(location, device=device, max_length=512)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"Cannot load reranker {name!r}: {exc}") from exc
    return Reranker(model, name)


__all__ = ["Reranker", "load_reranker"]
