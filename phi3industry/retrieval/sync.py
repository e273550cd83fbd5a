"""Keeping an index in line with a set of documents: what ``Retriever.sync`` does.

``sync`` is idempotent and crash-safe: chunk ids are derived from content, every chunk records
its document's hash and chunk count, and a document counts as indexed only when all of its
chunks are present with the current hash. A sync killed at any point leaves documents that
the next sync sees as incomplete and redoes, without duplicates. Unchanged documents are never
re-chunked or re-embedded, and a chunk whose text is already in the index (an edited
document's untouched paragraphs, a moved or copied file) reuses its stored vector instead of
being embedded again.

Example:
    >>> from phi3industry.retrieval.sync import chunk_id
    >>> chunk_id("/kb/a.md", 3, "0123456789abcdef0123")
    'f4cf1bb12407060c-00003-0123456789abcdef'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phi3industry.errors import DocumentError
from phi3industry.retrieval.chroma import chunking_signature, iter_rows, set_chunking
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.retrieval.documents import (
    Chunk,
    Chunker,
    discover_files,
    file_hash,
    load_document,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from phi3industry.retrieval.embeddings import Embedder

_HASH_BATCH = 500  # chunk hashes per "$in" lookup of stored vectors


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
class DocState:
    """What the index holds of one document: its chunk ids, the hashes they record, the count."""

    ids: list[str] = field(default_factory=list)
    hashes: set[str] = field(default_factory=set)
    n_chunks: int = -1

    def complete(self, doc_hash: str) -> bool:
        """Whether every chunk of the document's version ``doc_hash`` is present."""
        return self.hashes == {doc_hash} and len(self.ids) == self.n_chunks


def chunk_id(source: str, index: int, chunk_hash: str) -> str:
    """Return the deterministic id of a chunk (same content at same place = same id)."""
    source_key = hashlib.sha1(source.encode()).hexdigest()[:16]
    return f"{source_key}-{index:05d}-{chunk_hash[:16]}"


def in_scope(source: str, paths: Sequence[str]) -> bool:
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


def document_states(collection: Collection) -> dict[str, DocState]:
    """Every indexed document's :class:`DocState`, by source path."""
    states: dict[str, DocState] = {}
    for page in iter_rows(collection, ("metadatas",)):
        for cid, meta in zip(page.ids, page.metadatas, strict=True):
            state = states.setdefault(str(meta.get("source", "")), DocState())
            state.ids.append(cid)
            state.hashes.add(str(meta.get("doc_hash", "")))
            state.n_chunks = int(meta.get("n_chunks", -1))
    return states


class Syncer:
    """One sync of a collection with documents on disk (run under the index's write lock).

    Args:
        client: The Chroma client (for its batch size limit).
        collection: The collection to write.
        embedder: Embeds chunks whose vector is not stored yet.
        config: Chunking, file filters, batch sizes, progress.
        announce: Called after every write (tells other processes to reopen).
    """

    def __init__(
        self,
        client: ClientAPI,
        collection: Collection,
        embedder: Embedder,
        config: RetrieverConfig,
        announce: Any = None,
    ) -> None:
        self.client, self.collection, self.embedder, self.config = (
            client,
            collection,
            embedder,
            config,
        )
        self.announce = announce or (lambda: None)

    def run(self, paths: Sequence[str], delete_missing: bool, show: bool) -> SyncReport:
        """Add new, replace changed and (with ``delete_missing``) drop vanished documents."""
        files, skipped = discover_files(list(paths), self.config.include, self.config.exclude)
        report = SyncReport(skipped=list(skipped))
        states = document_states(self.collection)
        signature = chunking_signature(self.config)
        rechunk = (self.collection.metadata or {}).get("phi3industry:chunking") != signature
        pending: list[Path] = []
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
                pending.append(path)
        self._index_documents(pending, states, report, show)
        if delete_missing:
            indexed = {p.as_posix() for p in files}
            for source, state in states.items():
                if source not in indexed and in_scope(source, paths):
                    self.collection.delete(ids=state.ids)
                    report.deleted.append(source)
                    report.chunks_deleted += len(state.ids)
        if rechunk:
            set_chunking(self.collection, signature)
        return report

    def _index_documents(
        self, pending: list[Path], states: dict[str, DocState], report: SyncReport, show: bool
    ) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        chunker = Chunker(self.embedder.count_tokens, cfg.chunk_size, cfg.chunk_overlap)
        group: list[tuple[str, list[Chunk]]] = []
        grouped_chunks = 0
        bar = tqdm(total=len(pending), desc="Indexing", unit="doc", disable=not show)
        for path in pending:
            source = path.as_posix()
            try:
                chunks = chunker.split(load_document(path, max_bytes=cfg.max_file_bytes))
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
            if grouped_chunks >= cfg.write_batch_size:
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
        for start in range(0, len(hashes), _HASH_BATCH):
            where: Any = {"chunk_hash": {"$in": hashes[start : start + _HASH_BATCH]}}
            rows = self.collection.get(where=where, include=["embeddings", "metadatas"])
            embeddings = rows["embeddings"]
            if embeddings is None:
                continue
            for meta, vector in zip(rows["metadatas"] or [], embeddings, strict=True):
                found.setdefault(str(meta["chunk_hash"]), np.asarray(vector, dtype=np.float32))
        return found

    def _write_group(
        self, group: list[tuple[str, list[Chunk]]], states: dict[str, DocState], report: SyncReport
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
            stale += sorted(set(states.get(source, DocState()).ids) - set(doc_ids))
        # One write for the whole group: each Chroma call has a fixed cost (~25 ms).
        max_batch = self.client.get_max_batch_size()
        for start in range(0, len(rows), max_batch):
            end = start + max_batch
            self.collection.upsert(
                ids=ids[start:end],
                embeddings=np.stack([vectors[c.chunk_hash] for c in rows[start:end]]),
                documents=[c.text for c in rows[start:end]],
                metadatas=metadatas[start:end],  # type: ignore[arg-type]
            )
        report.chunks_written += len(rows)
        missing_set = set(missing)
        report.chunks_reused += sum(1 for c in rows if c.chunk_hash not in missing_set)
        if stale:
            self.collection.delete(ids=stale)
            report.chunks_deleted += len(stale)
        self.announce()


def show_progress(flag: bool) -> bool:
    """Progress bars only where someone watches: ``flag`` and stderr is a terminal."""
    return flag and sys.stderr.isatty()


__all__ = ["DocState", "SyncReport", "Syncer", "chunk_id", "document_states", "in_scope"]
