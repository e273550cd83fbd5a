"""LoRA adapter specs (``name=path``) and the check that an adapter fits its base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError
from phi3industry.generation.base import BASE_ADAPTER


def parse_adapter_spec(spec: str) -> tuple[str, str]:
    """Split ``'name=DIR'`` (or ``'DIR'``, named after the directory) into ``(name, dir)``."""
    name, sep, path = spec.partition("=")
    if not sep:
        path = spec
        name = Path(spec.rstrip("/\\")).name or "adapter"
    name, path = name.strip(), path.strip()
    if not name or not path:
        raise ConfigError(f"Adapter must be 'name=DIR' or 'DIR', got {spec!r}.")
    if name == BASE_ADAPTER:
        raise ConfigError(f"Adapter name {BASE_ADAPTER!r} is reserved for the base model.")
    return name, path


def _describe(cfg: Any) -> str:
    arch = (getattr(cfg, "architectures", None) or [getattr(cfg, "model_type", "?")])[0]
    return f"{arch}, hidden_size={getattr(cfg, 'hidden_size', '?')}"


def check_adapter_compatible(model: Any, adapter_dir: str | Path, base_name: str) -> None:
    """Raise a clear error if a LoRA adapter was made for another base model.

    Compares the architecture and hidden size of the adapter's recorded base model (when it
    can be found locally) with the loaded base, then every LoRA weight's shape with the
    module it adapts.

    Args:
        model: The loaded base model (not yet wrapped by peft).
        adapter_dir: The adapter directory (``adapter_config.json`` + safetensors).
        base_name: How the user named the base model (for the message).

    Raises:
        ConfigError: If the directory is not an adapter, or the adapter does not fit the base.
    """
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file():
        raise ConfigError(
            f"{str(adapter_dir)!r} is not a LoRA adapter directory: it has no "
            "adapter_config.json. Pass the output_dir of a Tuner run."
        )
    try:
        adapter_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {cfg_path}: {exc}") from exc
    made_for = str(adapter_cfg.get("base_model_name_or_path") or "an unrecorded base model")
    base_cfg = model.config
    mismatch = ""
    adapter_base_cfg = None
    if made_for and Path(made_for).is_dir() and (Path(made_for) / "config.json").is_file():
        from transformers import AutoConfig

        try:
            adapter_base_cfg = AutoConfig.from_pretrained(made_for)
        except (OSError, ValueError):
            adapter_base_cfg = None
    if adapter_base_cfg is not None:
        same_arch = (getattr(adapter_base_cfg, "architectures", None) or [None])[0] == (
            getattr(base_cfg, "architectures", None) or [None]
        )[0]
        if not same_arch or adapter_base_cfg.hidden_size != base_cfg.hidden_size:
            mismatch = f" ({_describe(adapter_base_cfg)})"
    if not mismatch:
        mismatch = _lora_shape_mismatch(model, adapter_dir)
    if mismatch:
        raise ConfigError(
            f"Adapter {str(adapter_dir)!r} was made for base model {made_for!r}{mismatch}, "
            f"but the base model loaded is {base_name!r} ({_describe(base_cfg)}). Load the "
            "adapter on the base model it was trained from, or retrain it on this one."
        )


def _lora_shape_mismatch(model: Any, adapter_dir: Path) -> str:
    """Describe the first LoRA weight whose shape does not fit the base module ('' if none)."""
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        return ""
    from safetensors import safe_open

    modules = dict(model.named_modules())
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            module_path = key.split(".lora_")[0]
            # peft saves "base_model.model.<path>"; the bare model is addressed by "<path>".
            for prefix in ("base_model.model.", "base_model."):
                if module_path.startswith(prefix):
                    module_path = module_path[len(prefix) :]
                    break
            module = modules.get(module_path)
            shape = tuple(f.get_slice(key).get_shape())
            if module is None:
                return f" (it adapts module {module_path!r}, which the loaded base does not have)"
            in_f, out_f = (
                getattr(module, "in_features", None),
                getattr(module, "out_features", None),
            )
            if in_f is None or out_f is None:
                continue
            if (".lora_A." in key and shape[-1] != in_f) or (
                ".lora_B." in key and shape[0] != out_f
            ):
                return (
                    f" (its {module_path} LoRA weight has shape {list(shape)}, the base's "
                    f"module is {in_f}->{out_f})"
                )
    return ""
