"""The Retriever: a Chroma index that stays in sync with changing documents.

``sync`` is idempotent and crash-safe: chunk ids are derived from content, every chunk
records its document's hash and chunk count, and a document counts as indexed only when
all of its chunks are present with the current hash. A sync killed at any point leaves
documents that the next sync sees as incomplete and redoes, without duplicates. Unchanged
documents are never re-chunked or re-embedded, and a chunk whose text is already in the
index (an edited document's untouched paragraphs, a moved or copied file) reuses its
stored vector instead of being embedded again.

Other processes may search the index while one writes: every write is announced in a
marker file that readers check before each search, reopening Chroma when it changed (an
embedded Chroma client never sees another process's writes by itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import hashlib
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phi3industry._bm25 import BM25Index, ids_fingerprint
from phi3industry.config import RetrieverConfig
from phi3industry.errors import ConfigError, DocumentError, QueryError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever

    from phi3industry.documents import Chunk
    from phi3industry.embeddings import Embedder

INDEX_FILE = "phi3industry.json"
CHANGED_FILE = ".changed"  # rewritten by every write; readers reopen Chroma when it differs
_PAGE = 5000  # rows per Chroma get() page


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk, its score and where it comes from.

    Attributes:
        text: The chunk's text.
        score: Cosine similarity for dense search; the reciprocal-rank-fusion score for
            hybrid search (the cosine is in ``metadata["dense_score"]``).
        source: Path of the source document.
        section: Heading path of the chunk's section, if any.
        span: ``(start, end)`` character offsets of the chunk in the document's text.
        id: The chunk's id in the index.
        page: PDF page (1-based), if any.
        metadata: All stored metadata of the chunk.
    """

    text: str
    score: float
    source: str
    section: str | None
    span: tuple[int, int]
    id: str
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_row(cls, chunk_id: str, text: str, meta: dict[str, Any], score: float) -> Hit:
        page = meta.get("page")
        return cls(
            text=text,
            score=float(score),
            source=str(meta.get("source", "")),
            section=meta.get("section"),
            span=(int(meta.get("start", 0)), int(meta.get("end", 0))),
            id=chunk_id,
            page=int(page) if page is not None else None,
            metadata=dict(meta),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the hit as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["span"] = list(self.span)
        return data

    def to_langchain(self) -> LCDocument:
        """Return the hit as a LangChain ``Document`` (metadata carries score, span and id)."""
        from langchain_core.documents import Document

        meta = {
            **self.metadata,
            "source": self.source,
            "section": self.section,
            "page": self.page,
            "score": self.score,
            "id": self.id,
            "span": list(self.span),
        }
        return Document(page_content=self.text, metadata=meta, id=self.id)

    def format(self, rank: int, width: int = 240) -> str:
        """Return a human-readable, two-line rendering of the hit."""
        where = self.source + (f" > {self.section}" if self.section else "")
        if self.page is not None:
            where += f" (page {self.page})"
        preview = " ".join(self.text.split())
        if len(preview) > width:
            preview = preview[: width - 3] + "..."
        return (
            f"[{rank}] {self.score:.3f}  {where}  chars {self.span[0]}-{self.span[1]}\n"
            f"    {preview}"
        )


@dataclass
class SyncReport:
    """What a :meth:`Retriever.sync` did.

    Attributes:
        added: Sources indexed for the first time.
        updated: Sources whose changed content replaced their old chunks.
        unchanged: Sources already indexed with the same content (not re-embedded).
        deleted: Sources removed because they are gone from the synced paths.
        skipped: ``(path, reason)`` for files that could not be indexed.
        chunks_written: Chunks upserted.
        chunks_deleted: Stale chunks removed.
        chunks_embedded: Chunk texts actually run through the embedder.
        chunks_reused: Chunks whose vector was reused from the index.
        seconds: Wall time of the sync.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the sync changed the index."""
        return bool(self.added or self.updated or self.deleted or self.chunks_deleted)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["skipped"] = [list(item) for item in self.skipped]
        return data

    def summary(self) -> str:
        """Return a short human-readable summary."""
        lines = [
            f"added {len(self.added)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, deleted {len(self.deleted)}, "
            f"skipped {len(self.skipped)} documents in {self.seconds:.1f}s",
            f"chunks: {self.chunks_written} written ({self.chunks_embedded} embedded, "
            f"{self.chunks_reused} reused), {self.chunks_deleted} removed",
        ]
        lines += [f"skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _DocState:
    ids: list[str] = field(default_factory=list)
    hashes: set[str] = field(default_factory=set)
    n_chunks: int = -1

    def complete(self, doc_hash: str) -> bool:
        return self.hashes == {doc_hash} and len(self.ids) == self.n_chunks


def chunk_id(source: str, index: int, chunk_hash: str) -> str:
    """Return the deterministic id of a chunk (same content at same place = same id)."""
    source_key = hashlib.sha1(source.encode()).hexdigest()[:16]
    return f"{source_key}-{index:05d}-{chunk_hash[:16]}"


def _show_progress(flag: bool) -> bool:
    return flag and sys.stderr.isatty()


def _in_scope(source: str, paths: Sequence[str]) -> bool:
    """Whether ``source`` lies under one of the synced ``paths`` (dirs, files or globs)."""
    for raw in paths:
        if glob.has_magic(raw):
            if fnmatch.fnmatch(source, str(Path(raw).expanduser().absolute())):
                return True
            continue
        root = Path(raw).expanduser().resolve()
        if source == root.as_posix() or source.startswith(root.as_posix().rstrip("/") + "/"):
            return True
    return False


def _auto_backend(config: RetrieverConfig) -> tuple[str, ClientAPI | None]:
    """Resolve ``embedding_backend="auto"`` for ``config``'s index.

    Returns:
        The backend, and the Chroma client made to read an existing index's embedder (None
        for a new embedded index: nothing is created before the embedder has loaded).
    """
    from phi3industry._chroma import existing_index_client, recorded_embedder
    from phi3industry.embeddings import resolve_backend

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
            ConfigError: If the config is invalid or the Chroma server is unreachable.
            EmbedderMismatchError: If the index was built with another embedder.
        """
        from phi3industry._chroma import make_client, open_collection
        from phi3industry.embeddings import load_embedder

        if config is None:
            config = RetrieverConfig(**overrides)
        elif overrides:
            config = RetrieverConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        self._reopen_lock = threading.Lock()
        self._seen_change = self._change_marker()
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
        collection = open_collection(self._client, config, self.embedder, create=True)
        assert collection is not None
        self._collection: Collection = collection
        self._bm25: BM25Index | None = None
        if config.path is not None:
            self._write_index_file()

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
        data = {
            key: value
            for key, value in self.config.to_dict().items()
            if key not in ("path", "host", "port", "progress", "device")
        }
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, target)

    # ------------------------------------------------------------------ other processes
    def _change_marker(self) -> str | None:
        if self.config.path is None:
            return None
        try:
            return (Path(self.config.path) / CHANGED_FILE).read_text(encoding="utf-8")
        except OSError:
            return None

    def _mark_changed(self) -> None:
        """Announce a write to readers in other processes (a new random marker)."""
        if self.config.path is None:
            return
        target = Path(self.config.path) / CHANGED_FILE
        marker = os.urandom(8).hex()
        tmp = target.with_name(f"{CHANGED_FILE}.{os.getpid()}.tmp")
        tmp.write_text(marker, encoding="utf-8")
        os.replace(tmp, target)
        self._seen_change = marker

    def _refresh(self, force: bool = False) -> None:
        """Reopen Chroma if another process wrote to the index since this one loaded it.

        An embedded Chroma client keeps the vector index it loaded in memory: without this,
        dense search would never see another process's writes, and fetching the vector of a
        chunk written meanwhile fails.
        """
        from phi3industry._chroma import make_client, open_collection

        marker = self._change_marker()
        if not force and marker == self._seen_change:
            return
        with self._reopen_lock:
            if not force and marker == self._seen_change:
                return  # another thread reopened meanwhile
            client = make_client(self.config, fresh=True)
            collection = open_collection(client, self.config, self.embedder, create=True)
            assert collection is not None
            self._client, self._collection = client, collection
            self._bm25 = None
            self._seen_change = marker

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

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        from phi3industry._lock import write_lock

        if self.config.path is None:
            yield
            return
        with write_lock(Path(self.config.path)):
            self._refresh()  # another process may have written since this one loaded it
            # Announced at the start too: a writer killed mid-write still leaves a new marker.
            self._mark_changed()
            try:
                yield
            finally:
                self._mark_changed()

    def _document_states(self) -> dict[str, _DocState]:
        states: dict[str, _DocState] = {}
        offset = 0
        while True:
            page = self._collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
            ids = page["ids"]
            for chunk_id_, meta in zip(ids, page["metadatas"] or [], strict=True):
                state = states.setdefault(str(meta.get("source", "")), _DocState())
                state.ids.append(chunk_id_)
                state.hashes.add(str(meta.get("doc_hash", "")))
                state.n_chunks = int(meta.get("n_chunks", -1))  # type: ignore[arg-type]
            if len(ids) < _PAGE:
                return states
            offset += _PAGE

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
        from phi3industry._chroma import chunking_signature, set_chunking
        from phi3industry.documents import discover_files, file_hash

        started = time.perf_counter()
        raw_paths = [str(p) for p in paths]
        files, skipped = discover_files(raw_paths, self.config.include, self.config.exclude)
        report = SyncReport(skipped=list(skipped))
        show = _show_progress(self.config.progress if progress is None else progress)
        with self._writing():
            states = self._document_states()
            signature = chunking_signature(self.config)
            rechunk = (self._collection.metadata or {}).get("phi3industry:chunking") != signature
            pending: list[tuple[Path, str]] = []
            for path in files:
                source = path.as_posix()
                try:
                    doc_hash = file_hash(path)
                except OSError as exc:
                    report.skipped.append((source, f"cannot read file: {exc.strerror or exc}"))
                    continue
                state = states.get(source)
                if state is not None and not rechunk and state.complete(doc_hash):
                    report.unchanged.append(source)
                else:
                    pending.append((path, doc_hash))
            self._index_documents(pending, states, report, show)
            if delete_missing:
                indexed = {p.as_posix() for p in files}
                for source, state in states.items():
                    if source not in indexed and _in_scope(source, raw_paths):
                        self._collection.delete(ids=state.ids)
                        report.deleted.append(source)
                        report.chunks_deleted += len(state.ids)
            if rechunk:
                set_chunking(self._collection, signature)
            if report.changed or not self._bm25_is_fresh():
                self._rebuild_bm25(save=True)
        report.seconds = time.perf_counter() - started
        return report

    def _index_documents(
        self,
        pending: list[tuple[Path, str]],
        states: dict[str, _DocState],
        report: SyncReport,
        show: bool,
    ) -> None:
        from tqdm.auto import tqdm

        from phi3industry.documents import Chunker, load_document

        chunker = Chunker(
            self.embedder.count_tokens, self.config.chunk_size, self.config.chunk_overlap
        )
        group: list[tuple[str, list[Chunk]]] = []
        grouped_chunks = 0
        bar = tqdm(total=len(pending), desc="Indexing", unit="doc", disable=not show)
        for path, _doc_hash in pending:
            source = path.as_posix()
            try:
                document = load_document(path, max_bytes=self.config.max_file_bytes)
                chunks = chunker.split(document)
            except DocumentError as exc:
                report.skipped.append((source, str(exc)))
                bar.update(1)
                continue
            if not chunks:
                report.skipped.append((source, "no text to index after chunking"))
                bar.update(1)
                continue
            (report.updated if source in states else report.added).append(source)
            group.append((source, chunks))
            grouped_chunks += len(chunks)
            if grouped_chunks >= self.config.write_batch_size:
                self._write_group(group, states, report)
                bar.update(len(group))
                group, grouped_chunks = [], 0
        if group:
            self._write_group(group, states, report)
            bar.update(len(group))
        bar.close()

    def _stored_embeddings(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """Vectors already in the index for chunk texts with these hashes."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            batch = hashes[start : start + 500]
            where: Any = {"chunk_hash": {"$in": batch}}
            rows = self._collection.get(where=where, include=["embeddings", "metadatas"])
            embeddings = rows["embeddings"]
            if embeddings is None:
                continue
            for meta, vector in zip(rows["metadatas"] or [], embeddings, strict=True):
                found.setdefault(str(meta["chunk_hash"]), np.asarray(vector, dtype=np.float32))
        return found

    def _write_group(
        self, group: list[tuple[str, list[Chunk]]], states: dict[str, _DocState], report: SyncReport
    ) -> None:
        unique = {c.chunk_hash: c.text for _, chunks in group for c in chunks}
        vectors = self._stored_embeddings(list(unique))
        missing = [h for h in unique if h not in vectors]
        if missing:
            embedded = self.embedder.embed_documents(
                [unique[h] for h in missing], batch_size=self.config.batch_size
            )
            vectors.update(zip(missing, np.asarray(embedded, dtype=np.float32), strict=True))
        report.chunks_embedded += len(missing)
        ids: list[str] = []
        rows: list[Chunk] = []
        metadatas: list[dict[str, Any]] = []
        stale: list[str] = []
        for source, chunks in group:
            doc_ids = [chunk_id(source, c.index, c.chunk_hash) for c in chunks]
            ids += doc_ids
            rows += chunks
            metadatas += [{**c.metadata(), "n_chunks": len(chunks)} for c in chunks]
            stale += sorted(set(states.get(source, _DocState()).ids) - set(doc_ids))
        # One write for the whole group: each Chroma call has a fixed cost (~25 ms).
        max_batch = self._client.get_max_batch_size()
        for start in range(0, len(rows), max_batch):
            end = start + max_batch
            self._collection.upsert(
                ids=ids[start:end],
                embeddings=np.stack([vectors[c.chunk_hash] for c in rows[start:end]]),
                documents=[c.text for c in rows[start:end]],
                metadatas=metadatas[start:end],  # type: ignore[arg-type]
            )
        report.chunks_written += len(rows)
        missing_set = set(missing)
        report.chunks_reused += sum(1 for c in rows if c.chunk_hash not in missing_set)
        if stale:
            self._collection.delete(ids=stale)
            report.chunks_deleted += len(stale)
        self._mark_changed()

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
            ids = self._collection.get(where={"source": key}, include=[])["ids"]
            if ids:
                self._collection.delete(ids=ids)
                self._rebuild_bm25(save=True)
        return len(ids)

    # ------------------------------------------------------------------ BM25
    def _bm25_dir(self) -> Path:
        if self.config.path is not None:
            return Path(self.config.path) / "bm25"
        from phi3industry.models import cache_dir

        return (
            cache_dir() / "bm25" / f"{self.config.host}_{self.config.port}_{self.config.collection}"
        )

    def _all_ids(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            page = self._collection.get(include=[], limit=_PAGE, offset=offset)["ids"]
            ids.extend(page)
            if len(page) < _PAGE:
                return ids
            offset += _PAGE

    def _bm25_is_fresh(self) -> bool:
        stored = self._bm25 or BM25Index.load(self._bm25_dir())
        return stored is not None and stored.fingerprint == ids_fingerprint(self._all_ids())

    def _rebuild_bm25(self, save: bool) -> BM25Index:
        ids: list[str] = []
        texts: list[str] = []
        offset = 0
        while True:
            page = self._collection.get(include=["documents"], limit=_PAGE, offset=offset)
            ids.extend(page["ids"])
            texts.extend(page["documents"] or [])
            if len(page["ids"]) < _PAGE:
                break
            offset += _PAGE
        index = BM25Index.build(ids, texts)
        if save:
            index.save(self._bm25_dir())
        self._bm25 = index
        return index

    def _bm25_index(self) -> BM25Index:
        count = self._collection.count()
        if self._bm25 is not None and len(self._bm25.ids) == count:
            return self._bm25
        loaded = BM25Index.load(self._bm25_dir())
        if loaded is not None and loaded.fingerprint == ids_fingerprint(self._all_ids()):
            self._bm25 = loaded
            return loaded
        # Stale or missing (another process changed the index): rebuild in memory.
        return self._rebuild_bm25(save=False)

    # ------------------------------------------------------------------ searching
    def _check_query(self, query: str, k: int) -> None:
        if not isinstance(query, str) or not query.strip():
            raise QueryError("The search query is empty; pass the text to search for.")
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise QueryError(f"k must be a positive integer (number of hits), got {k!r}.")

    def _chroma_call(self, func: Any, **kwargs: Any) -> Any:
        from chromadb.errors import ChromaError, InternalError

        try:
            return func(**kwargs)
        except InternalError:
            raise  # not the filter's fault: a stale state, see _retrying
        except (ValueError, TypeError, KeyError, ChromaError) as exc:
            if "where" in kwargs and kwargs["where"] is not None:
                raise QueryError(
                    f"Invalid where filter {kwargs['where']!r}: {exc}. Use Chroma's filter "
                    'syntax, e.g. {"source": "/docs/a.md"} or {"page": {"$gte": 2}}.'
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
    ) -> list[Hit]:
        """Find the chunks most relevant to ``query``.

        Args:
            query: What to look for.
            k: Number of hits (default: the config's ``k``).
            where: Chroma metadata filter, e.g. ``{"source": "/docs/a.md"}``.
            hybrid: Fuse BM25 keyword hits with dense hits by reciprocal-rank fusion.
            mmr: Re-rank candidates by maximal marginal relevance for diversity.
            min_score: Drop hits whose cosine similarity to the query is below this.

        Returns:
            Up to ``k`` hits, best first.

        Raises:
            QueryError: If the query is empty, ``k`` is not positive or ``where`` is invalid.
        """
        return self._retrying(  # type: ignore[no-any-return]
            self._search, query, k, where, hybrid, mmr, min_score
        )

    def _search(
        self,
        query: str,
        k: int | None,
        where: dict[str, Any] | None,
        hybrid: bool | None,
        mmr: bool | None,
        min_score: float | None,
    ) -> list[Hit]:
        cfg = self.config
        k = cfg.k if k is None else k
        self._check_query(query, k)
        if where is not None and not isinstance(where, dict):
            raise QueryError(f"where must be a dict filter, got {type(where).__name__}.")
        hybrid = cfg.hybrid if hybrid is None else hybrid
        mmr = cfg.mmr if mmr is None else mmr
        min_score = cfg.min_score if min_score is None else min_score
        total = self._collection.count()
        if total == 0:
            return []
        query_vector = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
        n_dense = min(total, max(k, cfg.fetch_k) if (hybrid or mmr) else k)
        include = ["documents", "metadatas", "distances"] + (["embeddings"] if mmr else [])
        rows = self._chroma_call(
            self._collection.query,
            query_embeddings=[query_vector],
            n_results=n_dense,
            where=where,
            include=include,
        )
        candidates: dict[str, dict[str, Any]] = {}
        for i, chunk_id_ in enumerate(rows["ids"][0]):
            candidates[chunk_id_] = {
                "text": rows["documents"][0][i],
                "meta": rows["metadatas"][0][i],
                "dense": 1.0 - float(rows["distances"][0][i]),
                "vector": rows["embeddings"][0][i] if mmr else None,
            }
        order = list(candidates)
        scores = {cid: candidates[cid]["dense"] for cid in order}
        if hybrid:
            order, scores = self._fuse(query, query_vector, where, candidates, mmr)
        if min_score is not None:
            order = [cid for cid in order if candidates[cid]["dense"] >= min_score]
        if mmr:
            order = self._mmr(query_vector, order, candidates, k)
        hits = []
        for cid in order[:k]:
            item = candidates[cid]
            meta = {**item["meta"], "dense_score": item["dense"]} if hybrid else item["meta"]
            hits.append(Hit._from_row(cid, item["text"], meta, scores[cid]))
        return hits

    def _fuse(
        self,
        query: str,
        query_vector: np.ndarray,
        where: dict[str, Any] | None,
        candidates: dict[str, dict[str, Any]],
        need_vectors: bool,
    ) -> tuple[list[str], dict[str, float]]:
        """Reciprocal-rank fusion of the dense candidates with BM25 hits."""
        dense_order = list(candidates)
        keyword = self._bm25_index().search(query, self.config.fetch_k * (4 if where else 1))
        keyword_ids = [cid for cid, _ in keyword]
        unseen = [cid for cid in keyword_ids if cid not in candidates]
        if unseen or where is not None:
            rows = self._chroma_call(
                self._collection.get,
                ids=keyword_ids,
                where=where,
                include=["documents", "metadatas", "embeddings"],
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
        rrf_k = self.config.rrf_k
        fused: dict[str, float] = {}
        for ranking in (dense_order, keyword_ids):
            for rank, cid in enumerate(ranking):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (rrf_k + rank + 1)
        order = sorted(fused, key=lambda cid: -fused[cid])
        return order, fused

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
        relevance = vectors @ query_vector
        lam = self.config.mmr_lambda
        chosen: list[int] = []
        remaining = list(range(len(order)))
        while remaining and len(chosen) < k:
            if chosen:
                redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1)
            else:
                redundancy = np.zeros(len(remaining))
            best = int(np.argmax(lam * relevance[remaining] - (1 - lam) * redundancy))
            chosen.append(remaining.pop(best))
        return [order[i] for i in chosen]

    def iter_chunks(self, where: dict[str, Any] | None = None) -> Iterator[Hit]:
        """Yield every stored chunk (optionally filtered), e.g. as training text.

        Hits from this method are not search results: their ``score`` is 1.0.
        """
        offset = 0
        while True:
            page = self._chroma_call(
                self._collection.get,
                where=where,
                include=["documents", "metadatas"],
                limit=_PAGE,
                offset=offset,
            )
            for cid, text, meta in zip(
                page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True
            ):
                yield Hit._from_row(cid, text, dict(meta), 1.0)
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    def as_langchain(self, k: int = 4, **search_kwargs: Any) -> BaseRetriever:
        """Return this index as a LangChain retriever (sync and async).

        Args:
            k: Number of documents per query; also settable per call
                (``retriever.invoke(query, k=2)``).
            **search_kwargs: Defaults for :meth:`search` (``hybrid``, ``mmr``, ``where``,
                ``min_score``).
        """
        from phi3industry._langchain import IndexRetriever

        return IndexRetriever(index=self, k=k, search_kwargs=search_kwargs)

    # ------------------------------------------------------------------ facts
    def stats(self) -> dict[str, Any]:
        """Return documents, chunks, embedder, dimension and on-disk size of the index."""
        states = self._document_states()
        info: dict[str, Any] = {
            "collection": self.config.collection,
            "location": self.config.path or f"{self.config.host}:{self.config.port}",
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
        where = self.config.path or f"{self.config.host}:{self.config.port}"
        return f"Retriever({where!r}, collection={self.config.collection!r})"
