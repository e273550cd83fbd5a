"""Keeping an index in line with a set of documents: what ``Retriever.sync`` does.

``sync`` is idempotent and crash-safe: chunk ids are derived from content, every chunk records
its document's hash and chunk count, and a document counts as indexed only when all of its
chunks are present with the current hash. A sync killed at any point leaves documents that
the next sync sees as incomplete and redoes, without duplicates. Unchanged documents are never
re-chunked or re-embedded, and a chunk whose text is already in the index (an edited
document's untouched paragraphs, a moved or copied file) reuses its stored vector instead of
being embedded again.

Repeated chunk texts are one entry for vector search: the collection that is searched holds
one row per distinct text (its first occurrence), and every other occurrence, in other
documents, lives in a second collection (:func:`~phi3industry.retrieval.chroma.copies_name`)
that records where else the text is. Thousands of identical vectors in one HNSW graph cut it
into pieces that search cannot cross. Within one document a repeated text is kept once (a
file of one repeated line becomes one chunk, and the report says so). When the searched row
of a text is removed, one of its copies takes its place; a sync killed in between is
repaired by the next one.

Example:
    >>> from phi3industry.retrieval.sync import chunk_id
    >>> chunk_id("/kb/a.md", 3, "0123456789abcdef0123")
    'f4cf1bb12407060c-00003-0123456789abcdef'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
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
    embedded_text,
    file_hash,
    load_document,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from phi3industry.retrieval.embeddings import Embedder

_HASH_BATCH = 500  # chunk hashes per "$in" lookup of stored vectors
#: Metadata key of the hash of what was embedded (the chunk's text, with its header when
#: ``contextual_headers`` is on): the identity of a vector, for reuse and for repeats.
VECTOR_KEY = "vector_hash"
#: A document whose distinct chunk texts are at most this share of its chunks is reported.
_REPEATED_SHARE = 0.5


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
        repeated: ``(path, chunks, distinct)`` for documents whose chunks mostly repeat one
            text: each distinct text was indexed once.
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
    repeated: list[tuple[str, int, int]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the sync changed the index."""
        return bool(self.added or self.updated or self.deleted or self.chunks_deleted)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["skipped"] = [list(item) for item in self.skipped]
        data["repeated"] = [list(item) for item in self.repeated]
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
        lines += [
            f"indexed once: {path}: {n} chunks repeat the same text ({distinct} distinct)"
            for path, n, distinct in self.repeated
        ]
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


@dataclass
class IndexScan:
    """Every stored chunk's document, text hash and collection, read in one pass.

    Attributes:
        states: Each indexed document's :class:`DocState`, by source path.
        hashes: Each chunk id's vector hash (:data:`VECTOR_KEY`).
        copies: Ids held by the copies collection (the others are searched).
        doubled: Ids found in both collections (a promotion killed half-way).
    """

    states: dict[str, DocState] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    copies: set[str] = field(default_factory=set)
    doubled: set[str] = field(default_factory=set)


def scan_index(collection: Collection, copies: Collection | None = None) -> IndexScan:
    """Read the metadata of every chunk of ``collection`` and of its ``copies``."""
    scan = IndexScan()
    for part in (collection, copies):
        if part is None:
            continue
        for page in iter_rows(part, ("metadatas",)):
            for cid, meta in zip(page.ids, page.metadatas, strict=True):
                if cid in scan.hashes:
                    scan.doubled.add(cid)  # in both collections: counted once
                    continue
                if part is copies:
                    scan.copies.add(cid)
                scan.hashes[cid] = str(meta.get(VECTOR_KEY, ""))
                state = scan.states.setdefault(str(meta.get("source", "")), DocState())
                state.ids.append(cid)
                state.hashes.add(str(meta.get("doc_hash", "")))
                state.n_chunks = int(meta.get("n_chunks", -1))
    return scan


def document_states(
    collection: Collection, copies: Collection | None = None
) -> dict[str, DocState]:
    """Every indexed document's :class:`DocState`, by source path."""
    return scan_index(collection, copies).states


def drop_repeats(chunks: list[Chunk]) -> list[Chunk]:
    """A document's chunks with each text kept once (its first occurrence)."""
    seen: set[str] = set()
    kept = []
    for chunk in chunks:
        if chunk.chunk_hash not in seen:
            seen.add(chunk.chunk_hash)
            kept.append(chunk)
    return kept


