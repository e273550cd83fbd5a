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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from phi3industry.errors import ConfigError

_ConfigT = TypeVar("_ConfigT", bound="_ConfigBase")


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

        Args:
            data: Mapping of field names to values.

        Returns:
            The config.

        Raises:
            ConfigError: If ``data`` is not a mapping or has a key that is not a field.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"{cls.__name__} expects a mapping of settings, got {type(data).__name__}."
            )
        allowed = cls.field_names()
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"Unknown {cls.__name__} setting {key!r}.{hint} "
                    f"Allowed settings: {', '.join(allowed)}."
                )
        try:
            return cls(**data)
        except TypeError as exc:  # e.g. a nested value of the wrong shape
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
        default="torch",
        metadata={"help": "sentence-transformers backend: 'torch', 'onnx' or 'onnx-int8'."},
    )
    chunk_size: int = field(
        default=256, metadata={"help": "Chunk size in tokens of the embedder's tokenizer."}
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
    batch_size: int = field(default=64, metadata={"help": "Chunks embedded per batch."})
    device: str | None = field(
        default=None, metadata={"help": "Embedding device ('cpu', 'cuda'); default: best."}
    )
    progress: bool = field(
        default=True, metadata={"help": "Show progress bars (only on a TTY)."}
    )

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
            self.embedding_backend in ("torch", "onnx", "onnx-int8"),
            f"embedding_backend must be 'torch', 'onnx' or 'onnx-int8', "
            f"got {self.embedding_backend!r}.",
        )
        _check(
            isinstance(self.max_file_bytes, int) and self.max_file_bytes > 0,
            f"max_file_bytes must be a positive integer, got {self.max_file_bytes!r}.",
        )
        _check(
            isinstance(self.batch_size, int) and self.batch_size > 0,
            f"batch_size must be a positive integer, got {self.batch_size!r}.",
        )
        _check(
            isinstance(self.port, int) and 0 < self.port < 65536,
            f"port must be between 1 and 65535, got {self.port!r}.",
        )
        _check(bool(self.collection), "collection must be a non-empty name.")


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
    precision: str = field(
        default="auto",
        metadata={"help": "'auto' (bf16 on GPUs that support it, else fp32), 'fp32', 'bf16', "
        "'fp16'."},
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
        _check(
            self.max_length >= 16, f"max_length must be at least 16, got {self.max_length!r}."
        )
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
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        _check(
            self.target_modules is None
            or self.target_modules == "all-linear"
            or (isinstance(self.target_modules, list) and len(self.target_modules) > 0),
            "target_modules must be a non-empty list of module names, 'all-linear', or unset "
            f"for the architecture's default; got {self.target_modules!r}.",
        )
