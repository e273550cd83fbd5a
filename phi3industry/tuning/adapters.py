"""Trained adapters after training: load one onto its base, merge it, read its tokenizer.

Adapters are always put on the *unquantized* base: a QLoRA adapter is merged into the
original 16-bit weights reloaded, never into a dequantized 4-bit copy.

Example:
    >>> from phi3industry.tuning.adapters import merge_adapter
    >>> merge_adapter("out/adapter", "out/merged", dtype="bfloat16")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError
from phi3industry.models import load_model, load_tokenizer, quiet_peft, stop_token_ids
from phi3industry.tuning.model_setup import resolve_precision, weights_dtype

#: What a finished adapter directory holds (besides its tokenizer and our logs).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MERGE_DTYPES = ("bfloat16", "float16", "float32")


def check_adapter_dir(adapter_dir: Path) -> None:
    """Refuse a directory that holds no adapter (names the fix)."""
    if not (adapter_dir / ADAPTER_FILES[0]).is_file():
        raise ConfigError(
            f"{adapter_dir} is not an adapter directory (no adapter_config.json). Give the "
            "output_dir of a finished `phi3industry tune` run."
        )


def adapter_base_model(adapter_dir: Path) -> str:
    """The base model an adapter was trained on, as recorded by peft."""
    config = json.loads((adapter_dir / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
    return str(config["base_model_name_or_path"])


def adapter_tokenizer(adapter_dir: Path, base_name: str) -> Any:
    """The tokenizer saved beside an adapter (already fixed), else the base model's."""
    if (adapter_dir / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(adapter_dir))
    return load_tokenizer(base_name)


def load_adapted_model(adapter_dir: str | Path, *, merge: bool = False, dtype: Any = None) -> Any:
    """Load a saved adapter onto its (16-bit or fp32, unquantized) base model.

    Args:
        adapter_dir: A directory written by :meth:`Tuner.train`.
        merge: Merge the adapter into the base weights (a plain transformers model).
        dtype: Weights dtype of the base (default: fp32 on CPU, bf16 on capable GPUs).

    Returns:
        The model in eval mode, its generation config stopping at the chat turn end
        (``<|end|>`` for Phi-3) as well as eos.

    Raises:
        ConfigError: If ``adapter_dir`` holds no adapter.
    """
    adapter_dir = Path(adapter_dir)
    check_adapter_dir(adapter_dir)
    base_name = adapter_base_model(adapter_dir)
    if dtype is None:
        dtype = weights_dtype(resolve_precision("auto"))
    base = load_model(base_name, dtype=dtype)
    with quiet_peft():
        from peft import PeftModel

        model = PeftModel.from_pretrained(base, str(adapter_dir))
    tokenizer = adapter_tokenizer(adapter_dir, base_name)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return model


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, dtype: str = "bfloat16") -> Path:
    """Merge a saved adapter into its unquantized base and save it with the tokenizer.

    Args:
        adapter_dir: A directory written by :meth:`Tuner.train`.
        out_dir: Directory to write (safetensors).
        dtype: ``"bfloat16"`` (default), ``"float16"`` or ``"float32"``.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: For a bad ``dtype`` or a directory without an adapter.
    """
    import torch

    if dtype not in MERGE_DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(MERGE_DTYPES)}, got {dtype!r}.")
    adapter_dir = Path(adapter_dir)
    # Merge in fp32 (exact), then cast once.
    model = load_adapted_model(adapter_dir, merge=True, dtype=torch.float32)
    model = model.to(getattr(torch, dtype))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    adapter_tokenizer(adapter_dir, adapter_base_model(adapter_dir)).save_pretrained(str(out))
    return out


__all__ = [
    "ADAPTER_FILES",
    "adapter_tokenizer",
    "check_adapter_dir",
    "load_adapted_model",
    "merge_adapter",
]
