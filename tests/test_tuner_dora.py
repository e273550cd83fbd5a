"""DoRA on tiny-phi3: trained, saved, reloaded with plain peft, merged; QDoRA on a 4-bit base.

DoRA adds a trainable magnitude vector per adapted layer (``lora_magnitude_vector``) to the
LoRA matrices; both must train, the base must not, and the saved adapter must reload and
merge like a LoRA one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.tuner import TrainResult, Tuner

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is the torque for Zorblax valve V{i}?"},
            {"role": "assistant", "content": f"Valve V{i} takes {i + 10} Nm on the cryo manifold."},
        ]
    }
    for i in range(16)
]
IDS = [[1, 32010, 450, 3974, 32007, 32001, 13, 29909]]


def _cfg(model: Path, out: Path, **kw: Any) -> TunerConfig:
    settings: dict[str, Any] = {
        "model": str(model),
        "output_dir": str(out),
        "method": "dora",
        "max_steps": 4,  # step 1 is warm-up (lr 0); B moves at 2, A from 3 on
        "batch_size": 4,
        "max_length": 64,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 4,
        "progress": False,
        "eval_fraction": 0.0,
    }
    settings.update(kw)
    return TunerConfig(**settings)


def _trainable(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def dora_run(
    tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Tuner, TrainResult, dict[str, Any]]:
    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path_factory.mktemp("dora") / "adapter"))
    before = _trainable(tuner.model)
    return tuner, tuner.train(ROWS), before


def test_method_dora_is_lora_with_use_dora() -> None:
    cfg = TunerConfig(model="tiny-phi3", method="dora")
    assert cfg.use_dora is True
    assert TunerConfig.from_dict(cfg.to_dict()) == cfg
    assert TunerConfig(model="tiny-phi3", method="qlora", use_dora=True).use_dora is True


def test_dora_trains_adapter_and_magnitude_not_base(
    dora_run: tuple[Tuner, TrainResult, dict[str, Any]], tiny_phi3_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    tuner, result, before = dora_run
    assert result.global_step == 4
    after = _trainable(tuner.model)
    magnitudes = [n for n in after if "lora_magnitude_vector" in n]
    layers = tuner.model.base_model.model.config.num_hidden_layers
    assert len(magnitudes) == 4 * layers  # one per adapted module
    assert set(after) == set(before)
    unchanged = [n for n in after if torch.equal(after[n], before[n])]
    assert unchanged == []  # every lora_A, lora_B and magnitude vector moved
    base = load_file(str(tiny_phi3_dir / "model.safetensors"))
    state = tuner.model.base_model.model.state_dict()
    for key, value in base.items():
        live = state.get(key, state.get(key.replace(".weight", ".base_layer.weight")))
        assert live is not None and torch.equal(live, value), key
    saved = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert sum("lora_magnitude_vector" in k for k in saved) == len(magnitudes)
    config = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert config["use_dora"] is True


def test_dora_reloads_with_plain_peft_identical_logits(
    dora_run: tuple[Tuner, TrainResult, dict[str, Any]], tiny_phi3_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuner, result, _ = dora_run
    ids = torch.tensor(IDS)
    with torch.no_grad():
        live = tuner.model(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_phi3_dir), dtype=torch.float32)
        plain = PeftModel.from_pretrained(base, str(result.output_dir)).eval()
        assert torch.equal(plain(ids).logits, live)
        assert torch.equal(Tuner.load(result.output_dir)(ids).logits, live)


def test_dora_merges_to_the_same_logits(
    dora_run: tuple[Tuner, TrainResult, dict[str, Any]], tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tuner, _, _ = dora_run
    ids = torch.tensor(IDS)
    with torch.no_grad():
        live = tuner.model(ids).logits
        merged32 = AutoModelForCausalLM.from_pretrained(
            str(tuner.merge(tmp_path / "m32", dtype="float32"))
        )
        assert not any("lora" in n for n, _ in merged32.named_parameters())
        assert torch.allclose(merged32(ids).logits, live, atol=1e-4)
        merged16 = AutoModelForCausalLM.from_pretrained(str(tuner.merge(tmp_path / "m16")))
        assert torch.allclose(merged16.float()(ids).logits, live, atol=5e-2)


def test_qdora_trains_on_a_4bit_base_on_cpu(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # eval_fraction > 0: the "before" metrics run the 4-bit model in eval mode first, the
    # path that once left inference tensors in the model and broke the training after it.
    tuner = Tuner(
        _cfg(tiny_phi3_dir, tmp_path / "qdora", method="qlora", use_dora=True, eval_fraction=0.2)
    )
    before = _trainable(tuner.model)
    result = tuner.train(ROWS)
    assert result.global_step == 4
    bases = [m.base_layer for n, m in tuner.model.named_modules() if n.endswith("qkv_proj")]
    assert bases and all(isinstance(b, bnb.nn.Linear4bit) for b in bases)
    after = _trainable(tuner.model)
    assert any("lora_magnitude_vector" in n for n in after)
    assert [n for n in after if torch.equal(after[n], before[n])] == []
    assert json.loads((result.output_dir / "adapter_config.json").read_text())["use_dora"]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_phi3_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(result.output_dir)).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor(IDS)).logits).all()
