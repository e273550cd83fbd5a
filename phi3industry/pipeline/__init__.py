"""Answering: retrieval and (fine-tuned) generation behind one LangChain Runnable, with citations.

Example:
    >>> from phi3industry.pipeline import Pipeline, PipelineConfig
    >>> pipe = Pipeline(retriever="kb-index", model="smollm2-135m-instruct")  # doctest: +SKIP
    >>> print(pipe.invoke("How long is the warranty?").format())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.pipeline.answer import Answer, AnswerChunk
    from phi3industry.pipeline.config import EndpointConfig, PipelineConfig
    from phi3industry.pipeline.pipeline import ChainState, Pipeline
    from phi3industry.pipeline.prompt import format_source, merge_overlapping, parse_citations

_LAZY = {
    "Answer": "phi3industry.pipeline.answer",
    "AnswerChunk": "phi3industry.pipeline.answer",
    "ChainState": "phi3industry.pipeline.pipeline",
    "EndpointConfig": "phi3industry.pipeline.config",
    "Pipeline": "phi3industry.pipeline.pipeline",
    "PipelineConfig": "phi3industry.pipeline.config",
    "format_source": "phi3industry.pipeline.prompt",
    "merge_overlapping": "phi3industry.pipeline.prompt",
    "parse_citations": "phi3industry.pipeline.prompt",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "Answer",
    "AnswerChunk",
    "ChainState",
    "EndpointConfig",
    "Pipeline",
    "PipelineConfig",
    "format_source",
    "merge_overlapping",
    "parse_citations",
]
