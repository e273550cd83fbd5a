"""LangChain's own conformance suites (``langchain-tests``) on our LangChain classes.

* :class:`~phi3industry.generation.ChatPhi3Industry` on the bundled SmolLM2: the chat model
  unit and integration suites. It declares what it lacks: tool calling, structured output,
  JSON mode, images, audio, PDFs.
* The Retriever's LangChain adapter (``Retriever.as_langchain``) on a real Chroma index: the
  retriever integration suite.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from _corpus import TOPICS
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    RetrieversIntegrationTests,
)
from langchain_tests.unit_tests import ChatModelUnitTests

from phi3industry.generation import ChatPhi3Industry
from phi3industry.retrieval import Retriever, RetrieverConfig
from phi3industry.retrieval.langchain import IndexRetriever

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


class _Declared:
    """What ChatPhi3Industry is and is not (shared by both chat model suites)."""

    @property
    def chat_model_class(self) -> type[ChatPhi3Industry]:
        return ChatPhi3Industry

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": MODEL}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # LangChain's defaults, with short answers: a CPU answers 16 tokens in about a second.
        return {**super().standard_chat_model_params, "max_tokens": 16}  # type: ignore[misc]

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "tiny-phi3"  # a per-call `model=` loads (once) and answers with another model


class TestChatPhi3IndustryUnit(_Declared, ChatModelUnitTests):
    """The unit suite: construction, standard params, serialisation."""


class TestChatPhi3IndustryIntegration(_Declared, ChatModelIntegrationTests):
    """The integration suite: invoke, stream, batch, async, usage, stop, metadata."""


class TestIndexRetrieverIntegration(RetrieversIntegrationTests):
    """The retriever suite on a real index of the shared test corpus."""

    _index: Retriever | None = None

    @classmethod
    def _retriever(cls) -> Retriever:
        if cls._index is None:
            root = Path(tempfile.mkdtemp(prefix="lc-retriever-"))
            (root / "docs").mkdir()
            for name, text in TOPICS.items():
                (root / "docs" / name).write_text(text, encoding="utf-8")
            index = Retriever(RetrieverConfig(path=str(root / "index"), progress=False))
            index.sync([str(root / "docs")])
            assert index.stats()["chunks"] >= 3  # the suite asks for 3 documents
            cls._index = index
        return cls._index

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return IndexRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self._retriever(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "What does error E4711 mean?"
