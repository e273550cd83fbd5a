"""Fixtures that build the assistant once per test session.

Point them at your own knowledge base and model with environment variables:

* ``ASSISTANT_DOCS``: the documents folder (default: the bundled sample knowledge base);
* ``ASSISTANT_MODEL``: the model (default: the bundled ``smollm2-135m-instruct``; use
  ``phi-3-mini-4k-instruct`` or your merged model in CI on a GPU);
* ``ASSISTANT_ADAPTER``: an adapter directory (``name=DIR``) for the ``rag+finetuned`` strategy;
* ``ASSISTANT_INDEX``: a persistent index directory, to re-use between runs (only changed
  documents are re-embedded); default: a temporary one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from phi3industry import Answer, Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.demo import sample_kb_dir

HERE = Path(__file__).parent
GOLDEN = yaml.safe_load((HERE / "golden.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def docs_dir() -> Path:
    return Path(os.environ.get("ASSISTANT_DOCS", sample_kb_dir() / "docs")).resolve()


@pytest.fixture(scope="session")
def retriever(docs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    """The index, synced with the documents once per session."""
    index = os.environ.get("ASSISTANT_INDEX") or str(tmp_path_factory.mktemp("index"))
    retriever = Retriever(RetrieverConfig(path=index, progress=False))
    report = retriever.sync([docs_dir])
    assert not report.skipped, f"documents that could not be indexed: {report.skipped}"
    return retriever


@pytest.fixture(scope="session")
def assistant(retriever: Retriever) -> Pipeline:
    """The pipeline under test: greedy decoding, so the same question gets the same answer."""
    adapter = os.environ.get("ASSISTANT_ADAPTER")
    return Pipeline(
        retriever=retriever,
        model=os.environ.get("ASSISTANT_MODEL", "smollm2-135m-instruct"),
        adapter=adapter,
        config=PipelineConfig(
            strategy="rag+finetuned" if adapter else "rag",
            k=3,
            max_new_tokens=32,
            temperature=0.0,
        ),
    )


@pytest.fixture(scope="session")
def ask(assistant: Pipeline) -> Callable[[str], Answer]:
    """Ask a question; each question is answered once per session, however many tests use it."""

    @functools.cache
    def _ask(question: str) -> Answer:
        return assistant.invoke(question)

    return _ask


def relative(source: str, docs_dir: Path) -> str:
    """A hit's source as a path under the documents folder (``specs/ar7-spec.txt``)."""
    try:
        return Path(source).resolve().relative_to(docs_dir).as_posix()
    except ValueError:
        return source


def golden_cases(kind: str) -> list[Any]:
    """The golden cases of one kind (``answer`` or ``abstain``), as pytest params."""
    cases = [c for c in GOLDEN if bool(c.get("abstain")) == (kind == "abstain")]
    return [pytest.param(c, id=c["question"][:40]) for c in cases]
