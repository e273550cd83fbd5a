"""The Tuner's CUDA paths on tiny-phi3: QLoRA 4-bit with bf16 compute, bf16 and fp16 LoRA, merge.

Marked ``gpu`` (deselected by default; run with ``pytest -m gpu``) and skipped without CUDA.
The CPU paths of the same features are tested in ``tests/test_tuner.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.tuner import Tuner

pytestmark = pytest.mark.gpu

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is the torque for Zorblax valve V{i}?"},
            {"role": "assistant", "content": f"Valve V{i} takes {i + 10} Nm on the cryo manifold."},
        ]
    }
    for i in range(24)
]
IDS = [[1, 32010, 450, 3974, 32007, 32001, 13, 29909]]


@pytest.fixture(autouse=True)
def _needs_cuda() -> Iterator[None]:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    yield
    torch.cuda.empty_cache()


def _bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def _cfg(tiny_phi3_dir: Path, out: Path, **kw: Any) -> TunerConfig:
    settings: dict[str, Any] = {
        "model": str(tiny_phi3_dir),
        "output_dir": str(out),
        "max_steps": 6,
        "batch_size": 4,
        "max_length": 64,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 6,
        "progress": False,
        "eval_fraction": 0.2,
    }
    settings.update(kw)
    return TunerConfig(**settings)


def _lora_params(model: Any) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def _check_trained(tuner: Tuner, result: Any) -> None:
    import torch
    from safetensors.torch import load_file

    assert result.global_step == 6
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in result.log_history if "loss" in e)
    lora = _lora_params(tuner.model)
    assert lora and all(p.dtype == torch.float32 and p.is_cuda for p in lora.values())
    saved = load_file(str(result.output_dir / "adapter_model.safetensors"))
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero


def test_precision_auto_is_bf16_on_capable_gpus(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    from phi3industry.tuning.model_setup import quantization_config

    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "a"))
    assert tuner.precision == ("bf16" if _bf16() else "fp32")
    args = tuner._training_arguments(tmp_path / "a", 10)
    assert args.bf16 == _bf16() and not args.fp16 and not args.use_cpu
    assert not args.activation_checkpointing  # never on unless asked for

    import torch

    quant = quantization_config(TunerConfig(model="tiny-phi3", method="qlora"), tuner.precision)
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == (torch.bfloat16 if _bf16() else torch.float32)


def test_qlora_4bit_on_cuda_trains_and_reloads_on_16bit(
    tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "q", method="qlora"))
    result = tuner.train(ROWS)
    _check_trained(tuner, result)
    bases = [
        m.base_layer
        for n, m in tuner.model.named_modules()
        if n.endswith(("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))
    ]
    assert len(bases) == 4 * 2
    for layer in bases:
        assert isinstance(layer, bnb.nn.Linear4bit)
        weight: Any = layer.weight
        assert weight.device.type == "cuda"
        assert weight.quant_type == "nf4"
        assert weight.quant_state.nested  # double quantization
        assert layer.compute_dtype == (torch.bfloat16 if _bf16() else torch.float32)
    assert result.metrics_after["eval_perplexity"] > 1

    base16 = AutoModelForCausalLM.from_pretrained(
        str(tiny_phi3_dir), dtype=torch.bfloat16, device_map={"": 0}
    )
    model = PeftModel.from_pretrained(base16, str(result.output_dir)).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor(IDS, device="cuda")).logits).all()


def test_qlora_merges_into_the_16bit_base(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    """The merge uses the original weights, not the 4-bit ones the adapter trained on."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "q", method="qlora", eval_fraction=0.0))
    tuner.train(ROWS)
    out = tuner.merge(tmp_path / "merged", dtype="float32")
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_phi3_dir), dtype=torch.float32)
    unquantized = PeftModel.from_pretrained(base, str(tmp_path / "q")).eval()
    ids = torch.tensor(IDS)
    with torch.no_grad():
        want = unquantized(ids).logits
        assert torch.allclose(merged(ids).logits, want, atol=1e-5)
        live = tuner.model(ids.cuda()).logits.float().cpu()  # 4-bit base: not the same
    assert (live - want).abs().max() > 1e-4


def test_bf16_lora_trains_adapter_not_base(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    if not _bf16():
        pytest.skip("GPU without bf16")
    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "b", precision="bf16"))
    result = tuner.train(ROWS)
    _check_trained(tuner, result)
    state = tuner.model.base_model.model.state_dict()
    for key, value in load_file(str(tiny_phi3_dir / "model.safetensors")).items():
        live = state[key] if key in state else state[key.replace(".weight", ".base_layer.weight")]
        assert live.dtype == torch.bfloat16 and live.is_cuda, key
        assert torch.equal(live.cpu(), value.to(torch.bfloat16)), key
    assert result.metrics_after["general_perplexity"] > 1


def test_bf16_lora_merge_gives_same_logits(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    if not _bf16():
        pytest.skip("GPU without bf16")
    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "b", precision="bf16", eval_fraction=0.0))
    tuner.train(ROWS)
    out = tuner.merge(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out), device_map={"": 0})
    assert next(merged.parameters()).dtype == torch.bfloat16
    ids = torch.tensor(IDS, device="cuda")
    with torch.no_grad():
        live = tuner.model(ids).logits.float()
        got = merged(ids).logits.float()
    # Both run bf16 matmuls: compare at bf16 resolution of the logits' scale.
    assert (got - live).abs().max() <= 2e-2 * live.abs().max() + 1e-2
    assert torch.equal(got.argmax(-1), live.argmax(-1))
    reloaded = Tuner.load(tmp_path / "b", merge=True)
    assert next(reloaded.parameters()).dtype == torch.bfloat16  # auto: bf16 on this GPU


def test_fp16_lora_keeps_adapter_fp32(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import torch

    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "h", precision="fp16", eval_fraction=0.0))
    assert tuner._training_arguments(tmp_path / "h", 10).fp16
    result = tuner.train(ROWS)
    _check_trained(tuner, result)  # fp32 adapter: fp16 AMP never steps fp16 weights
    base = tuner.model.base_model.model.model.layers[0].self_attn.qkv_proj.base_layer
    assert base.weight.dtype == torch.float16


def test_qlora_8bit_on_cuda(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb

    tuner = Tuner(
        _cfg(tiny_phi3_dir, tmp_path / "e", method="qlora", load_in_8bit=True, eval_fraction=0.0)
    )
    result = tuner.train(ROWS)
    _check_trained(tuner, result)
    layer = tuner.model.base_model.model.model.layers[0].mlp.down_proj.base_layer
    assert isinstance(layer, bnb.nn.Linear8bitLt)
