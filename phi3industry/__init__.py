"""phi3industry: make Phi-3 an expert in your company's field.

RAG over a Chroma index (:class:`Retriever`), LoRA / QLoRA / DoRA fine-tuning (:class:`Tuner`),
and both together behind a LangChain retrieval chain that cites its sources (:class:`Pipeline`).

Heavy libraries (torch, transformers, chromadb) are imported lazily, on first use of the
names that need them, so ``import phi3industry`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import TYPE_CHECKING, Any

from phi3industry.errors import (
    ConfigError,
    DataFormatError,
    DependencyMissingError,
    DocumentError,
    EmbedderMismatchError,
    GenerationError,
    IndexLockedError,
    ModelNotFoundError,
    Phi3IndustryError,
    QueryError,
    TargetModulesError,
)

__version__ = "0.1.0"

# peft imports bitsandbytes whenever it is installed, and bitsandbytes' CPU backend then warns
# on every start that it could not fetch an optional kernel from the model hub (which needs the
# `kernels` package and a network). Its own fallback kernel is what runs; the line is noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` whenever it wraps a
# model; the FutureWarning is addressed to peft, not to our users.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

# Public name -> module that defines it; resolved on first attribute access.
_LAZY: dict[str, str] = {
    "Answer": "phi3industry.pipeline",
    "EvalConfig": "phi3industry.evaluation",
    "Hit": "phi3industry.retriever",
    "Pipeline": "phi3industry.pipeline",
    "PipelineConfig": "phi3industry.config",
    "Retriever": "phi3industry.retriever",
    "RetrieverConfig": "phi3industry.config",
    "SyncReport": "phi3industry.retriever",
    "TrainResult": "phi3industry.tuner",
    "Tuner": "phi3industry.tuner",
    "TunerConfig": "phi3industry.config",
    "advise": "phi3industry.advisor",
    "evaluate": "phi3industry.evaluation",
}

if TYPE_CHECKING:
    from phi3industry.advisor import advise
    from phi3industry.config import PipelineConfig, RetrieverConfig, TunerConfig
    from phi3industry.evaluation import EvalConfig, evaluate
    from phi3industry.pipeline import Answer, Pipeline
    from phi3industry.retriever import Hit, Retriever, SyncReport
    from phi3industry.tuner import TrainResult, Tuner


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'phi3industry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Answer",
    "ConfigError",
    "DataFormatError",
    "DependencyMissingError",
    "DocumentError",
    "EmbedderMismatchError",
    "EvalConfig",
    "GenerationError",
    "Hit",
    "IndexLockedError",
    "ModelNotFoundError",
    "Phi3IndustryError",
    "Pipeline",
    "PipelineConfig",
    "QueryError",
    "Retriever",
    "RetrieverConfig",
    "SyncReport",
    "TargetModulesError",
    "TrainResult",
    "Tuner",
    "TunerConfig",
    "__version__",
    "advise",
    "evaluate",
]
