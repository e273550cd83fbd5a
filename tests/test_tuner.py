"""The Tuner on tiny real models: targets, masking, training, saving, merging, QLoRA, GGUF."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from phi3industry.errors import ConfigError, DependencyMissingError, TargetModulesError
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.tuner import TrainResult, Tuner

FUSED = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is the torque for Zorblax valve V{i}?"},
            {"role": "assistant", "content": f"Valve V{i} takes {i + 10} Nm on the cryo manifold."},
        ]
    }
    for i in range(24)
]


@pytest.fixture(scope="module")
def tiny_dir(session_cache: Path) -> Path:
    from phi3industry.models import resolve_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PHI3INDUSTRY_CACHE", str(session_cache))
        return Path(resolve_model("tiny-phi3"))


def _cfg(tiny_dir: Path, out: Path, **kw: Any) -> TunerConfig:
    settings: dict[str, Any] = {
        "model": str(tiny_dir),
        "output_dir": str(out),
        "max_steps": 4,
        "batch_size": 4,
        "max_length": 64,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_steps": 2,
        "progress": False,
        "eval_fraction": 0.2,
    }
    settings.update(kw)
    return TunerConfig(**settings)


@pytest.fixture(scope="module")
def trained(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Tuner, TrainResult]:
    tuner = Tuner(_cfg(tiny_dir, tmp_path_factory.mktemp("run") / "adapter"))
    return tuner, tuner.train(ROWS)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "full"}, "method must be one of lora, qlora, dora"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lora_r": 0}, "lora_r must be a positive integer"),
        ({"lora_alpha": 0}, "lora_alpha must be positive"),
        ({"lora_dropout": 1.0}, r"lora_dropout must be in \[0, 1\)"),
        ({"learning_rate": 0}, "learning_rate must be positive"),
        ({"batch_size": 0}, "batch_size and gradient_accumulation_steps must be positive"),
        ({"gradient_accumulation_steps": 0}, "batch_size and gradient_accumulation_steps"),
        ({"max_length": 8}, "max_length must be at least 16"),
        ({"max_steps": -1, "num_epochs": 0}, "Set max_steps > 0 or num_epochs > 0"),
        ({"eval_fraction": 1.0}, r"eval_fraction must be in \[0, 1\)"),
        ({"bnb_4bit_quant_type": "int4"}, "bnb_4bit_quant_type must be 'nf4' or 'fp4'"),
        ({"load_in_8bit": True}, "load_in_8bit quantizes the base model and only applies"),
        ({"save_steps": 0}, "save_steps and logging_steps must be positive"),
        ({"logging_steps": 0}, "save_steps and logging_steps must be positive"),
        ({"target_modules": []}, "target_modules must be a non-empty list"),
    ],
)
def test_tuner_config_rejects(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TunerConfig(**kwargs)


def test_tuner_config_yaml_and_comma_targets(tmp_path: Path) -> None:
    cfg = TunerConfig(model="tiny-phi3", target_modules="qkv_proj, o_proj", max_steps=3)
    assert cfg.target_modules == ["qkv_proj", "o_proj"]
    cfg.to_yaml(tmp_path / "t.yaml")
    assert Tuner.from_yaml(tmp_path / "t.yaml").config == cfg
    with pytest.raises(ConfigError, match="Did you mean 'lora_r'"):
        TunerConfig.from_dict({"lora_rank": 8})


def test_precision_auto_is_fp32_on_cpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    assert Tuner(TunerConfig(model="tiny-phi3")).precision == "fp32"
    with pytest.raises(ConfigError, match="precision='fp16' needs a CUDA GPU"):
        Tuner(TunerConfig(model="tiny-phi3", precision="fp16"))


def test_bf16_with_checkpointing_trains_on_cpu(tiny_dir: Path, tmp_path: Path) -> None:
    # TRL's CPU defaults, asked for explicitly: bf16 autocast over fp32 weights.
    import torch
    from safetensors.torch import load_file

    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    tuner = Tuner(
        _cfg(
            tiny_dir,
            tmp_path / "bf16",
            precision="bf16",
            gradient_checkpointing=True,
            max_steps=2,
            eval_fraction=0.0,
        )
    )
    assert tuner.precision == "bf16"
    result = tuner.train(ROWS[:8])
    assert result.global_step == 2 and math.isfinite(result.train_loss)
    assert {p.dtype for p in tuner.model.parameters()} == {torch.float32}
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)


def test_missing_bitsandbytes_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(DependencyMissingError, match=r"pip install 'phi3industry\[qlora\]'"):
        Tuner(TunerConfig(model="tiny-phi3", method="qlora"))


# -- targets, tokenizer ----------------------------------------------------------------------


def _lora_modules(model: Any) -> list[str]:
    from peft.tuners.lora import LoraLayer

    return [n for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def test_default_targets_hit_the_fused_modules_in_every_layer(
    tiny_dir: Path, tmp_path: Path
) -> None:
    tuner = Tuner(_cfg(tiny_dir, tmp_path / "a"))
    model = tuner.model
    names = _lora_modules(model)
    layers = model.base_model.model.config.num_hidden_layers
    assert {n.rsplit(".", 1)[-1] for n in names} == FUSED
    assert len(names) == len(FUSED) * layers
    for i in range(layers):
        assert {n.rsplit(".", 1)[-1] for n in names if f"layers.{i}." in n} == FUSED
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_cookbook_targets_raise_naming_existing_modules(tiny_dir: Path, tmp_path: Path) -> None:
    cases = {
        ("q_proj", "v_proj"): r"\['q_proj', 'v_proj'\]",
        ("qkv_proj", "v_proj"): r"\['v_proj'\]",
    }
    for targets, missing in cases.items():
        tuner = Tuner(_cfg(tiny_dir, tmp_path / "a", target_modules=list(targets)))
        with pytest.raises(
            TargetModulesError,
            match=missing + r" match no module of this phi3 model.*"
            r"Linear modules that exist: down_proj, gate_up_proj, o_proj, qkv_proj",
        ):
            _ = tuner.model


def test_all_linear_and_dora(tiny_dir: Path, tmp_path: Path) -> None:
    model = Tuner(_cfg(tiny_dir, tmp_path / "a", method="dora", target_modules="all-linear")).model
    assert {n.rsplit(".", 1)[-1] for n in _lora_modules(model)} == FUSED
    assert any("lora_magnitude_vector" in n for n, _ in model.named_parameters())


def test_pad_is_not_eos_and_stop_tokens(tiny_dir: Path, tmp_path: Path) -> None:
    tuner = Tuner(_cfg(tiny_dir, tmp_path / "a"))
    tok = tuner.tokenizer
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.pad_token == "<unk>" and tok.padding_side == "right"
    end = tok.convert_tokens_to_ids("<|end|>")
    assert end in tuner.model.generation_config.eos_token_id


# -- training ---------------------------------------------------------------------------------


def test_train_changes_adapter_not_base_and_writes_outputs(
    trained: tuple[Tuner, TrainResult], tiny_dir: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    tuner, result = trained
    out = result.output_dir
    assert result.global_step == 4
    assert result.trainable_params < result.total_params
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "phi3industry-tune.yaml",
        "metrics.json",
        "training_log.json",
        "loss_curve.png",
        "domain_terms.json",
    ):
        assert (out / name).is_file(), name
    log = json.loads((out / "training_log.json").read_text())
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4]
    assert all("learning_rate" in e for e in log if "loss" in e)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"eval_perplexity", "general_perplexity"} <= set(metrics["metrics_after"])
    assert TunerConfig.from_yaml(out / "phi3industry-tune.yaml") == tuner.config

    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero
    base = load_file(str(tiny_dir / "model.safetensors"))
    state = tuner.model.base_model.model.state_dict()
    for key, value in base.items():
        live = (
            state.get(key) if key in state else state[key.replace(".weight", ".base_layer.weight")]
        )
        assert torch.equal(live, value), key


def test_refuses_to_overwrite_an_adapter(
    trained: tuple[Tuner, TrainResult], tiny_dir: Path
) -> None:
    _, result = trained
    with pytest.raises(ConfigError, match=r"already holds an adapter.*overwrite_output_dir=True"):
        Tuner(_cfg(tiny_dir, result.output_dir)).train(ROWS)


def test_plain_peft_load_gives_identical_logits(
    trained: tuple[Tuner, TrainResult], tiny_dir: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuner, result = trained
    ids = torch.tensor([[1, 32010, 450, 3974, 32007, 32001, 13, 29909]])
    with torch.no_grad():
        live = tuner.model(ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
        plain = PeftModel.from_pretrained(base, str(result.output_dir)).eval()
        assert torch.equal(plain(ids).logits, live)
        loaded = Tuner.load(result.output_dir)
        assert torch.equal(loaded(ids).logits, live)


def test_merge_gives_same_logits(trained: tuple[Tuner, TrainResult], tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tuner, _ = trained
    ids = torch.tensor([[1, 32010, 450, 3974, 32007, 32001, 13, 29909]])
    out = tuner.merge(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert next(merged.parameters()).dtype == torch.bfloat16
    assert (out / "tokenizer.json").is_file()
    with torch.no_grad():
        live = tuner.model(ids).logits
        got = merged.float()(ids).logits
    assert torch.allclose(got, live, atol=2e-2)
    out32 = tuner.merge(tmp_path / "merged32", dtype="float32")
    with torch.no_grad():
        got32 = AutoModelForCausalLM.from_pretrained(str(out32))(ids).logits
    assert torch.allclose(got32, live, atol=1e-5)


@pytest.mark.parametrize(("quantization", "atol"), [("f32", 1e-5), ("f16", 2e-3), ("q8_0", 5e-2)])
def test_gguf_export_loads_back_with_same_logits(
    trained: tuple[Tuner, TrainResult], tmp_path: Path, quantization: str, atol: float
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tuner, _ = trained
    ids = torch.tensor([[1, 32010, 450, 3974, 32007, 32001, 13, 29909]])
    path = tuner.export_gguf(tmp_path / f"m-{quantization}.gguf", quantization=quantization)
    back = AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=path.name, dtype=torch.float32
    )
    with torch.no_grad():
        assert torch.allclose(back(ids).logits, tuner.model(ids).logits, atol=atol)


def test_generation_stops_at_end_token(trained: tuple[Tuner, TrainResult]) -> None:
    import torch

    _, result = trained
    model = Tuner.load(result.output_dir, merge=True)
    end = 32007
    assert end in model.generation_config.eos_token_id
    with torch.no_grad():  # make <|end|> the most likely next token everywhere
        model.lm_head.weight[end] = model.lm_head.weight.abs().max() * 50
    ids = torch.tensor([[1, 32010, 450, 3974, 32007, 32001, 13]])
    out = model.generate(ids, max_new_tokens=10, do_sample=False)
    assert out[0, ids.shape[1] :].tolist() == [end]


def test_evaluate_reports_perplexity_and_domain_terms(trained: tuple[Tuner, TrainResult]) -> None:
    tuner, _ = trained
    scores = tuner.evaluate(["The Zorblax valve V3 takes 13 Nm on the cryo manifold."])
    assert scores["perplexity"] > 1 and scores["num_tokens"] > 5
    assert "zorblax" in tuner.domain_terms
    assert scores["domain_term_logprob"] < 0 and scores["general_perplexity"] > 1


# -- QLoRA -----------------------------------------------------------------------------------


def test_qlora_on_cpu_is_4bit_trains_and_reloads_on_16bit(tiny_dir: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    tuner = Tuner(_cfg(tiny_dir, tmp_path / "q", method="qlora", max_steps=2, eval_fraction=0.0))
    result = tuner.train(ROWS[:8])
    bases = [
        m.base_layer
        for n, m in tuner.model.named_modules()
        if n.endswith(("qkv_proj", "down_proj"))
    ]
    assert bases and all(isinstance(b, bnb.nn.Linear4bit) for b in bases)
    assert bases[0].weight.quant_type == "nf4"
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    base16 = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base16, str(result.output_dir)).eval()
    ids = torch.tensor([[1, 32010, 450, 3974, 32007]])
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    # QLoRA puts memory first: glibc's mmap threshold went below one activation of the batch
    # (4 x 64 x hidden fp32 is far under 4 MiB here, so the floor), not the 8 MiB default.
    from phi3industry.tuning import cpu_memory

    if sys.platform.startswith("linux") and not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        assert cpu_memory._applied == cpu_memory.MIN_THRESHOLD < cpu_memory.DEFAULT_THRESHOLD


def test_the_heap_threshold_follows_the_batch_when_memory_comes_first() -> None:
    from phi3industry.tuning.cpu_memory import DEFAULT_THRESHOLD, training_threshold

    mib = 1 << 20
    # phi3-1b, 2 x 512, fp32: one hidden state is 8 MiB, and packed rows padded to 510
    # tokens (7.97 MiB) fell just under the 8 MiB default and stayed on the heap.
    assert training_threshold(2, 512, 2048, save_memory=True) == 4 * mib
    assert training_threshold(2, 512, 2048, save_memory=True, bytes_per=2) == 4 * mib  # floor
    assert training_threshold(4, 512, 576, save_memory=True) == 4 * mib  # SmolLM2: floor
    assert training_threshold(1, 4096, 3072, save_memory=True) == DEFAULT_THRESHOLD  # capped
    assert training_threshold(2, 512, 2048, save_memory=False) == DEFAULT_THRESHOLD
    assert training_threshold(2, 512, 0, save_memory=True) == DEFAULT_THRESHOLD  # unknown


def test_lora_keeps_the_default_heap_threshold(tiny_dir: Path, tmp_path: Path) -> None:
    from phi3industry.tuning import cpu_memory

    tuner = Tuner(_cfg(tiny_dir, tmp_path / "l", gradient_checkpointing=True))
    assert tuner._heap_threshold(tuner.model) == cpu_memory.DEFAULT_THRESHOLD


def _declared_floor(package: str) -> str:
    """The lowest version of ``package`` that pyproject.toml allows."""
    import re

    import tomllib

    root = Path(__file__).resolve().parent.parent
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(rf"{package}(\[|[<>=])", d))
    floor = re.search(r">=\s*([\w.]+)", spec)
    assert floor is not None, spec
    return floor.group(1)


@pytest.mark.slow
def test_tuner_trains_on_the_declared_transformers_floor(tiny_dir: Path, tmp_path: Path) -> None:
    """The oldest transformers pyproject.toml allows runs a Tuner (its arguments exist there)."""
    import subprocess

    floor = _declared_floor("transformers")
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, f"transformers=={floor}"], check=True, timeout=600)
    code = (
        "import json, sys, transformers\n"
        "from phi3industry import Tuner, TunerConfig\n"
        f"rows = {json.dumps(ROWS[:8])}\n"
        f"cfg = TunerConfig(model={str(tiny_dir)!r}, output_dir={str(tmp_path / 'out')!r},\n"
        "    max_steps=2, batch_size=2, max_length=64, save_steps=2, logging_steps=1,\n"
        "    gradient_checkpointing=True, progress=False)\n"
        "result = Tuner(cfg).train(rows)\n"
        "print(transformers.__version__, result.global_step)\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    from packaging.version import Version

    version, steps = out.stdout.split()[-2:]
    assert Version(version) == Version(floor) and steps == "2"  # "5.23" is "5.23.0"
