"""Configuration dataclasses.

Flat dataclasses whose field names are the YAML keys and the CLI flags. Cross-field checks
run in ``__post_init__`` so that a bad config fails when it is built, naming the field, the
bad value and the fix.

Example:
    >>> from phi3industry.config import RetrieverConfig
    >>> cfg = RetrieverConfig(path="my-index", chunk_size=256, chunk_overlap=32)
    >>> RetrieverConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from phi3industry.errors import ConfigError

_ConfigT = TypeVar("_ConfigT", bound="_ConfigBase")

# Bounded repr for values in messages: a YAML alias bomb or a cyclic value stays short.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 3, 6, 6, 80, 80
_short = _repr.repr
_SEED_MAX = 2**63  # torch.manual_seed and OpenAI-compatible endpoints take a signed 64-bit seed


def _unpath(value: Any) -> Any:
    """``Path`` values (and items) as strings, so that a config holds YAML-ready values."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, os.PathLike) for v in value):
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
    return value


def _type_problem(value: Any, hint: Any) -> str | None:
    """What a field of type ``hint`` expects, or None if ``value`` fits it.

    ``list[str]`` fields also take one string (a single item, or comma-separated items),
    as the CLI and the ``__post_init__`` checks do.
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        problems = [_type_problem(value, arm) for arm in arms]
        return None if None in problems else " or ".join(p for p in problems if p)
    if hint is type(None):
        return None if value is None else "null"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "a number"
        try:
            return "a number (not NaN)" if math.isnan(float(value)) else None
        except OverflowError:
            return "a number of reasonable size"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        if isinstance(value, str) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        ):
            return None
        return "a list of strings"
    return None  # a type these configs do not use: leave it to __post_init__


class _ConfigBase:
    """Shared ``to_dict`` / ``from_dict`` / ``from_yaml`` / ``to_yaml`` for config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict (YAML/JSON-ready)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]

    @classmethod
    def field_names(cls) -> list[str]:
        """Return the names of the config's fields, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[_ConfigT], data: dict[str, Any]) -> _ConfigT:
        """Build a config from a dict, rejecting unknown keys with a suggestion.

        Values are checked against the fields' types first (``Path`` values become strings;
        a ``list[str]`` field also takes one string), so that a mistyped YAML value is named
        instead of failing somewhere inside the checks.

        Args:
            data: Mapping of field names to values.

        Returns:
            The config.

        Raises:
            ConfigError: If ``data`` is not a mapping, has a key that is not a field, a value
                of the wrong type, or a value the config's checks refuse.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"{cls.__name__} expects a mapping of settings, got {type(data).__name__}."
            )
        allowed = cls.field_names()
        hints = typing.get_type_hints(cls)
        data = {key: _unpath(value) for key, value in data.items()}
        for key, value in data.items():
            if key not in allowed:
                close = difflib.get_close_matches(str(key)[:100], allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"Unknown {cls.__name__} setting {_short(key)}.{hint} "
                    f"Allowed settings: {', '.join(allowed)}."
                )
            expected = _type_problem(value, hints[key])
            if expected is not None:
                # PyYAML reads 1e-3 (no dot) as a string.
                yaml_hint = " (in YAML write 1.0e-3, not 1e-3)" if "number" in expected else ""
                raise ConfigError(
                    f"{cls.__name__} setting {key!r} must be {expected}, got "
                    f"{type(value).__name__} {_short(value)}{yaml_hint}."
                )
        try:
            return cls(**data)
        except ConfigError:
            raise
        except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise ConfigError(f"Invalid {cls.__name__}: {exc}") from exc

    @classmethod
    def from_yaml(cls: type[_ConfigT], path: str | Path) -> _ConfigT:
        """Load a config from a YAML file.

        Args:
            path: Path of a YAML file holding a mapping of settings.

        Returns:
            The config.

        Raises:
            ConfigError: If the file is missing, is not valid YAML, or holds bad settings.
        """
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"Config file not found: {path}. Check the path.") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from exc
        except RecursionError as exc:
            raise ConfigError(f"Config file {path} is nested too deeply to be a config.") from exc
        if data is None:
            data = {}
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        """Write the config to a YAML file."""
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass
class RetrieverConfig(_ConfigBase):
    """Where the index lives, how documents are chunked and embedded, and search defaults.

    Example:
        >>> cfg = RetrieverConfig(path="kb-index", embedding="all-MiniLM-L6-v2", k=4)
        >>> cfg.collection
        'phi3industry'
    """

    path: str | None = field(
        default=None,
        metadata={"help": "Directory of the embedded Chroma index (PersistentClient)."},
    )
    host: str | None = field(
        default=None, metadata={"help": "Chroma server host (client-server mode instead of path)."}
    )
    port: int = field(default=8000, metadata={"help": "Chroma server port."})
    collection: str = field(default="phi3industry", metadata={"help": "Chroma collection name."})
    embedding: str = field(
        default="all-MiniLM-L6-v2",
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
        default=False, metadata={"help": "Default: fuse BM25 with dense results (RRF)."}
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
    rrf_k: int = field(default=60, metadata={"help": "Reciprocal-rank-fusion constant."})
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
        _check(
            (self.path is None) != (self.host is None),
            "RetrieverConfig needs exactly one of 'path' (embedded index directory) or 'host' "
            f"(Chroma server); got path={self.path!r}, host={self.host!r}.",
        )
        _check(
            isinstance(self.chunk_size, int) and self.chunk_size > 0,
            f"chunk_size must be a positive number of tokens, got {self.chunk_size!r}.",
        )
        _check(
            isinstance(self.chunk_overlap, int) and 0 <= self.chunk_overlap < self.chunk_size,
            f"chunk_overlap must be >= 0 and smaller than chunk_size ({self.chunk_size}), "
            f"got {self.chunk_overlap!r}. Lower chunk_overlap or raise chunk_size.",
        )
        _check(
            isinstance(self.k, int) and self.k > 0, f"k must be a positive integer, got {self.k!r}."
        )
        _check(
            isinstance(self.fetch_k, int) and self.fetch_k > 0,
            f"fetch_k must be a positive integer, got {self.fetch_k!r}.",
        )
        _check(
            0.0 <= float(self.mmr_lambda) <= 1.0,
            f"mmr_lambda must be between 0 and 1, got {self.mmr_lambda!r}.",
        )
        _check(
            self.embedding_backend in ("auto", "torch", "onnx", "onnx-int8"),
            f"embedding_backend must be 'auto', 'torch', 'onnx' or 'onnx-int8', "
            f"got {self.embedding_backend!r}.",
        )
        _check(
            isinstance(self.max_file_bytes, int) and self.max_file_bytes > 0,
            f"max_file_bytes must be a positive integer, got {self.max_file_bytes!r}.",
        )
        _check(
            self.batch_size is None or (isinstance(self.batch_size, int) and self.batch_size > 0),
            f"batch_size must be a positive integer, got {self.batch_size!r}.",
        )
        _check(
            isinstance(self.write_batch_size, int) and self.write_batch_size > 0,
            f"write_batch_size must be a positive integer, got {self.write_batch_size!r}.",
        )
        _check(
            isinstance(self.port, int) and 0 < self.port < 65536,
            f"port must be between 1 and 65535, got {self.port!r}.",
        )
        _check(
            isinstance(self.collection, str)
            and re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]", self.collection)
            is not None,
            f"collection must be 3-512 characters of letters, digits, '.', '_' or '-', "
            f"starting and ending with a letter or digit (Chroma's rule); got {self.collection!r}.",
        )