def _ids_by_hash(collection: Collection, hashes: list[str]) -> dict[str, list[str]]:
    """Ids of the rows of ``collection`` holding each of these text hashes."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(hashes), _HASH_BATCH):
        where: Any = {VECTOR_KEY: {"$in": hashes[start : start + _HASH_BATCH]}}
        rows = collection.get(where=where, include=["metadatas"])
        for cid, meta in zip(rows["ids"], rows["metadatas"] or [], strict=True):
            found.setdefault(str(meta[VECTOR_KEY]), []).append(cid)
    return found


def _move(source: Collection, target: Collection, ids: list[str]) -> None:
    """Move rows (text, metadata, vector) from one collection to the other, target first."""
    if not ids:
        return
    rows: Any = source.get(ids=ids, include=["documents", "metadatas", "embeddings"])
    if rows["ids"]:
        target.upsert(
            ids=rows["ids"],
            embeddings=np.asarray(rows["embeddings"], dtype=np.float32),
            documents=rows["documents"],
            metadatas=rows["metadatas"],
        )
    source.delete(ids=ids)


def promote_copies(collection: Collection, copies: Collection, hashes: Sequence[str]) -> int:
    """Give each of these text hashes a searched row again if only copies of it remain.

    Returns:
        The number of copies promoted.
    """
    hashes = sorted(set(hashes))
    if not hashes or copies.count() == 0:
        return 0
    searched = _ids_by_hash(collection, hashes)
    orphans = [h for h in hashes if h not in searched]
    held = _ids_by_hash(copies, orphans) if orphans else {}
    promoted = [sorted(ids)[0] for ids in held.values()]
    _move(copies, collection, promoted)
    return len(promoted)


def repair_copies(collection: Collection, copies: Collection, scan: IndexScan) -> bool:
    """Undo what a killed sync may have left: each text hash searched exactly once.

    Returns:
        Whether anything was changed.
    """
    searched: dict[str, list[str]] = {}
    for cid, vector_hash in scan.hashes.items():
        if cid not in scan.copies and vector_hash:  # "": written before vector hashes
            searched.setdefault(vector_hash, []).append(cid)
    doubled = sorted(scan.doubled)
    if doubled:  # promoted, then killed before the copy was deleted
        copies.delete(ids=doubled)
        scan.doubled.clear()
    extra = [cid for ids in searched.values() for cid in sorted(ids)[1:]]
    _move(collection, copies, extra)
    scan.copies.update(extra)
    orphans = {scan.hashes[cid] for cid in scan.copies} - set(searched) - {""}
    promoted = promote_copies(collection, copies, sorted(orphans))
    return bool(doubled or extra or promoted)


class Syncer:
    """One sync of a collection with documents on disk (run under the index's write lock).

    Args:
        client: The Chroma client (for its batch size limit).
        collection: The collection to write (one row per distinct chunk text).
        copies: The collection of the other occurrences of repeated chunk texts.
        embedder: Embeds chunks whose vector is not stored yet.
        config: Chunking, file filters, batch sizes, progress.
        announce: Called after every write (tells other processes to reopen).
    """

    def __init__(
        self,
        client: ClientAPI,
        collection: Collection,
        copies: Collection,
        embedder: Embedder,
        config: RetrieverConfig,
        announce: Any = None,
    ) -> None:
        self.client, self.collection, self.copies = client, collection, copies
        self.embedder, self.config = embedder, config
        self.announce = announce or (lambda: None)
        # Chunks carry their own token counts; many share a section's header.
        self._count_header = functools.lru_cache(maxsize=4096)(embedder.count_tokens)

    def run(self, paths: Sequence[str], delete_missing: bool, show: bool) -> SyncReport:
        """Add new, replace changed and (with ``delete_missing``) drop vanished documents."""
        files, skipped = discover_files(list(paths), self.config.include, self.config.exclude)
        report = SyncReport(skipped=list(skipped))
        scan = scan_index(self.collection, self.copies)
        if repair_copies(self.collection, self.copies, scan):
            self.announce()
        states = scan.states
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
        self._index_documents(pending, scan, report, show)
        if delete_missing:
            indexed = {p.as_posix() for p in files}
            for source, state in states.items():
                if source not in indexed and in_scope(source, paths):
                    self.remove(state.ids, scan.hashes)
                    report.deleted.append(source)
                    report.chunks_deleted += len(state.ids)
        if rechunk:
            set_chunking(self.collection, signature)
        return report

    def remove(self, ids: list[str], hashes: dict[str, str]) -> None:
        """Delete chunks from both collections; a copy replaces each searched row removed.

        Args:
            ids: The chunk ids.
            hashes: Text hash of (at least) each of these ids.
        """
        if not ids:
            return
        self.collection.delete(ids=ids)
        self.copies.delete(ids=ids)
        promote_copies(self.collection, self.copies, [hashes[c] for c in ids if c in hashes])

    def _index_documents(
        self, pending: list[Path], scan: IndexScan, report: SyncReport, show: bool
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
            distinct = drop_repeats(chunks)
            if len(distinct) <= len(chunks) * _REPEATED_SHARE:
                report.repeated.append((source, len(chunks), len(distinct)))
            chunks = distinct
            (report.updated if source in scan.states else report.added).append(source)
            group.append((source, chunks))
            grouped_chunks += len(chunks)
            if grouped_chunks >= cfg.write_batch_size:
                self._write_group(group, scan, report)
                bar.update(len(group))
                group, grouped_chunks = [], 0
        if group:
            self._write_group(group, scan, report)
            bar.update(len(group))
        bar.close()

    def _stored_embeddings(self, hashes: list[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Vectors already searched for these text hashes, and the id of the row holding each."""
        found: dict[str, np.ndarray] = {}
        owners: dict[str, str] = {}
        for start in range(0, len(hashes), _HASH_BATCH):
            where: Any = {VECTOR_KEY: {"$in": hashes[start : start + _HASH_BATCH]}}
            rows = self.collection.get(where=where, include=["embeddings", "metadatas"])
            embeddings = rows["embeddings"]
            if embeddings is None:
                continue
            for cid, meta, vector in zip(
                rows["ids"], rows["metadatas"] or [], embeddings, strict=True
            ):
                key = str(meta[VECTOR_KEY])
                if key not in found or cid < owners[key]:
                    found[key], owners[key] = np.asarray(vector, dtype=np.float32), cid
        return found, owners

    def _write_group(
        self, group: list[tuple[str, list[Chunk]]], scan: IndexScan, report: SyncReport
    ) -> None:
        headers, window = self.config.contextual_headers, self.embedder.max_tokens
        texts = {
            c: embedded_text(c, headers, self._count_header, window)
            for _, chunks in group
            for c in chunks
        }
        key = {c: hashlib.sha256(t.encode("utf-8")).hexdigest() for c, t in texts.items()}
        unique = {key[c]: texts[c] for c in texts}
        vectors, owners = self._stored_embeddings(list(unique))
        missing = [h for h in unique if h not in vectors]
        if missing:
            embedded = self.embedder.embed_documents(
                [unique[h] for h in missing], batch_size=self.config.batch_size
            )
            vectors.update(zip(missing, np.asarray(embedded, dtype=np.float32), strict=True))
        report.chunks_embedded += len(missing)
        searched: _Rows = _Rows()
        copied: _Rows = _Rows()
        stale: list[str] = []
        for source, chunks in group:
            doc_ids = [chunk_id(source, c.index, c.chunk_hash) for c in chunks]
            for cid, c in zip(doc_ids, chunks, strict=True):
                # The first occurrence of a vector is searched; the others are copies.
                owner = owners.setdefault(key[c], cid)
                rows = searched if owner == cid else copied
                meta = {**c.metadata(), "n_chunks": len(chunks), VECTOR_KEY: key[c]}
                rows.add(cid, c, key[c], meta)
                scan.hashes[cid] = key[c]
            stale += sorted(set(scan.states.get(source, DocState()).ids) - set(doc_ids))
        # Ids that changed side (a text whose searched row belongs to another id now).
        moved_out = [cid for cid in searched.ids if cid in scan.copies]
        moved_in = [cid for cid in copied.ids if cid not in scan.copies]
        # One write for the whole group: each Chroma call has a fixed cost (~25 ms).
        max_batch = self.client.get_max_batch_size()
        for target, rows in ((self.collection, searched), (self.copies, copied)):
            for start in range(0, len(rows.ids), max_batch):
                end = start + max_batch
                target.upsert(
                    ids=rows.ids[start:end],
                    embeddings=np.stack([vectors[h] for h in rows.keys[start:end]]),
                    documents=[c.text for c in rows.chunks[start:end]],
                    metadatas=rows.metadatas[start:end],  # type: ignore[arg-type]
                )
        if moved_out:
            self.copies.delete(ids=moved_out)
            scan.copies.difference_update(moved_out)
        if moved_in:
            self.collection.delete(ids=moved_in)
            scan.copies.update(moved_in)
        n_rows = len(searched.ids) + len(copied.ids)
        report.chunks_written += n_rows
        missing_set = set(missing)
        report.chunks_reused += sum(1 for h in searched.keys + copied.keys if h not in missing_set)
        if stale:
            self.remove(stale, scan.hashes)
            report.chunks_deleted += len(stale)
        self.announce()


@dataclass
class _Rows:
    """Rows gathered for one collection's upsert."""

    ids: list[str] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    metadatas: list[dict[str, Any]] = field(default_factory=list)

    def add(self, cid: str, chunk: Chunk, key: str, metadata: dict[str, Any]) -> None:
        self.ids.append(cid)
        self.chunks.append(chunk)
        self.keys.append(key)
        self.metadatas.append(metadata)


def show_progress(flag: bool) -> bool:
    """Progress bars only where someone watches: ``flag`` and stderr is a terminal."""
    return flag and sys.stderr.isatty()


__all__ = [
    "VECTOR_KEY",
    "DocState",
    "IndexScan",
    "SyncReport",
    "Syncer",
    "chunk_id",
    "document_states",
    "drop_repeats",
    "in_scope",
    "promote_copies",
    "repair_copies",
    "scan_index",
]
