"""Preparing a base model for tuning: precision, 4-bit/8-bit quantization, LoRA targets."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from phi3industry.errors import ConfigError, DependencyMissingError, TargetModulesError
from phi3industry.models import model_family
from phi3industry.tuning.config import TunerConfig

if TYPE_CHECKING:
    import torch

MIN_BNB_VERSION = "0.45"

#: transformers optimizers that bitsandbytes implements (``optim`` values).
BNB_OPTIMIZERS = frozenset(
    {
        *("adamw_bnb_8bit", "adamw_8bit", "ademamix", "ademamix_8bit", "lion_8bit"),
        *("lion_32bit", "paged_adamw_32bit", "paged_adamw_8bit", "paged_ademamix_32bit"),
        *("paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit", "rmsprop_bnb"),
        *("rmsprop_bnb_8bit", "rmsprop_bnb_32bit"),
    }
)
#: Optimizers that need a package of their own: name prefix -> (module, pip install name).
OPTIMIZER_PACKAGES = {
    "galore_": ("galore_torch", "galore-torch"),
    "apollo_": ("apollo_torch", "apollo-torch"),
    "lomo": ("lomo_optim", "lomo-optim"),
    "adalomo": ("lomo_optim", "lomo-optim"),
    "grokadamw": ("grokadamw", "grokadamw"),
    "schedule_free_": ("schedulefree", "schedulefree"),
    "adamw_torch_4bit": ("torchao", "torchao"),
    "adamw_torch_8bit": ("torchao", "torchao"),
    "adamw_anyprecision": ("torchdistx", "torchdistx"),
    "stable_adamw": ("optimi", "torch-optimi"),
    "adamw_torch_xla": ("torch_xla", "torch-xla (on a TPU host)"),
    "adamw_torch_npu_fused": ("torch_npu", "torch-npu (on an Ascend NPU host)"),
}

#: Default LoRA targets per architecture (``model_type``): every linear layer of each block.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
}


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable."""
    import torch

    return bool(torch.cuda.is_available())


def local_device_index() -> int:
    """The CUDA device this process trains on.

    An ``Accelerator`` already set up decides (its device); otherwise ``LOCAL_RANK``, which
    ``torchrun`` and ``accelerate launch`` set for each process; otherwise the current
    device (0 unless the caller chose another with ``torch.cuda.set_device``).

    Raises:
        ConfigError: If ``LOCAL_RANK`` is not an integer or names a GPU that is not visible.
    """
    import torch
    from accelerate.state import AcceleratorState, is_initialized

    if is_initialized():
        device = AcceleratorState().device
        if device.type == "cuda":
            return int(device.index if device.index is not None else torch.cuda.current_device())
    raw = os.environ.get("LOCAL_RANK")
    if raw is None:
        return int(torch.cuda.current_device())
    try:
        index = int(raw)
    except ValueError:
        raise ConfigError(
            f"LOCAL_RANK must be an integer (the process's GPU on this node), got {raw!r}. "
            "Launch with torchrun or accelerate launch, which set it, or unset it."
        ) from None
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise ConfigError(
            f"LOCAL_RANK={index} but this process sees {count} CUDA device(s) (check "
            "CUDA_VISIBLE_DEVICES): launch at most one process per visible GPU "
            "(torchrun --nproc-per-node <= the GPU count)."
        )
    return index


def training_device_map(quantized: bool) -> dict[str, int | str] | None:
    """Where ``from_pretrained`` puts the whole model in this process.

    Each process of a multi-GPU run (torchrun, accelerate launch) loads its own replica onto
    its own GPU (:func:`local_device_index`), never every replica onto GPU 0. A quantized
    model must be placed as it is loaded; on CPU an unquantized one needs no map.

    Args:
        quantized: Whether the model is loaded in 4-bit or 8-bit.

    Returns:
        ``{"": gpu_index}`` on CUDA, ``{"": "cpu"}`` for a quantized model on CPU, else None.
    """
    if cuda_available():
        return {"": local_device_index()}
    return {"": "cpu"} if quantized else None


