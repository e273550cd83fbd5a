"""The BM25 side index used for hybrid search, persisted beside the vector index.

It is derived data: rebuilt from the chunks stored in Chroma whenever they change, and
checked against them when loaded, so it can never hold an entry for a chunk that is gone.
Each build is written to a new generation directory and published by atomically
replacing the ``CURRENT`` pointer file, so a process killed mid-build leaves the previous
generation in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry.retrieval.chroma import iter_rows
from phi3industry.retrieval.documents import chunk_header, contextual_text

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection


def ids_fingerprint(ids: Sequence[str]) -> str:
    """Return an order-independent fingerprint of a set of chunk ids."""
    digest = hashlib.sha256()
    for chunk_id in sorted(ids):
        digest.update(chunk_id.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False, return_ids=False)
    return [list(t) for t in tokens]  # type: ignore[union-attr]


@dataclass
class BM25Index:
    """A BM25 index over chunk ids.

    Attributes:
        ids: Chunk ids, in the order the index numbers them.
        fingerprint: ``ids_fingerprint(ids)``, compared with the vector index on load.
        variant: What the texts carry besides the chunk (``"headers"``: title and section).
    """

    ids: list[str]
    fingerprint: str
    _model: Any
    variant: str = ""

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str], variant: str = "") -> BM25Index:
        """Index ``texts`` (one per id)."""
        import bm25s

        model = bm25s.BM25()
        if ids:
            model.index(_tokenize(texts), show_progress=False)
        return cls(list(ids), ids_fingerprint(ids), model, variant)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Return up to ``k`` ``(chunk_id, bm25_score)`` pairs with a positive score."""
        if not self.ids:
            return []
        query_tokens = _tokenize([query])
        if not query_tokens[0]:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._model.retrieve(query_tokens, k=k, show_progress=False)
        return [
            (self.ids[int(doc)], float(score))
            for doc, score in zip(docs[0], scores[0], strict=True)
            if score > 0
        ]

    def save(self, directory: Path) -> None:
        """Write a new generation under ``directory`` and publish it atomically."""
        directory.mkdir(parents=True, exist_ok=True)
        generation = f"gen-{os.getpid()}-{os.urandom(4).hex()}"
        target = directory / generation
        target.mkdir()
        if self.ids:
            self._model.save(str(target))
        (target / "ids.json").write_text(
            json.dumps({"fingerprint": self.fingerprint, "variant": self.variant, "ids": self.ids}),
            encoding="utf-8",
        )
        pointer_tmp = directory / f"CURRENT.{generation}.tmp"
        pointer_tmp.write_text(generation, encoding="utf-8")
        os.replace(pointer_tmp, directory / "CURRENT")
        for old in directory.iterdir():
            if old.name != generation and old.name != "CURRENT":
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(True)

    @classmethod
    def load(cls, directory: Path) -> BM25Index | None:
        """Load the published generation, or ``None`` when there is none (or it is damaged)."""
        import bm25s

        try:
            generation = (directory / "CURRENT").read_text(encoding="utf-8").strip()
            meta = json.loads((directory / generation / "ids.json").read_text(encoding="utf-8"))
            ids = list(meta["ids"])
            model = bm25s.BM25.load(str(directory / generation)) if ids else bm25s.BM25()
        except (OSError, ValueError, KeyError):
            return None
        return cls(ids, str(meta["fingerprint"]), model, str(meta.get("variant", "")))


class BM25Cache:
    """The BM25 side index of one collection: kept in memory, saved in ``directory``.

    It is checked against the collection's ids before use, so another process's writes are
    never searched with a stale index: a stale one is rebuilt in memory (the writer saves
    its own rebuild).

    Args:
        directory: Where the index is saved (``INDEX/bm25``, or a cache folder for a server).
        contextual: Index each chunk with its document title and section path.
    """

    def __init__(self, directory: Path, contextual: bool = False) -> None:
        self.directory = directory
        self.contextual = contextual
        self.variant = "headers" if contextual else ""
        self._index: BM25Index | None = None

    def forget(self) -> None:
        """Drop the in-memory index (after the collection was reopened)."""
        self._index = None

    def is_fresh(self, collection: Collection) -> bool:
        """Whether the saved (or held) index covers exactly the collection's chunks."""
        stored = self._index or BM25Index.load(self.directory)
        return self._matches(stored, collection)

    def _matches(self, index: BM25Index | None, collection: Collection) -> bool:
        return (
            index is not None
            and index.variant == self.variant
            and index.fingerprint == ids_fingerprint(_all_ids(collection))
        )

    def rebuild(self, collection: Collection, *, save: bool) -> BM25Index:
        """Index every chunk of ``collection`` again (and publish it with ``save``)."""
        ids: list[str] = []
        texts: list[str] = []
        for page in iter_rows(collection, ("documents", "metadatas")):
            ids.extend(page.ids)
            if not self.contextual:
                texts.extend(page.documents)
                continue
            for text, meta in zip(page.documents, page.metadatas, strict=True):
                header = chunk_header(meta.get("title"), meta.get("section"))
                texts.append(contextual_text(text, header))
        index = BM25Index.build(ids, texts, self.variant)
        if save:
            index.save(self.directory)
        self._index = index
        return index

    def get(self, collection: Collection, count: int | None = None) -> BM25Index:
        """A BM25 index that matches ``collection`` now.

        Args:
            collection: The searched collection.
            count: Its number of rows, when the caller knows it (``count()`` scans).
        """
        count = collection.count() if count is None else count
        if self._index is not None and len(self._index.ids) == count:
            return self._index
        loaded = BM25Index.load(self.directory)
        if loaded is not None and self._matches(loaded, collection):
            self._index = loaded
            return loaded
        # Stale or missing (another process changed the index): rebuild in memory.
        return self.rebuild(collection, save=False)


def _all_ids(collection: Collection) -> list[str]:
    return [cid for page in iter_rows(collection) for cid in page.ids]
