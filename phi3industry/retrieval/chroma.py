"""Chroma plumbing.

Clients, our embedding function, collections that know their embedder, and paged reads of
every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry.errors import EmbedderMismatchError, IndexConnectionError
from phi3industry.retrieval.embeddings import load_embedder, split_embedder_name

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from phi3industry.retrieval.config import RetrieverConfig
    from phi3industry.retrieval.embeddings import Embedder

#: Rows per ``Collection.get`` page: large reads are paged so memory stays bounded.
PAGE_SIZE = 5000

EMBEDDER_KEY = "phi3industry:embedder"
DIMENSION_KEY = "phi3industry:dimension"
CHUNKING_KEY = "phi3industry:chunking"
#: Suffix of the collection holding repeated chunks (see :mod:`~phi3industry.retrieval.sync`).
COPIES_SUFFIX = ".copies"


def copies_name(collection: str) -> str:
    """Name of the collection that holds the other occurrences of repeated chunk texts."""
    return collection + COPIES_SUFFIX


def _settings() -> Any:
    from chromadb.config import Settings

    # Every client on one path in one process must use identical Settings: build them here only.
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _embedded_dir(index_path: str) -> Path:
    return Path(index_path) / "chroma"


def existing_index_client(config: RetrieverConfig) -> ClientAPI | None:
    """A fresh client for an index that may already exist; None if it surely does not.

    A server index may exist; an embedded one only if its directory does (nothing is
    created for one that does not).
    """
    if config.path is not None and not _embedded_dir(config.path).is_dir():
        return None
    return make_client(config, fresh=True)


def make_client(config: RetrieverConfig, *, fresh: bool = False) -> ClientAPI:
    """Return an embedded ``PersistentClient`` (``path``) or an ``HttpClient`` (``host``).

    Args:
        config: Where the index is.
        fresh: For an embedded index, load it from disk again instead of reusing the state
            this process already holds (Chroma keeps one per path and never sees writes
            made by other processes).

    Raises:
        IndexConnectionError: If the Chroma server cannot be reached.
    """
    import chromadb

    if config.path is not None:
        path = str(_embedded_dir(config.path))
        if fresh:
            from chromadb.api.client import SharedSystemClient

            # Forget the cached system for this path (clients already made keep theirs).
            SharedSystemClient._identifier_to_system.pop(path, None)
        return chromadb.PersistentClient(path=path, settings=_settings())
    try:
        return chromadb.HttpClient(host=str(config.host), port=config.port, settings=_settings())
    except Exception as exc:  # chromadb raises plain ValueError/ConnectionError variants
        raise IndexConnectionError(
            f"Cannot reach the Chroma server at {config.host}:{config.port}: {exc}. "
            "Start it with `chroma run --path DIR --port PORT`, or use path=... for an "
            "embedded index."
        ) from exc


@lru_cache(maxsize=1)
def _embedding_function_class() -> type:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function

    @register_embedding_function
    class Phi3IndustryEmbeddingFunction(EmbeddingFunction[Documents]):
        """Chroma embedding function backed by a phi3industry :class:`Embedder`."""

        def __init__(self, embedding: str, backend: str = "torch") -> None:
            self.embedding = embedding
            self.backend = backend

        @property
        def embedder(self) -> Embedder:
            return load_embedder(self.embedding, backend=self.backend)

        def __call__(self, input: Documents) -> Embeddings:
            return list(self.embedder.embed_documents(list(input)))

        @staticmethod
        def name() -> str:
            return "phi3industry"

        def default_space(self) -> Any:
            return "cosine"

        def supported_spaces(self) -> list[Any]:
            return ["cosine"]

        def get_config(self) -> dict[str, Any]:
            return {"embedding": self.embedding, "backend": self.backend}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> Phi3IndustryEmbeddingFunction:
            return Phi3IndustryEmbeddingFunction(
                config["embedding"], config.get("backend", "torch")
            )

        def validate_config_update(
            self, old_config: dict[str, Any], new_config: dict[str, Any]
        ) -> None:
            return

    return Phi3IndustryEmbeddingFunction


def chunking_signature(config: RetrieverConfig) -> str:
    """Return a string that changes whenever chunking would produce different chunks.

    ``v2``: chunks record ``vector_hash`` (the hash of the text that was embedded).
    """
    context = "/headers" if config.contextual_headers else ""
    return f"tokens:{config.chunk_size}/{config.chunk_overlap}/v2{context}"


def open_collection(
    client: ClientAPI,
    config: RetrieverConfig,
    embedder: Embedder,
    *,
    create: bool,
    name: str | None = None,
) -> Collection | None:
    """Open (or create) the collection, refusing one built with a different embedder.

    Args:
        client: The Chroma client.
        config: The retriever config (collection name, embedding settings).
        embedder: The embedder this retriever will use.
        create: Create the collection when it does not exist; otherwise return ``None``.
        name: Another collection of the same index (default: ``config.collection``), e.g.
            :func:`copies_name`.

    Returns:
        The collection, or ``None`` when it does not exist and ``create`` is false.

    Raises:
        EmbedderMismatchError: If the collection was built with another embedder or dimension.
    """
    name = config.collection if name is None else name
    existing = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
    function = _embedding_function_class()(config.embedding, config.embedding_backend)
    if name not in existing:
        if not create:
            return None
        return client.create_collection(
            name,
            embedding_function=function,
            configuration={"hnsw": {"space": "cosine", "ef_search": config.ef_search}},
            metadata={
                EMBEDDER_KEY: embedder.name,
                DIMENSION_KEY: embedder.dimension,
                CHUNKING_KEY: chunking_signature(config),
            },
        )
    collection = client.get_collection(name, embedding_function=function)
    meta = collection.metadata or {}
    stored_name = meta.get(EMBEDDER_KEY)
    stored_dim = meta.get(DIMENSION_KEY)
    if stored_name != embedder.name or stored_dim != embedder.dimension:
        raise EmbedderMismatchError(
            f"Collection {name!r} was built with embedder {stored_name!r} "
            f"(dimension {stored_dim}), but this retriever uses {embedder.name!r} "
            f"(dimension {embedder.dimension}). Mixing their vectors would give wrong results. "
            f"Open it with {_settings_of(str(stored_name))} (Retriever.open(path) does this), "
            "or use a new index path or collection name for the new embedder."
        )
    set_ef_search(collection, config.ef_search)
    return collection


def set_ef_search(collection: Collection, ef_search: int) -> None:
    """Search ``collection``'s HNSW index with breadth ``ef_search`` (kept with the collection).

    Chroma's default of 100 is approximate even on a few thousand chunks, and its graph is
    rebuilt on each load, so the same query can get other hits after a restart; a broader
    search finds the true neighbours, the same ones every time.
    """
    current = ((getattr(collection, "configuration_json", None) or {}).get("hnsw") or {}).get(
        "ef_search"
    )
    if current != ef_search:
        collection.modify(configuration={"hnsw": {"ef_search": ef_search}})


def _settings_of(embedder_name: str) -> str:
    """The config settings that give the embedder recorded as ``embedder_name``."""
    model, backend = split_embedder_name(embedder_name)
    return f"embedding={model!r}, embedding_backend={backend!r}"


def recorded_embedder(client: ClientAPI, config: RetrieverConfig) -> str | None:
    """The embedder name the configured collection was built with; None if it does not exist."""
    for collection in client.list_collections():
        if getattr(collection, "name", collection) == config.collection:
            meta = getattr(collection, "metadata", None) or {}
            break
    else:
        return None
    name = meta.get(EMBEDDER_KEY)
    return name if isinstance(name, str) else None


def set_chunking(collection: Collection, signature: str) -> None:
    """Record the chunking settings the collection's chunks were made with."""
    meta = dict(collection.metadata or {})
    meta[CHUNKING_KEY] = signature
    meta.pop("hnsw:space", None)  # legacy key; not modifiable after creation
    collection.modify(metadata=meta)