def resolve_precision(precision: str) -> str:
    """Turn ``precision`` into ``"fp32"``, ``"bf16"`` or ``"fp16"`` for this machine.

    ``auto`` is bf16 on a CUDA GPU that supports it, else fp32 (CPU, or older GPUs: fp16
    AMP is only used when asked for).

    Raises:
        ConfigError: If bf16/fp16 is asked for where it cannot run.
    """
    import torch

    cuda = cuda_available()
    if precision == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError(
            "precision='fp16' needs a CUDA GPU (fp16 mixed precision is not supported on "
            "CPU). Use precision='auto' or 'fp32'."
        )
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            "precision='bf16' was asked for but this GPU does not support bf16. Use "
            "precision='fp16' or 'auto'."
        )
    return precision


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype the frozen base weights are loaded in for a resolved ``precision``."""
    import torch

    # fp16 keeps the frozen base in fp16 but the trainable adapter in fp32 (peft's default),
    # so fp16 AMP never steps fp16 weights. bf16 on CPU runs as autocast over fp32 weights.
    if precision == "bf16" and cuda_available():
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.float32


def require_bitsandbytes(needed_by: str = "method='qlora'") -> Any:
    """Import bitsandbytes, or raise a clear error with the install command.

    Args:
        needed_by: What needs it, for the message (a setting such as ``optim=...``).
    """
    try:
        import bitsandbytes
    except ImportError as exc:
        raise DependencyMissingError(
            f"{needed_by} needs bitsandbytes, which is not installed. Install it with: "
            "pip install 'phi3industry[qlora]'"
        ) from exc
    from packaging.version import Version

    version = getattr(bitsandbytes, "__version__", "0")
    if Version(version) < Version(MIN_BNB_VERSION):
        raise DependencyMissingError(
            f"{needed_by} needs bitsandbytes >= {MIN_BNB_VERSION} (4-bit on CPU and GPU), "
            f"found {version}. Upgrade with: pip install -U 'phi3industry[qlora]'"
        )
    return bitsandbytes


def check_optimizer(optim: str) -> None:
    """Refuse an ``optim`` transformers does not know, or one that cannot run here.

    Checked when the :class:`~phi3industry.tuning.Tuner` is built, before any data or model
    is loaded: the Trainer would only fail once everything is in memory.

    Raises:
        ConfigError: For an unknown name (with the closest known one), or a paged optimizer
            (bitsandbytes pages its state between GPU and CPU memory) without a CUDA GPU.
        DependencyMissingError: For an optimizer whose package is not installed, naming the
            ``pip install`` that provides it.
    """
    import difflib
    import importlib.util

    from transformers.training_args import OptimizerNames

    known = [o.value for o in OptimizerNames]
    if optim not in known:
        close = difflib.get_close_matches(optim, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"optim={optim!r} is not a transformers optimizer.{hint} Use e.g. 'adamw_torch' "
            "(CPU or GPU), 'adamw_torch_fused' (the default) or 'paged_adamw_8bit' (QLoRA on "
            f"a CUDA GPU); all names: {', '.join(known)}."
        )
    if optim in BNB_OPTIMIZERS:
        if optim.startswith("paged_") and not cuda_available():
            raise ConfigError(
                f"optim={optim!r} needs a CUDA GPU: bitsandbytes pages its optimizer state "
                "between GPU and CPU memory, and there is no GPU here. On CPU use "
                "optim='adamw_torch' (or 'adamw_8bit' for 8-bit optimizer states)."
            )
        require_bitsandbytes(needed_by=f"optim={optim!r}")
        return
    for prefix, (module, package) in OPTIMIZER_PACKAGES.items():
        if optim.startswith(prefix) and importlib.util.find_spec(module) is None:
            raise DependencyMissingError(
                f"optim={optim!r} needs the {module} package, which is not installed: "
                f"pip install {package}. Or use optim='adamw_torch'."
            )


def quantization_config(config: TunerConfig, precision: str) -> Any:
    """The ``BitsAndBytesConfig`` for QLoRA (``None`` for LoRA/DoRA)."""
    if config.method != "qlora":
        return None
    require_bitsandbytes()
    import torch
    from transformers import BitsAndBytesConfig

    if config.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if precision == "bf16" and cuda_available() else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=config.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def default_target_modules(model: Any) -> list[str] | str:
    """Default LoRA targets for a model's architecture (``"all-linear"`` if unknown)."""
    return list(DEFAULT_TARGETS.get(model_family(model), [])) or "all-linear"


def linear_module_names(model: Any) -> list[str]:
    """Short names (last path component) of the model's linear layers, lm_head excluded."""
    import torch

    names = set()
    for name, module in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if short == "lm_head" or not name:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in (
            "Linear4bit",
            "Linear8bitLt",
        ):
            names.add(short)
    return sorted(names)


def check_target_modules(model: Any, targets: list[str] | str) -> None:
    """Check that every requested target names a linear layer of ``model``.

    peft only fails when *no* target matches; a partial match (the CookBook's
    ``q_proj``/``v_proj`` on a model with only ``qkv_proj``) trains a fraction of the
    model silently. This check refuses both.

    Raises:
        TargetModulesError: Naming the targets that match nothing and the ones that exist.
    """
    if targets == "all-linear":
        return
    existing = linear_module_names(model)
    module_names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in module_names)]
    if missing:
        family = model_family(model)
        hint = (
            " (HF Phi-3 fuses attention into 'qkv_proj' and the MLP into 'gate_up_proj'; "
            "the CookBook's q_proj/k_proj/v_proj/gate_proj/up_proj do not exist)"
            if family == "phi3"
            else ""
        )
        raise TargetModulesError(
            f"target_modules {missing} match no module of this {family} model{hint}. "
            f"Linear modules that exist: {', '.join(existing)}. Leave target_modules unset "
            "for the architecture's default, or use 'all-linear'."
        )


def count_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (4-bit weights counted as unpacked)."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if type(param).__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def verify_adapters(peft_model: Any, targets: list[str] | str) -> None:
    """After wrapping: every requested target got an adapter in every layer where it exists."""
    if targets == "all-linear":
        return
    from peft.tuners.lora import LoraLayer

    for target in targets:
        found = [
            m for n, m in peft_model.named_modules() if n == target or n.endswith("." + target)
        ]
        wrapped = [m for m in found if isinstance(m, LoraLayer)]
        if not wrapped or len(wrapped) != len(found):
            raise TargetModulesError(
                f"target module {target!r}: {len(wrapped)} of {len(found)} modules got a LoRA "
                "adapter (only torch.nn.Linear-like layers can be adapted)."
            )


# --------------------------------------------------------------------------------------
# Logging and plotting
# --------------------------------------------------------------------------------------


def restore_4bit_training_layout(model: Any) -> None:
    """Undo bitsandbytes' CPU inference packing of 4-bit weights before training.

    On CPUs with AVX512-BF16, a ``Linear4bit`` run in eval mode repacks its weight for a
    fast inference kernel that has no autograd support, and keeps it packed: training
    afterwards (e.g. after the "before" evaluation) silently gets no gradient through the
    frozen base layers. Repacking back restores the differentiable path.
    """
    for module in model.modules():
        weight: Any = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        if (
            weight is not None
            and state is not None
            and getattr(state, "packing_format_for_cpu", False)
        ):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                weight.data, state
            )
