"""``optim``: passed through to transformers, checked against what can run here.

An unknown name, a paged bitsandbytes optimizer without a CUDA GPU, or an optimizer whose
package is missing fails when the Tuner is built, before data or model are loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from phi3industry.errors import ConfigError, DependencyMissingError
from phi3industry.tuning import model_setup
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.tuner import Tuner

ROWS = [
    {"prompt": f"What is the torque for valve V{i}?", "completion": f"{i + 10} Nm."}
    for i in range(8)
]


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_setup, "cuda_available", lambda: False)


def test_default_is_transformers_default(tmp_path: Path) -> None:
    from transformers import TrainingArguments

    default = TrainingArguments(output_dir=str(tmp_path), use_cpu=True).optim
    assert TunerConfig().optim == default.value


@pytest.mark.parametrize("optim", ["adamw_torch", "sgd", "adamw_8bit"])
def test_optim_reaches_the_training_arguments(tmp_path: Path, optim: str) -> None:
    tuner = Tuner(TunerConfig(model="tiny-phi3", optim=optim))
    assert tuner._training_arguments(tmp_path, 1).optim.value == optim


@pytest.mark.parametrize(
    ("optim", "error", "match"),
    [
        (
            "adamw8bit",
            ConfigError,
            r"optim='adamw8bit' is not a transformers optimizer\. Did you mean 'adamw_8bit'\?"
            r".*'adamw_torch'",
        ),
        ("nesterov", ConfigError, r"optim='nesterov' is not a transformers optimizer\. Use e\.g\."),
        (
            "paged_adamw_8bit",
            ConfigError,
            r"optim='paged_adamw_8bit' needs a CUDA GPU.*On CPU use optim='adamw_torch'",
        ),
    ],
)
def test_optimizers_that_cannot_run_here_are_refused(
    no_gpu: None, optim: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Tuner(TunerConfig(model="tiny-phi3", optim=optim))


def test_paged_optimizer_is_fine_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_setup, "cuda_available", lambda: True)
    model_setup.check_optimizer("paged_adamw_8bit")


def test_bitsandbytes_optimizer_without_bitsandbytes(
    no_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(
        DependencyMissingError,
        match=r"optim='adamw_8bit' needs bitsandbytes.*pip install 'phi3industry\[qlora\]'",
    ):
        Tuner(TunerConfig(model="tiny-phi3", optim="adamw_8bit"))


def test_optimizer_package_missing_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "galore_torch" else real(name)
    )
    with pytest.raises(
        DependencyMissingError,
        match=r"optim='galore_adamw' needs the galore_torch package.*pip install galore-torch",
    ):
        model_setup.check_optimizer("galore_adamw")


def test_new_settings_are_cli_flags() -> None:
    from phi3industry.cli.options import config_flags

    flags = {f.flag for f in config_flags(TunerConfig)}
    assert {"--optim", "--use-dora", "--eval-steps", "--early-stopping-patience"} <= flags


def test_8bit_optimizer_trains_on_cpu(no_gpu: None, tiny_phi3_dir: Path, tmp_path: Path) -> None:
    """bitsandbytes >= 0.45 runs its 8-bit optimizers on CPU too."""
    from safetensors.torch import load_file

    tuner = Tuner(
        TunerConfig(
            model=str(tiny_phi3_dir),
            output_dir=str(tmp_path / "a"),
            optim="adamw_8bit",
            max_steps=3,
            batch_size=4,
            max_length=64,
            learning_rate=1e-2,
            save_steps=3,
            eval_fraction=0.0,
            progress=False,
        )
    )
    result = tuner.train(ROWS)
    assert result.global_step == 3
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
