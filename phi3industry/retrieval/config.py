"""Settings of a :class:`~phi3industry.retrieval.Retriever`.

Where the index lives, how documents are chunked and embedded, and the search defaults.

Example:
    >>> from phi3industry.retrieval import RetrieverConfig
    >>> cfg = RetrieverConfig(path="kb-index", chunk_size=256, chunk_overlap=32)
    >>> RetrieverConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from phi3industry._config import ConfigBase, check, split_list

#: How a sentence-transformers embedder runs; ``embedding_backend="auto"`` picks one.
EMBEDDING_BACKENDS = ("torch", "onnx", "onnx-int8")
#: What search does with a query longer than the embedder's window.
LONG_QUERY_MODES = ("pool", "truncate")
#: The bundled embedder, used when none is named.
DEFAULT_EMBEDDING = "all-MiniLM-L6-v2"


@dataclass
class RetrieverConfig(ConfigBase):
    """Where the index lives, how documents are chunked and embedded, and search defaults.

    Example:
        >>> cfg = RetrieverConfig(path="kb-index", embedding="all-MiniLM-L6-v2", k=4)
        >>> cfg.collection
        'phi3industry'
    """

    path: str | None = field(
        default=None,
        metadata={
            "help": "Directory of the embedded Chroma index (PersistentClient). A Retriever "
            "needs this or 'host'."
        },
    )
    host: str | None = field(
        default=None, metadata={"help": "Chroma server host (client-server mode instead of path)."}
    )
    port: int = field(default=8000, metadata={"help": "Chroma server port."})
    collection: str = field(default="phi3industry", metadata={"help": "Chroma collection name."})
    embedding: str = field(
        default=DEFAULT_EMBEDDING,
        metadata={
            "help": "Embedder: 'all-MiniLM-L6-v2' (bundled), a sentence-transformers name or "
            "path, or 'text-embedding-3-small'/'text-embedding-3-large' (OpenAI)."
        },
    )
    embedding_backend: str = field(
        default="auto",
        metadata={
            "help": "sentence-transformers backend: 'auto', 'torch', 'onnx' or 'onnx-int8'. "
            "'auto': an existing index keeps the backend it was built with; a new one gets "
            "'onnx-int8' on CPU when the [onnx] extra is installed, else 'torch'."
        },
    )
    chunk_size: int = field(
        default=250,
        metadata={
            "help": "Chunk size in tokens of the embedder's tokenizer (keep it within the "
            "embedder's limit: 254 for MiniLM)."
        },
    )
    chunk_overlap: int = field(
        default=32, metadata={"help": "Tokens shared by consecutive chunks."}
    )
    contextual_headers: bool = field(
        default=True,
        metadata={
            "help": "Embed and keyword-index each chunk with its document title and section "
            "path on a line before it (stored text, spans and citations stay exact). On by "
            "default: dense recall@10 rose or held on all four sets of "
            "bench/results/retrieval-quality.md. Changing it re-embeds every document."
        },
    )
    include: list[str] | None = field(
        default=None, metadata={"help": "Glob patterns of files to ingest (default: all known)."}
    )
    exclude: list[str] | None = field(
        default=None, metadata={"help": "Glob patterns of files to skip."}
    )
    max_file_bytes: int = field(
        default=50_000_000, metadata={"help": "Files larger than this are skipped."}
    )
    k: int = field(default=5, metadata={"help": "Default number of hits per search."})
    hybrid: bool = field(
        default=True,
        metadata={"help": "Default: fuse BM25 with dense results (RRF); False: dense search only."},
    )
    mmr: bool = field(
        default=False, metadata={"help": "Default: diversify hits by maximal marginal relevance."}
    )
    mmr_lambda: float = field(
        default=0.5, metadata={"help": "MMR trade-off: 1 = relevance only, 0 = diversity only."}
    )
    fetch_k: int = field(
        default=20, metadata={"help": "Candidates fetched per method before fusion or MMR."}
    )
    ef_search: int = field(
        default=400,
        metadata={
            "help": "Breadth of the vector index's search (Chroma's HNSW ef_search): higher is "
            "closer to exact search and gives the same hits after a restart; Chroma's own "
            "default, 100, can miss neighbours and vary between processes. Chroma keeps it "
            "with the collection: the last Retriever to open it sets it for every reader."
        },
    )
    rrf_k: int = field(default=60, metadata={"help": "Reciprocal-rank-fusion constant."})
    bm25_weight: float | None = field(
        default=None,
        metadata={
            "help": "BM25's weight beside dense search (1) in hybrid fusion. Unset: 1 for "
            "queries up to 25 words, 25/words beyond, never below 0.3 (a long query's "
            "keywords are noisy)."
        },
    )
    max_per_source: int | None = field(
        default=2,
        metadata={
            "help": "Hits one document gives before every other document's hits: its further "
            "hits move behind them and fill the k only when too few other documents match "
            "(None: rank by score alone). Questions that need several documents find more of "
            "them; set on the retrieval-quality benchmark."
        },
    )
    reranker: str | None = field(
        default=None,
        metadata={
            "help": "Cross-encoder that re-scores the top rerank_top_n candidates: a local "
            "directory or a hub id in the local cache (e.g. "
            "'cross-encoder/ms-marco-MiniLM-L-6-v2', 'BAAI/bge-reranker-base'). Default: none."
        },
    )
    rerank_top_n: int = field(
        default=30,
        metadata={"help": "Candidates (hybrid or dense) the reranker scores; the best k are kept."},
    )
    long_query: str = field(
        default="pool",
        metadata={
            "help": "A query longer than the embedder's window: 'pool' embeds it in windows "
            "and averages them (all of it is used), 'truncate' embeds its start only (as "
            "the embedder would). Either way a search that had to cut says so."
        },
    )
    max_query_windows: int = field(
        default=8,
        metadata={
            "help": "Most windows a long query is embedded in ('pool'); the rest is cut, "
            "with a QueryTruncatedWarning."
        },
    )
    min_score: float | None = field(
        default=None, metadata={"help": "Default: drop hits whose score is below this."}
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Chunks embedded per batch; default: the embedder's best (8 for ONNX on "
            "CPU, 64 otherwise)."
        },
    )
    write_batch_size: int = field(
        default=512,
        metadata={
            "help": "Chunks gathered across documents, embedded and written to Chroma together "
            "(each write has a fixed cost; a killed sync redoes at most one group)."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "Embedding device ('cpu', 'cuda'); default: best."}
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars (only on a TTY)."})

    def __post_init__(self) -> None:
        self.include, self.exclude = split_list(self.include), split_list(self.exclude)
        check(
            self.path is None or self.host is None,
            "RetrieverConfig takes one of 'path' (embedded index directory) or 'host' "
            f"(Chroma server), not both; got path={self.path!r}, host={self.host!r}.",
        )
        check(
            isinstance(self.chunk_size, int) and self.chunk_size > 0,
            f"chunk_size must be a positive number of tokens, got {self.chunk_size!r}.",
        )
        check(
            isinstance(self.chunk_overlap, int) and 0 <= self.chunk_overlap < self.chunk_size,
            f"chunk_overlap must be >= 0 and smaller than chunk_size ({self.chunk_size}), "
            f"got {self.chunk_overlap!r}. Lower chunk_overlap or raise chunk_size.",
        )
        check(
            isinstance(self.k, int) and self.k > 0, f"k must be a positive integer, got {self.k!r}."
        )
        check(
            isinstance(self.fetch_k, int) and self.fetch_k > 0,
            f"fetch_k must be a positive integer, got {self.fetch_k!r}.",
        )
        check(
            isinstance(self.ef_search, int)
            and not isinstance(self.ef_search, bool)
            and self.ef_search > 0,
            f"ef_search must be a positive integer, got {self.ef_search!r} (400 is the default; "
            "higher searches more of the index).",
        )
        check(
            isinstance(self.rerank_top_n, int) and self.rerank_top_n > 0,
            f"rerank_top_n must be a positive integer, got {self.rerank_top_n!r}.",
        )
        check(
            self.reranker is None
            or (isinstance(self.reranker, str) and bool(self.reranker.strip())),
            f"reranker must be a cross-encoder directory or hub id, got {self.reranker!r}.",
        )
        check(
            self.bm25_weight is None
            or (
                isinstance(self.bm25_weight, (int, float))
                and not isinstance(self.bm25_weight, bool)
                and 0 < self.bm25_weight <= 10
            ),
            f"bm25_weight must be a number in (0, 10] or unset (None: by query length), "
            f"got {self.bm25_weight!r}.",
        )
        check(
            self.max_per_source is None
            or (
                isinstance(self.max_per_source, int)
                and not isinstance(self.max_per_source, bool)
                and self.max_per_source > 0
            ),
            f"max_per_source must be a positive integer or None (rank by score alone), "
            f"got {self.max_per_source!r}.",
        )
        check(
            self.long_query in LONG_QUERY_MODES,
            f"long_query must be 'pool' or 'truncate', got {self.long_query!r}.",
        )
        check(
            isinstance(self.max_query_windows, int) and self.max_query_windows > 0,
            f"max_query_windows must be a positive integer, got {self.max_query_windows!r}.",
        )
        check(
            0.0 <= float(self.mmr_lambda) <= 1.0,
            f"mmr_lambda must be between 0 and 1, got {self.mmr_lambda!r}.",
        )
        check(
            self.embedding_backend in ("auto", *EMBEDDING_BACKENDS),
            f"embedding_backend must be 'auto', 'torch', 'onnx' or 'onnx-int8', "
            f"got {self.embedding_backend!r}.",
        )
        check(
            isinstance(self.max_file_bytes, int) and self.max_file_bytes > 0,
            f"max_file_bytes must be a positive integer, got {self.max_file_bytes!r}.",
        )
        check(
            self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size > 0),
            f"batch_size must be a positive integer, got {self.batch_size!r}.",
        )
        check(
            isinstance(self.write_batch_size, int) and self.write_batch_size > 0,
            f"write_batch_size must be a positive integer, got {self.write_batch_size!r}.",
        )
        check(
            isinstance(self.port, int) and 0 < self.port < 65536,
            f"port must be between 1 and 65535, got {self.port!r}.",
        )
        check(
            isinstance(self.collection, str)
            and re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,503}[a-zA-Z0-9]", self.collection)
            is not None,
            f"collection must be 3-505 characters of letters, digits, '.', '_' or '-', "
            f"starting and ending with a letter or digit (Chroma's rule, less the '.copies' "
            f"suffix of the index's second collection); got {self.collection!r}.",
        )

    @property
    def location(self) -> str:
        """Where the index is, for messages: the directory, or ``host:port``."""
        return self.path or f"{self.host}:{self.port}"