TUNING_METHODS = ("lora", "qlora", "dora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TunerConfig(_ConfigBase):
    """How to fine-tune: the base model, the adapter method and the training settings.

    Field names follow peft / transformers / trl so that users' habits carry over.

    Example:
        >>> cfg = TunerConfig(model="tiny-phi3", method="lora", lora_r=8, max_steps=10)
        >>> cfg.method
        'lora'
    """

    model: str = field(
        default="phi-3-mini-4k-instruct",
        metadata={"help": "Base model: short name, hub id, local directory or .gguf file."},
    )
    method: str = field(default="lora", metadata={"help": "'lora', 'qlora' (4-bit) or 'dora'."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on LoRA inputs."})
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Modules to adapt. Default per architecture (Phi-3: qkv_proj, o_proj, "
            "gate_up_proj, down_proj); 'all-linear' allowed."
        },
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate."})
    num_epochs: float = field(default=1.0, metadata={"help": "Passes over the training data."})
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps; overrides num_epochs when > 0."}
    )
    batch_size: int = field(default=4, metadata={"help": "Sequences per device per step."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches accumulated per optimizer step."}
    )
    max_length: int = field(default=1024, metadata={"help": "Maximum tokens per sequence."})
    packing: bool = field(
        default=True,
        metadata={"help": "Pack short examples into full sequences (no attention leak)."},
    )
    completion_only_loss: bool = field(
        default=True, metadata={"help": "Loss on the assistant's answer only (prompt masked)."}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory."}
    )
    chunked_loss: bool = field(
        default=True,
        metadata={
            "help": "Compute the loss a chunk at a time from the final hidden states, over "
            "labelled tokens only: same loss and gradients, never the full logits (less "
            "memory; masked prompt tokens skip the vocabulary projection). Used on "
            "Phi-3, Llama, Mistral and Qwen2/3; other models get the model's own loss."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 on GPUs that support it, else fp32), 'fp32', 'bf16', 'fp16'."
        },
    )
    load_in_8bit: bool = field(
        default=False, metadata={"help": "QLoRA: quantize the base to 8-bit instead of 4-bit."}
    )
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "'nf4' or 'fp4'."})
    bnb_4bit_use_double_quant: bool = field(
        default=True, metadata={"help": "Quantize the quantization constants too."}
    )
    seed: int = field(default=42, metadata={"help": "Random seed."})
    output_dir: str = field(
        default="phi3industry-adapter", metadata={"help": "Where the adapter and logs go."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow replacing an adapter already in output_dir."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the last checkpoint in output_dir."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the data held out for evaluation."}
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N steps."})
    logging_steps: int = field(default=5, metadata={"help": "Log loss every N steps."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Linear warm-up fraction."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars (on a TTY)."})

    def __post_init__(self) -> None:
        _check(
            self.method in TUNING_METHODS,
            f"method must be one of {', '.join(TUNING_METHODS)}, got {self.method!r}.",
        )
        _check(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.",
        )
        _check(
            isinstance(self.lora_r, int) and self.lora_r > 0,
            f"lora_r must be a positive integer, got {self.lora_r!r}.",
        )
        _check(self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha!r}.")
        _check(
            0.0 <= self.lora_dropout < 1.0,
            f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}.",
        )
        _check(
            self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate!r}."
        )
        _check(
            self.batch_size > 0 and self.gradient_accumulation_steps > 0,
            "batch_size and gradient_accumulation_steps must be positive, got "
            f"{self.batch_size!r} and {self.gradient_accumulation_steps!r}.",
        )
        _check(self.max_length >= 16, f"max_length must be at least 16, got {self.max_length!r}.")
        _check(
            self.max_steps > 0 or self.num_epochs > 0,
            "Set max_steps > 0 or num_epochs > 0 so that training has something to do.",
        )
        _check(
            0.0 <= self.eval_fraction < 1.0,
            f"eval_fraction must be in [0, 1), got {self.eval_fraction!r}.",
        )
        _check(
            self.bnb_4bit_quant_type in ("nf4", "fp4"),
            f"bnb_4bit_quant_type must be 'nf4' or 'fp4', got {self.bnb_4bit_quant_type!r}.",
        )
        _check(
            not (self.load_in_8bit and self.method != "qlora"),
            "load_in_8bit quantizes the base model and only applies to method='qlora'; "
            f"got method={self.method!r}. Use method='qlora' with load_in_8bit=True.",
        )
        _check(
            self.save_steps > 0 and self.logging_steps > 0,
            "save_steps and logging_steps must be positive.",
        )
        _check(
            isinstance(self.seed, int) and 0 <= self.seed < 2**32,
            f"seed must be an integer from 0 to 2**32 - 1 (numpy's range), got {self.seed!r}.",
        )
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        _check(
            self.target_modules is None
            or self.target_modules == "all-linear"
            or (isinstance(self.target_modules, list) and len(self.target_modules) > 0),
            "target_modules must be a non-empty list of module names, 'all-linear', or unset "
            f"for the architecture's default; got {self.target_modules!r}.",
        )