@dataclass
class Rows:
    """One page of a ``Collection.get``: ids with the parts asked for (others are empty)."""

    ids: list[str]
    documents: list[str]
    metadatas: list[dict[str, Any]]
    embeddings: list[Any]


def iter_rows(
    collection: Collection,
    include: tuple[str, ...] = (),
    where: dict[str, Any] | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Rows]:
    """Every row of ``collection`` (matching ``where``), a page at a time.

    Args:
        collection: The Chroma collection.
        include: ``"documents"``, ``"metadatas"``, ``"embeddings"``: the parts to read.
        where: A Chroma metadata filter.
        page_size: Rows per request.

    Yields:
        :class:`Rows`, one page each (the last may be short or empty).
    """
    offset = 0
    while True:
        page = collection.get(
            where=where,
            include=list(include),  # type: ignore[arg-type]
            limit=page_size,
            offset=offset,  # type: ignore[arg-type]
        )
        embeddings = page.get("embeddings")
        rows = Rows(
            ids=list(page["ids"]),
            documents=list(page.get("documents") or []),
            metadatas=[dict(m) for m in page.get("metadatas") or []],
            embeddings=list(embeddings) if embeddings is not None else [],
        )
        yield rows
        if len(rows.ids) < page_size:
            return
        offset += page_size
