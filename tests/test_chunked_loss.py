"""The chunked loss gives the model's own loss and gradients without building the logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from phi3industry.tuning import chunked_loss
from phi3industry.tuning.chunked_loss import ChunkedCausalLMLoss, unsupported_reason
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.tuner import Tuner

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"Which gasket fits the Zorblax pump P{i}?"},
            {"role": "assistant", "content": f"Pump P{i} takes gasket G{i * 3} in PTFE."},
        ]
    }
    for i in range(16)
]


def _lora_model(model_dir: Path, **lora: Any) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    settings = {"r": 4, "target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}
    settings.update(lora)
    model = get_peft_model(base, LoraConfig(**settings))
    # Non-zero B, so that the adapter's gradients are not all zero.
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def _packed_batch(tokenizer: Any) -> dict[str, Any]:
    from phi3industry.tuning import data

    examples = data.load_examples(ROWS)
    rows, collator = data.build_rows(
        examples, tokenizer, max_length=96, packing=True, completion_only_loss=True
    )
    return dict(collator(rows[:3]))


def _grads(model: Any) -> dict[str, Any]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_same_loss_and_gradients_as_the_models_own_loss(
    tiny_phi3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from phi3industry.models import load_tokenizer

    # Small chunks, so that one batch spans several of them.
    monkeypatch.setattr(chunked_loss, "_CHUNK_ELEMENTS", 32 * 32064)
    model = _lora_model(tiny_phi3_dir)
    batch = _packed_batch(load_tokenizer(str(tiny_phi3_dir)))
    labels = batch.pop("labels")
    n_labelled = int((labels[:, 1:] != -100).sum())
    assert n_labelled > 3 * 32, "the batch should span several chunks"
    assert (labels == -100).any(), "prompt tokens are masked"

    reference = model(**batch, labels=labels).loss
    reference.backward()
    reference_grads = _grads(model)

    loss_func = ChunkedCausalLMLoss(model)
    with loss_func.attach():
        outputs = model(**batch)
        assert outputs.logits.shape[1] == 0, "the full logits are never built"
        loss = loss_func(outputs, labels)
    loss.backward()
    grads = _grads(model)

    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert grads.keys() == reference_grads.keys() and grads
    assert all("lora_" in name for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], rtol=1e-4, atol=1e-7)
    # Detached: the model builds its logits again.
    assert model(**batch).logits.shape[1] == labels.shape[1]

    # Normalised by the Trainer's count over the accumulated batch when given.
    with loss_func.attach():
        halved = loss_func(model(**batch), labels, num_items_in_batch=2 * n_labelled)
    torch.testing.assert_close(halved, reference / 2, rtol=1e-5, atol=1e-6)


def test_a_batch_without_labels_backpropagates_zero(tiny_phi3_dir: Path) -> None:
    import torch

    model = _lora_model(tiny_phi3_dir)
    ids = torch.arange(10, 40).reshape(2, 15)
    loss_func = ChunkedCausalLMLoss(model)
    with loss_func.attach():
        loss = loss_func(model(input_ids=ids), torch.full_like(ids, -100))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert all(float(g.abs().sum()) == 0.0 for g in _grads(model).values())


def test_refuses_without_the_hook(tiny_phi3_dir: Path) -> None:
    import torch

    model = _lora_model(tiny_phi3_dir)
    ids = torch.arange(10, 20).reshape(1, 10)
    with pytest.raises(RuntimeError, match=r"ran without attach\(\)"):
        ChunkedCausalLMLoss(model)(model(input_ids=ids), ids)


def test_unsupported_models_are_named(tiny_phi3_dir: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64))
    assert "model_type 'gpt2' is not one of" in str(unsupported_reason(gpt2))
    adapted_head = _lora_model(tiny_phi3_dir, target_modules=["qkv_proj", "lm_head"])
    with pytest.raises(ValueError, match=r"is a peft\.tuners\.lora\.layer\.Linear, not a plain"):
        ChunkedCausalLMLoss(adapted_head)
    assert unsupported_reason(_lora_model(tiny_phi3_dir)) is None


def test_tuner_trains_the_same_with_and_without_it(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    def run(chunked: bool) -> tuple[Any, dict[str, Any]]:
        cfg = TunerConfig(
            model=str(tiny_phi3_dir),
            output_dir=str(tmp_path / f"chunked-{chunked}"),
            chunked_loss=chunked,
            max_steps=3,
            batch_size=4,
            gradient_accumulation_steps=2,
            max_length=64,
            learning_rate=1e-2,
            logging_steps=1,
            eval_fraction=0.0,
            progress=False,
        )
        tuner = Tuner(cfg)
        result = tuner.train(ROWS)
        losses = [e["loss"] for e in result.log_history if "loss" in e]
        adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
        return losses, adapter

    own_losses, own_adapter = run(chunked=False)
    chunked_losses, chunked_adapter = run(chunked=True)
    assert len(chunked_losses) == 3
    assert chunked_losses == pytest.approx(own_losses, rel=1e-4)
    for name, weight in own_adapter.items():
        torch.testing.assert_close(chunked_adapter[name], weight, rtol=1e-3, atol=1e-5)
