"""phi3industry: make Phi-3 an expert in your company's field.

RAG over a Chroma index (:class:`Retriever`), LoRA / QLoRA / DoRA fine-tuning (:class:`Tuner`),
and both together behind a LangChain retrieval chain that cites its sources (:class:`Pipeline`).

Heavy libraries (torch, transformers, chromadb) are imported lazily, on first use of the
names that need them, so ``import phi3industry`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports
from phi3industry._version import __version__
from phi3industry.errors import (
    ConfigError,
    DataFormatError,
    DependencyMissingError,
    DocumentError,
    EmbedderMismatchError,
    EngineError,
    GenerationError,
    GenerationTimeoutError,
    IndexConnectionError,
    IndexLockedError,
    ModelNotFoundError,
    Phi3IndustryError,
    QueryError,
    TargetModulesError,
)

if TYPE_CHECKING:
    from phi3industry.evaluation.advisor import advise
    from phi3industry.evaluation.config import EvalConfig
    from phi3industry.evaluation.evaluate import evaluate
    from phi3industry.generation.chat_model import ChatPhi3Industry
    from phi3industry.pipeline.answer import Answer, AnswerChunk
    from phi3industry.pipeline.config import EndpointConfig, PipelineConfig
    from phi3industry.pipeline.pipeline import Pipeline
    from phi3industry.retrieval.config import RetrieverConfig
    from phi3industry.retrieval.index import Retriever
    from phi3industry.retrieval.search import Hit
    from phi3industry.retrieval.sync import SyncReport
    from phi3industry.serving.config import ServerConfig
    from phi3industry.tuning.config import TunerConfig
    from phi3industry.tuning.tuner import TrainResult, Tuner

# Public name -> module that defines it; resolved on first attribute access.
_LAZY: dict[str, str] = {
    "Answer": "phi3industry.pipeline.answer",
    "AnswerChunk": "phi3industry.pipeline.answer",
    "ChatPhi3Industry": "phi3industry.generation.chat_model",
    "EndpointConfig": "phi3industry.pipeline.config",
    "EvalConfig": "phi3industry.evaluation.config",
    "Hit": "phi3industry.retrieval.search",
    "Pipeline": "phi3industry.pipeline.pipeline",
    "PipelineConfig": "phi3industry.pipeline.config",
    "Retriever": "phi3industry.retrieval.index",
    "RetrieverConfig": "phi3industry.retrieval.config",
    "ServerConfig": "phi3industry.serving.config",
    "SyncReport": "phi3industry.retrieval.sync",
    "TrainResult": "phi3industry.tuning.tuner",
    "Tuner": "phi3industry.tuning.tuner",
    "TunerConfig": "phi3industry.tuning.config",
    "advise": "phi3industry.evaluation.advisor",
    "evaluate": "phi3industry.evaluation.evaluate",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "Answer",
    "AnswerChunk",
    "ChatPhi3Industry",
    "ConfigError",
    "DataFormatError",
    "DependencyMissingError",
    "DocumentError",
    "EmbedderMismatchError",
    "EndpointConfig",
    "EngineError",
    "EvalConfig",
    "GenerationError",
    "GenerationTimeoutError",
    "Hit",
    "IndexConnectionError",
    "IndexLockedError",
    "ModelNotFoundError",
    "Phi3IndustryError",
    "Pipeline",
    "PipelineConfig",
    "QueryError",
    "Retriever",
    "RetrieverConfig",
    "ServerConfig",
    "SyncReport",
    "TargetModulesError",
    "TrainResult",
    "Tuner",
    "TunerConfig",
    "__version__",
    "advise",
    "evaluate",
]
