"""Fine-tuning: LoRA, QLoRA (4-bit base) and DoRA adapters for Phi-3 and Llama-style models.

Example:
    >>> from phi3industry.tuning import Tuner, TunerConfig
    >>> tuner = Tuner(TunerConfig(model="smollm2-135m-instruct", max_steps=20))
    >>> result = tuner.train("qa_train.jsonl")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.tuning.adapters import ADAPTER_FILES, load_adapted_model, merge_adapter
    from phi3industry.tuning.config import TunerConfig
    from phi3industry.tuning.gguf import export_gguf
    from phi3industry.tuning.tuner import TrainResult, Tuner

_LAZY = {
    "ADAPTER_FILES": "phi3industry.tuning.adapters",
    "TrainResult": "phi3industry.tuning.tuner",
    "Tuner": "phi3industry.tuning.tuner",
    "TunerConfig": "phi3industry.tuning.config",
    "export_gguf": "phi3industry.tuning.gguf",
    "load_adapted_model": "phi3industry.tuning.adapters",
    "merge_adapter": "phi3industry.tuning.adapters",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "ADAPTER_FILES",
    "TrainResult",
    "Tuner",
    "TunerConfig",
    "export_gguf",
    "load_adapted_model",
    "merge_adapter",
]
