"""The Retriever: a Chroma index that stays in sync with changing documents, and its search.

The index's parts each have their module: :mod:`~phi3industry.retrieval.sync` (what a sync
writes, crash-safely), :mod:`~phi3industry.retrieval.search` (hits, fusion, MMR),
:mod:`~phi3industry.retrieval.chroma` (clients, collections, paged reads),
:mod:`~phi3industry.retrieval.coherence` (several processes on one index) and
:mod:`~phi3industry.retrieval.bm25` (the keyword side index). The :class:`Retriever` ties them
together behind ``sync``, ``search`` and ``as_langchain``.

Other processes may search the index while one writes: every write is announced in a marker
file that readers check before each search, reopening Chroma when it changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phi3industry.errors import ConfigError, QueryError, QueryTruncatedWarning
from phi3industry.models import cache_dir
from phi3industry.retrieval.bm25 import BM25Cache
from phi3industry.retrieval.chroma import (
    copies_name,
    existing_index_client,
    iter_rows,
    make_client,
    open_collection,
    recorded_embedder,
)
from phi3industry.retrieval.coherence import ChangeMarker, write_lock
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.retrieval.documents import chunk_header, contextual_text
from phi3industry.retrieval.embeddings import Embedder, load_embedder, resolve_backend
from phi3industry.retrieval.rerank import load_reranker
from phi3industry.retrieval.search import (
    Hit,
    collapse_duplicates,
    keyword_weight,
    mmr_select,
    rrf_fuse,
    spread_over_sources,
)
from phi3industry.retrieval.sync import (
    VECTOR_KEY,
    Syncer,
    SyncReport,
    document_states,
    show_progress,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_core.retrievers import BaseRetriever

#: The index's own settings file, beside Chroma's folder (``Retriever.open`` reads it).
INDEX_FILE = "phi3industry.json"
_NOT_STORED = ("path", "host", "port", "progress", "device")


def _auto_backend(config: RetrieverConfig) -> tuple[str, ClientAPI | None]:
    """Resolve ``embedding_backend="auto"`` for ``config``'s index.

    Returns:
        The backend, and the Chroma client made to read an existing index's embedder (None
        for a new embedded index: nothing is created before the embedder has loaded).
    """
    client = existing_index_client(config)
    built_with = recorded_embedder(client, config) if client is not None else None
    backend = resolve_backend(config.embedding, "auto", config.device, built_with=built_with)
    return backend, client


class Retriever:
    """A Chroma-backed document index with dense, hybrid (BM25 + dense) and MMR search.

    Example:
        >>> from phi3industry import Retriever, RetrieverConfig
        >>> retriever = Retriever(RetrieverConfig(path="kb-index"))  # doctest: +SKIP
        >>> report = retriever.sync(["docs/"])  # doctest: +SKIP
        >>> for hit in retriever.search("How do I reset the robot?", k=3):  # doctest: +SKIP
        ...     print(hit.source, hit.section, hit.score)
    """

    def __init__(self, config: RetrieverConfig | None = None, **overrides: Any) -> None:
        """Open or create the index described by ``config``.

        Args:
            config: Where the index lives and how to chunk, embed and search.
            **overrides: Config fields to set on top of ``config`` (or instead of it).

        Raises:
            ConfigError: If the config is invalid or names no index location.
            IndexConnectionError: If the Chroma server is unreachable.
            EmbedderMismatchError: If the index was built with another embedder.
        """
        if config is None:
            config = RetrieverConfig(**overrides)
        elif overrides:
            config = RetrieverConfig.from_dict({**config.to_dict(), **overrides})
        if config.path is None and config.host is None:
            raise ConfigError(
                "RetrieverConfig needs exactly one of 'path' (embedded index directory) or "
                "'host' (Chroma server); got neither. Set path='kb-index' (CLI: --index DIR)."
            )
        self.config = config
        self._reopen_lock = threading.Lock()
        self._marker = ChangeMarker(config.path)
        # Row counts of an embedded index's collections, kept until it changes (Chroma's
        # count() scans: four calls were half of a search at 100k chunks).
        self._counts: dict[str, int] = {}
        client = None
        if config.embedding_backend == "auto":
            backend, client = _auto_backend(config)
            self.config = config = dataclasses.replace(config, embedding_backend=backend)
        self.embedder: Embedder = load_embedder(
            config.embedding, backend=config.embedding_backend, device=config.device
        )
        limit = self.embedder.max_tokens
        if limit is not None and config.chunk_size > limit:
            warnings.warn(
                f"chunk_size={config.chunk_size} exceeds what embedder {self.embedder.name!r} "
                f"reads ({limit} tokens): the end of each chunk would be ignored when "
                f"embedding. Use chunk_size <= {limit}.",
                stacklevel=2,
            )
        # fresh: this process may hold an older state of the index, loaded before another
        # process wrote to it.
        self._client = client if client is not None else make_client(config, fresh=True)
        self._collection: Collection = self._open_collection(self._client)
        self._copies: Collection = self._open_collection(self._client, copies=True)
        self._bm25 = BM25Cache(self._bm25_dir(), contextual=config.contextual_headers)
        # The index file holds the settings of the index's last writer: opening an index to
        # search it, with any overrides, leaves it as it is.
        if config.path is not None and not (Path(config.path) / INDEX_FILE).exists():
            self._write_index_file()

    def _open_collection(self, client: ClientAPI, copies: bool = False) -> Collection:
        name = copies_name(self.config.collection) if copies else None
        collection = open_collection(client, self.config, self.embedder, create=True, name=name)
        assert collection is not None  # create=True
        return collection

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, **overrides: Any) -> Retriever:
        """Open an existing embedded index with the settings it was built with.

        Args:
            path: The index directory.
            **overrides: Settings to change (search defaults, progress; not the embedder).

        Raises:
            ConfigError: If ``path`` holds no phi3industry index.
        """
        index_file = Path(path) / INDEX_FILE
        try:
            stored = json.loads(index_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"No phi3industry index at {path} (no {INDEX_FILE}). Create one with "
                f"`phi3industry ingest DOCS --index {path}` or Retriever(RetrieverConfig("
                f"path={str(path)!r})).sync([...])."
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read {index_file}: {exc}") from exc
        stored.update(overrides, path=str(path))
        return cls(RetrieverConfig.from_dict(stored))

    def _write_index_file(self) -> None:
        assert self.config.path is not None
        target = Path(self.config.path) / INDEX_FILE
        data = {k: v for k, v in self.config.to_dict().items() if k not in _NOT_STORED}
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, target)

    # ------------------------------------------------------------------ other processes
    def _refresh(self, force: bool = False) -> None:
        """Reopen Chroma if another process wrote to the index since this one loaded it.

        An embedded Chroma client keeps the vector index it loaded in memory: without this,
        dense search would never see another process's writes, and fetching the vector of a
        chunk written meanwhile fails.
        """
        if not force and not self._marker.changed():
            return
        with self._reopen_lock:
            marker = self._marker.read()
            if not force and marker == self._marker.seen:
                return  # another thread reopened meanwhile
            client = make_client(self.config, fresh=True)
            self._client, self._collection = client, self._open_collection(client)
            self._copies = self._open_collection(client, copies=True)
            self._bm25.forget()
            self._counts.clear()
            self._marker.seen = marker

    def _retrying(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a read; if a concurrent write made Chroma's loaded state stale, reopen once."""
        from chromadb.errors import InternalError

        self._refresh()
        try:
            return func(*args, **kwargs)
        except InternalError:
            if self.config.path is None:
                raise
            self._refresh(force=True)
            return func(*args, **kwargs)

    def _count(self, part: Collection) -> int:
        """``part.count()``, remembered until the next write for an embedded index.

        A Chroma server may be written to by others without notice: it is asked each time.
        """
        if self.config.path is None:
            return part.count()
        count = self._counts.get(part.name)
        if count is None:
            count = self._counts[part.name] = part.count()
        return count

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self.config.path is None:
            yield
            return
        with write_lock(Path(self.config.path)):
            self._refresh()  # another process may have written since this one loaded it
            self._write_index_file()
            # Announced at the start too: a writer killed mid-write still leaves a new marker.
            self._marker.mark()
            try:
                yield
            finally:
                self._counts.clear()
                self._marker.mark()

    def sync(
        self,
        paths: Sequence[str | Path],
        delete_missing: bool = True,
        progress: bool | None = None,
    ) -> SyncReport:
        """Bring the index in line with the documents under ``paths``.

        Unchanged documents are skipped without re-embedding; a changed document's old
        chunks are replaced; with ``delete_missing``, indexed documents that lie under
        ``paths`` but no longer exist are removed. Files that cannot be read are skipped
        (see ``SyncReport.skipped``) and whatever was indexed for them is kept.

        Args:
            paths: Files, directories or glob patterns.
            delete_missing: Remove indexed documents gone from ``paths``.
            progress: Show a progress bar (default: the config's ``progress``, TTY only).

        Returns:
            What was added, updated, left unchanged, deleted and skipped.

        Raises:
            DocumentError: If a path does not exist.
            IndexLockedError: If another process is writing to the same index.
        """
        started = time.perf_counter()
        show = show_progress(self.config.progress if progress is None else progress)
        with self._writing():
            syncer = self._syncer()
            report = syncer.run([str(p) for p in paths], delete_missing, show)
            if report.changed or not self._bm25.is_fresh(self._collection):
                self._bm25.rebuild(self._collection, save=True)
        report.seconds = time.perf_counter() - started
        return report

    def _syncer(self) -> Syncer:
        return Syncer(
            self._client,
            self._collection,
            self._copies,
            self.embedder,
            self.config,
            self._marker.mark,
        )

    def add(self, path: str | Path) -> SyncReport:
        """Index (or re-index) one document, leaving everything else as it is."""
        return self.sync([path], delete_missing=False)

    def delete(self, source: str | Path) -> int:
        """Remove one document's chunks from the index.

        Args:
            source: The document's path (as indexed, or a path that resolves to it).

        Returns:
            The number of chunks removed (0 if the document was not indexed).
        """
        key = Path(source).expanduser().resolve().as_posix()
        with self._writing():
            hashes: dict[str, str] = {}
            for part in (self._collection, self._copies):
                rows = part.get(where={"source": key}, include=["metadatas"])
                for cid, meta in zip(rows["ids"], rows["metadatas"] or [], strict=True):
                    hashes[cid] = str(meta.get(VECTOR_KEY, ""))
            if hashes:
                self._syncer().remove(list(hashes), hashes)
                self._bm25.rebuild(self._collection, save=True)
        return len(hashes)

    def _bm25_dir(self) -> Path:
        if self.config.path is not None:
            return Path(self.config.path) / "bm25"
        cfg = self.config
        return cache_dir() / "bm25" / f"{cfg.host}_{cfg.port}_{cfg.collection}"

    # ------------------------------------------------------------------ searching
    @staticmethod
    @contextlib.contextmanager
    def _filter_errors(where: dict[str, Any] | None) -> Iterator[None]:
        """Turn Chroma's complaint about a bad ``where`` filter into a :class:`QueryError`."""
        from chromadb.errors import ChromaError, InternalError

        try:
            yield
        except InternalError:
            raise  # not the filter's fault: a stale state, see _retrying
        except (ValueError, TypeError, KeyError, ChromaError) as exc:
            if where is not None:
                raise QueryError(
                    f"Invalid where filter {where!r}: {exc}. Use Chroma's filter syntax, "
                    'e.g. {"source": "/docs/a.md"} or {"page": {"$gte": 2}}.'
                ) from exc
            raise

    def search(
        self,
        query: str,
        k: int | None = None,
        where: dict[str, Any] | None = None,
        hybrid: bool | None = None,
        mmr: bool | None = None,
        min_score: float | None = None,
        reranker: str | bool | None = None,
    ) -> list[Hit]:
        """Find the chunks most relevant to ``query``.

        Args:
            query: What to look for.
            k: Number of hits (default: the config's ``k``).
            where: Chroma metadata filter, e.g. ``{"source": "/docs/a.md"}``.
            hybrid: Fuse BM25 keyword hits with dense hits by reciprocal-rank fusion.
            mmr: Re-rank candidates by maximal marginal relevance for diversity.
            min_score: Drop hits whose cosine similarity to the query is below this.
            reranker: Re-score the top ``rerank_top_n`` candidates with this cross-encoder
                (directory or hub id) and keep the best ``k``; ``True``/None: the config's
                ``reranker`` (if any), ``False``: none. ``Hit.score`` is then the
                cross-encoder's score (also in ``metadata["rerank_score"]``).

        Returns:
            Up to ``k`` hits, best first.

        Raises:
            QueryError: If the query is empty, ``k`` is not positive or ``where`` is invalid.
        """
        return self._retrying(  # type: ignore[no-any-return]
            self._search, query, k, where, hybrid, mmr, min_score, reranker
        )

    def _search(
        self,
        query: str,
        k: int | None,
        where: dict[str, Any] | None,
        hybrid: bool | None,
        mmr: bool | None,
        min_score: float | None,
        reranker: str | bool | None = None,
    ) -> list[Hit]:
        cfg = self.config
        k = cfg.k if k is None else k
        if not isinstance(query, str) or not query.strip():
            raise QueryError("The search query is empty; pass the text to search for.")
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise QueryError(f"k must be a positive integer (number of hits), got {k!r}.")
        if where is not None and not isinstance(where, dict):
            raise QueryError(f"where must be a dict filter, got {type(where).__name__}.")
        hybrid = cfg.hybrid if hybrid is None else hybrid
        mmr = cfg.mmr if mmr is None else mmr
        if reranker is None or reranker is True:
            reranker = cfg.reranker
        if (
            reranker is not None
            and reranker is not False
            and not (isinstance(reranker, str) and reranker.strip())
        ):
            raise QueryError(
                f"reranker must be a cross-encoder directory or hub id, True, False or None; "
                f"got {reranker!r}."
            )
        min_score = cfg.min_score if min_score is None else min_score
        total = self._count(self._collection)
        if total == 0:
            return []
        query_vector, query_info = self._embed_query(query)
        # More than k: near-identical passages collapse into one hit afterwards.
        n_dense = min(total, max(k, cfg.fetch_k, cfg.rerank_top_n if reranker else 0))
        include = ["documents", "metadatas", "distances"] + (["embeddings"] if mmr else [])
        candidates: dict[str, dict[str, Any]] = {}
        parts = [self._collection]
        if where is not None and self._count(self._copies):
            parts.append(self._copies)  # a filter may match only a copy's source
        for part in parts:
            with self._filter_errors(where):
                rows: Any = part.query(
                    query_embeddings=[query_vector],  # type: ignore[arg-type]
                    n_results=min(n_dense, self._count(part)),
                    where=where,
                    include=include,  # type: ignore[arg-type]
                )
            for i, cid in enumerate(rows["ids"][0]):
                candidates.setdefault(
                    cid,
                    {
                        "text": rows["documents"][0][i],
                        "meta": rows["metadatas"][0][i],
                        "dense": 1.0 - float(rows["distances"][0][i]),
                        "vector": rows["embeddings"][0][i] if mmr else None,
                    },
                )
        order = sorted(candidates, key=lambda cid: -candidates[cid]["dense"])
        scores = {cid: candidates[cid]["dense"] for cid in order}
        if hybrid:
            keyword = self._keyword_candidates(query, query_vector, where, candidates, mmr)
            weight = keyword_weight(query, cfg.bm25_weight)
            order, scores = rrf_fuse([order, keyword], cfg.rrf_k, [1.0, weight])
        if min_score is not None:
            order = [cid for cid in order if candidates[cid]["dense"] >= min_score]
        order, absorbed = collapse_duplicates(order, {c: candidates[c]["text"] for c in order})
        rerank_scores: dict[str, float] = {}
        if isinstance(reranker, str):
            order, rerank_scores = self._rerank(reranker, query, order, candidates)
            scores = {**scores, **rerank_scores}
        if cfg.max_per_source is not None:
            sources = {cid: str(candidates[cid]["meta"].get("source", "")) for cid in order}
            order = spread_over_sources(order, sources, cfg.max_per_source)
        if mmr:
            order = self._mmr(query_vector, order, candidates, k)
        order = order[:k]
        others = self._other_sources(order, absorbed, candidates)
        hits = []
        for cid in order:
            item = candidates[cid]
            meta = {**item["meta"], "dense_score": item["dense"]} if hybrid else item["meta"]
            if query_info:
                meta = {**meta, **query_info}
            if rerank_scores:
                meta = {**meta, "rerank_score": rerank_scores[cid], "dense_score": item["dense"]}
            hits.append(Hit.from_row(cid, item["text"], meta, scores[cid], others[cid]))
        return hits

    def _rerank(
        self, name: str, query: str, order: list[str], candidates: dict[str, dict[str, Any]]
    ) -> tuple[list[str], dict[str, float]]:
        """The top ``rerank_top_n`` of ``order`` re-sorted by the cross-encoder's scores."""
        top = order[: self.config.rerank_top_n]
        if not top:
            return order, {}
        passages = []
        for cid in top:
            text, meta = candidates[cid]["text"], candidates[cid]["meta"]
            if self.config.contextual_headers:
                text = contextual_text(text, chunk_header(meta.get("title"), meta.get("section")))
            passages.append(text)
        scores = load_reranker(name, self.config.device).score(query, passages)
        ranked = sorted(range(len(top)), key=lambda i: -float(scores[i]))
        return [top[i] for i in ranked], {top[i]: float(scores[i]) for i in ranked}

    def _embed_query(self, query: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The query's vector, and what hits should say about it (windows used, a cut)."""
        cfg = self.config
        if cfg.long_query == "pool":
            made = self.embedder.embed_long_query(query, cfg.max_query_windows)
            vector, windows, cut = made.vector, made.windows, made.cut
        else:
            vector, windows = self.embedder.embed_query(query), 1
            limit = self.embedder.max_tokens
            cut = limit is not None and self.embedder.count_tokens(query) > limit
        info: dict[str, Any] = {}
        if windows > 1:
            info["query_windows"] = windows
        if cut:
            info["query_cut"] = True
            how = (
                f"in {windows} windows (max_query_windows={cfg.max_query_windows})"
                if cfg.long_query == "pool"
                else "(long_query='truncate')"
            )
            warnings.warn(
                f"The query is longer than embedder {self.embedder.name!r} reads {how}: "
                "dense search used its start only (BM25 reads all of it). Raise "
                "max_query_windows or use long_query='pool' to use all of it.",
                QueryTruncatedWarning,
                stacklevel=4,
            )
        return np.asarray(vector, dtype=np.float32), info

    def _other_sources(
        self,
        order: list[str],
        absorbed: dict[str, list[str]],
        candidates: dict[str, dict[str, Any]],
    ) -> dict[str, list[str]]:
        """Each hit's other sources: the passages it absorbed, and the copies of its text."""
        others = {
            cid: [str(candidates[a]["meta"].get("source", "")) for a in absorbed.get(cid, [])]
            for cid in order
        }
        if not order or not self._count(self._copies):
            return others
        by_hash: dict[str, list[str]] = {}
        for cid in order:
            for member in (cid, *absorbed.get(cid, [])):
                vector_hash = str(candidates[member]["meta"].get(VECTOR_KEY, ""))
                by_hash.setdefault(vector_hash, []).append(cid)
        rows = self._copies.get(
            where={VECTOR_KEY: {"$in": sorted(by_hash)}},  # type: ignore[dict-item]
            include=["metadatas"],
        )
        for meta in rows["metadatas"] or []:
            for cid in by_hash.get(str(meta.get(VECTOR_KEY, "")), []):
                others[cid].append(str(meta.get("source", "")))
        for cid in others:
            others[cid] = sorted(set(others[cid]))
        return others

    def _keyword_candidates(
        self,
        query: str,
        query_vector: np.ndarray,
        where: dict[str, Any] | None,
        candidates: dict[str, dict[str, Any]],
        need_vectors: bool,
    ) -> list[str]:
        """BM25's ranking (within ``where``); its hits join ``candidates`` with their cosine."""
        keyword = self._bm25.get(self._collection, self._count(self._collection)).search(
            query, self.config.fetch_k * (4 if where else 1)
        )
        keyword_ids = [cid for cid, _ in keyword]
        unseen = [cid for cid in keyword_ids if cid not in candidates]
        if unseen or where is not None:
            with self._filter_errors(where):
                rows: Any = self._collection.get(
                    ids=keyword_ids, where=where, include=["documents", "metadatas", "embeddings"]
                )
            allowed = set(rows["ids"])
            keyword_ids = [cid for cid in keyword_ids if cid in allowed][: self.config.fetch_k]
            for i, cid in enumerate(rows["ids"]):
                if cid in candidates:
                    continue
                vector = np.asarray(rows["embeddings"][i], dtype=np.float32)
                candidates[cid] = {
                    "text": rows["documents"][i],
                    "meta": rows["metadatas"][i],
                    "dense": float(vector @ query_vector),
                    "vector": vector if need_vectors else None,
                }
        return keyword_ids

    def _mmr(
        self,
        query_vector: np.ndarray,
        order: list[str],
        candidates: dict[str, dict[str, Any]],
        k: int,
    ) -> list[str]:
        if not order:
            return order
        missing = [cid for cid in order if candidates[cid]["vector"] is None]
        if missing:
            rows = self._collection.get(ids=missing, include=["embeddings"])
            for cid, vector in zip(rows["ids"], rows["embeddings"] or [], strict=True):
                candidates[cid]["vector"] = vector
        vectors = np.stack([np.asarray(candidates[c]["vector"], np.float32) for c in order])
        return [order[i] for i in mmr_select(query_vector, vectors, k, self.config.mmr_lambda)]

    def iter_chunks(self, where: dict[str, Any] | None = None) -> Iterator[Hit]:
        """Yield every stored chunk (optionally filtered), e.g. as training text.

        Hits from this method are not search results: their ``score`` is 1.0.
        """
        with self._filter_errors(where):
            for part in (self._collection, self._copies):
                for page in iter_rows(part, ("documents", "metadatas"), where=where):
                    for cid, text, meta in zip(
                        page.ids, page.documents, page.metadatas, strict=True
                    ):
                        yield Hit.from_row(cid, text, meta, 1.0)

    def as_langchain(self, k: int = 4, **search_kwargs: Any) -> BaseRetriever:
        """Return this index as a LangChain retriever (sync and async).

        Args:
            k: Number of documents per query; also settable per call
                (``retriever.invoke(query, k=2)``).
            **search_kwargs: Defaults for :meth:`search` (``hybrid``, ``mmr``, ``where``,
                ``min_score``).
        """
        # Imported here: the adapter pulls in langchain, which ingest and search do not need.
        from phi3industry.retrieval.langchain import IndexRetriever

        return IndexRetriever(index=self, k=k, search_kwargs=search_kwargs)

    # ------------------------------------------------------------------ facts
    def stats(self) -> dict[str, Any]:
        """Return documents, chunks, embedder, dimension and on-disk size of the index."""
        states = document_states(self._collection, self._copies)
        info: dict[str, Any] = {
            "collection": self.config.collection,
            "location": self.config.location,
            "documents": len(states),
            "chunks": sum(len(s.ids) for s in states.values()),
            "embedder": self.embedder.name,
            "dimension": self.embedder.dimension,
            "chunk_size": self.config.chunk_size,
            "chunk_overlap": self.config.chunk_overlap,
        }
        if self.config.path is not None:
            size = sum(f.stat().st_size for f in Path(self.config.path).rglob("*") if f.is_file())
            info["size_bytes"] = size
            info["size"] = f"{size / 1e6:.1f} MB"
        return info

    def __repr__(self) -> str:
        return f"Retriever({self.config.location!r}, collection={self.config.collection!r})"


__all__ = ["INDEX_FILE", "Retriever"]