STRATEGIES = ("base", "rag", "finetuned", "rag+finetuned")
CONDENSE_MODES = ("llm", "concat", "none")


@dataclass
class PipelineConfig(_ConfigBase):
    """How a question is answered: strategy, model, retrieval, generation and serving settings.

    Example:
        >>> cfg = PipelineConfig(strategy="rag", model="tiny-phi3", index="kb-index", k=4)
        >>> cfg.uses_retrieval, cfg.uses_adapter
        (True, False)
    """

    strategy: str = field(
        default="rag",
        metadata={
            "help": "'base' (model only), 'rag' (retrieval), 'finetuned' (adapter), "
            "'rag+finetuned' (both)."
        },
    )
    model: str = field(
        default="phi-3-mini-4k-instruct",
        metadata={"help": "Base model: short name, hub id, local directory or .gguf file."},
    )
    adapter: str | None = field(
        default=None,
        metadata={
            "help": "LoRA adapter directory used by the 'finetuned' strategies "
            "('name=DIR' to name it)."
        },
    )
    adapters: list[str] | None = field(
        default=None,
        metadata={"help": "More adapters to load on the same base, as 'name=DIR' (or DIR)."},
    )
    index: str | None = field(
        default=None, metadata={"help": "Index directory (embedded Chroma) for retrieval."}
    )
    k: int = field(default=4, metadata={"help": "Hits retrieved per question."})
    hybrid: bool = field(default=False, metadata={"help": "Fuse BM25 with dense search (RRF)."})
    mmr: bool = field(default=False, metadata={"help": "Diversify hits (MMR)."})
    min_score: float | None = field(
        default=0.2,
        metadata={
            "help": "Hits whose (dense cosine) score is below this are not used; "
            "when none is left the pipeline abstains. None: keep all."
        },
    )
    abstain: bool = field(
        default=True,
        metadata={
            "help": "With retrieval and no relevant hit, answer abstain_message instead "
            "of letting the model answer unaided."
        },
    )
    abstain_message: str = field(
        default="I could not find this in the knowledge base, so I cannot answer it reliably.",
        metadata={"help": "What the pipeline answers when it abstains."},
    )
    context_tokens: int = field(
        default=2048,
        metadata={"help": "Token budget for the numbered sources in the prompt (model tokens)."},
    )
    context_window: int | None = field(
        default=None,
        metadata={"help": "Model context window in tokens (default: from the model config)."},
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Tokens generated at most."})
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature; 0 = greedy (deterministic)."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (0 < p <= 1)."})
    seed: int | None = field(default=None, metadata={"help": "Sampling seed (reproducible)."})
    stop: list[str] | None = field(
        default=None, metadata={"help": "Extra stop strings (besides end-of-turn tokens)."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt (default: a domain-expert prompt)."}
    )
    condense_question: str = field(
        default="llm",
        metadata={
            "help": "With chat history, how the question is made standalone for "
            "retrieval: 'llm', 'concat' or 'none'."
        },
    )
    max_history_messages: int = field(
        default=8, metadata={"help": "Most recent history messages kept in the prompt."}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Questions generated together (left-padded) by batch()."}
    )
    dtype: str = field(
        default="auto", metadata={"help": "Model dtype: 'auto', 'fp32', 'bf16' or 'fp16'."}
    )
    device: str | None = field(
        default=None, metadata={"help": "Model device ('cpu', 'cuda'); default: best."}
    )
    base_url: str | None = field(
        default=None,
        metadata={
            "help": "Generate with an OpenAI-compatible endpoint (vLLM, llama.cpp, "
            "Azure OpenAI, phi3industry serve) at this URL instead of a local model."
        },
    )
    endpoint_api_key: str | None = field(
        default=None,
        metadata={"help": "API key of the endpoint (default: $OPENAI_API_KEY)."},
    )
    endpoint_model: str | None = field(
        default=None, metadata={"help": "Model name at the endpoint (default: model)."}
    )
    endpoint_retries: int = field(
        default=3, metadata={"help": "Retries when the endpoint is unreachable or busy."}
    )
    endpoint_backoff: float = field(
        default=0.5, metadata={"help": "First retry delay in seconds (doubles each retry)."}
    )
    endpoint_timeout: float = field(
        default=120.0, metadata={"help": "Seconds to wait for the endpoint per request."}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Server bind address."})
    port: int = field(default=8000, metadata={"help": "Server port."})
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "Server API key clients send as 'Authorization: Bearer KEY' "
            "(default: $PHI3INDUSTRY_API_KEY). Required to bind a non-loopback address."
        },
    )
    max_body_bytes: int = field(
        default=1_000_000, metadata={"help": "Largest request body accepted (else 413)."}
    )
    request_timeout: float = field(
        default=300.0, metadata={"help": "Seconds a request may wait and generate (else 504)."}
    )
    max_tokens_cap: int = field(
        default=1024, metadata={"help": "Largest max_tokens a client may ask for (else 400)."}
    )
    max_messages: int = field(
        default=64, metadata={"help": "Most messages accepted in one chat request (else 400)."}
    )
    max_queue: int = field(
        default=64, metadata={"help": "Requests waiting for the model at most (else 503)."}
    )

    @property
    def uses_retrieval(self) -> bool:
        """Whether the strategy retrieves sources."""
        return self.strategy.startswith("rag")

    @property
    def uses_adapter(self) -> bool:
        """Whether the strategy generates with the fine-tuned adapter."""
        return self.strategy.endswith("finetuned")

    def __post_init__(self) -> None:
        _check(
            self.strategy in STRATEGIES,
            f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}.",
        )
        _check(bool(self.model), "model must name a model (short name, hub id, path or .gguf).")
        _check(
            isinstance(self.k, int) and self.k > 0, f"k must be a positive integer, got {self.k!r}."
        )
        _check(
            isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0,
            f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}.",
        )
        _check(
            isinstance(self.context_tokens, int) and self.context_tokens > 0,
            f"context_tokens must be a positive number of tokens, got {self.context_tokens!r}.",
        )
        _check(
            self.context_window is None
            or (isinstance(self.context_window, int) and self.context_window > self.max_new_tokens),
            f"context_window must be larger than max_new_tokens ({self.max_new_tokens}), "
            f"got {self.context_window!r}.",
        )
        _check(
            0.0 <= float(self.temperature) <= 2.0,
            f"temperature must be between 0 and 2, got {self.temperature!r}.",
        )
        _check(0.0 < float(self.top_p) <= 1.0, f"top_p must be in (0, 1], got {self.top_p!r}.")
        _check(
            self.seed is None
            or (isinstance(self.seed, int) and -_SEED_MAX <= self.seed < _SEED_MAX),
            f"seed must be a signed 64-bit integer or unset, got {self.seed!r}.",
        )
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        _check(
            self.stop is None or all(isinstance(s, str) and s for s in self.stop),
            f"stop must be a list of non-empty strings, got {self.stop!r}.",
        )
        if isinstance(self.adapters, str):
            self.adapters = [a.strip() for a in self.adapters.split(",") if a.strip()]
        _check(
            self.condense_question in CONDENSE_MODES,
            f"condense_question must be one of {', '.join(CONDENSE_MODES)}, "
            f"got {self.condense_question!r}.",
        )
        _check(
            self.dtype in (*PRECISIONS,),
            f"dtype must be one of {', '.join(PRECISIONS)}, got {self.dtype!r}.",
        )
        _check(
            self.max_history_messages >= 0,
            f"max_history_messages must be >= 0, got {self.max_history_messages!r}.",
        )
        _check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size!r}.")
        _check(
            self.base_url is None or self.base_url.startswith(("http://", "https://")),
            f"base_url must start with http:// or https://, got {self.base_url!r}.",
        )
        _check(
            self.endpoint_retries >= 0 and self.endpoint_backoff >= 0,
            "endpoint_retries and endpoint_backoff must be >= 0, got "
            f"{self.endpoint_retries!r} and {self.endpoint_backoff!r}.",
        )
        _check(
            self.endpoint_timeout > 0 and self.request_timeout > 0,
            "endpoint_timeout and request_timeout must be positive seconds.",
        )
        _check(
            isinstance(self.port, int) and 0 <= self.port < 65536,
            f"port must be between 0 (any free port) and 65535, got {self.port!r}.",
        )
        for name in ("max_body_bytes", "max_tokens_cap", "max_messages", "max_queue"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and value > 0,
                f"{name} must be a positive integer, got {value!r}.",
            )
        _check(
            self.api_key is None or len(self.api_key) >= 8,
            "api_key must be at least 8 characters; use a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))').",
        )
