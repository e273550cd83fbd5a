"""Where each process of a multi-GPU run loads its model: its own GPU, never all on GPU 0.

No GPU is needed: CUDA's answers are patched, and ``load_model`` is replaced by a recorder
of the arguments ``Tuner`` loads the base with. The 2-process CPU run itself is in
``tests/test_tuner_ddp.py``; the real multi-GPU path runs where GPUs are lent.
"""

from __future__ import annotations

from typing import Any

import pytest

from phi3industry.errors import ConfigError
from phi3industry.tuning import model_setup, tuner
from phi3industry.tuning.config import TunerConfig


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process sees two CUDA devices; no Accelerator is set up."""
    import torch

    monkeypatch.setattr(model_setup, "cuda_available", lambda: True)
    monkeypatch.setattr(tuner, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr("accelerate.state.is_initialized", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@pytest.mark.parametrize("method", ["qlora", "lora"])
@pytest.mark.parametrize("rank", [0, 1])
def test_each_rank_loads_onto_its_own_gpu(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch, method: str, rank: int
) -> None:
    seen: dict[str, Any] = {}
    t = tuner.Tuner(TunerConfig(model="tiny-phi3", method=method))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setattr(tuner, "load_model", lambda name, **kw: seen.update(kw))
    t._load_base()
    assert seen["device_map"] == {"": rank}
    assert ("quantization_config" in seen) == (method == "qlora")


def test_without_local_rank_the_current_device(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    assert model_setup.training_device_map(quantized=True) == {"": 0}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)  # torch.cuda.set_device(1)
    assert model_setup.training_device_map(quantized=False) == {"": 1}


def test_an_accelerator_decides_the_device(two_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    class FakeState:
        device = torch.device("cuda", 1)

    monkeypatch.setenv("LOCAL_RANK", "0")  # an Accelerator set up by the caller wins
    monkeypatch.setattr("accelerate.state.is_initialized", lambda: True)
    monkeypatch.setattr("accelerate.state.AcceleratorState", FakeState)
    assert model_setup.training_device_map(quantized=True) == {"": 1}


def test_cpu_places_only_quantized_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_setup, "cuda_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun on CPU (gloo): no GPU to pick
    assert model_setup.training_device_map(quantized=True) == {"": "cpu"}
    assert model_setup.training_device_map(quantized=False) is None


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("2", r"LOCAL_RANK=2 but this process sees 2 CUDA device\(s\).*nproc-per-node"),
        ("-1", r"LOCAL_RANK=-1 but this process sees 2 CUDA device"),
        ("one", r"LOCAL_RANK must be an integer .* got 'one'"),
    ],
)
def test_bad_local_rank_is_named(
    two_gpus: None, monkeypatch: pytest.MonkeyPatch, value: str, match: str
) -> None:
    monkeypatch.setenv("LOCAL_RANK", value)
    with pytest.raises(ConfigError, match=match):
        model_setup.training_device_map(quantized=True)
