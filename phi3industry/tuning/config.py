"""Settings of a :class:`~phi3industry.tuning.Tuner`.

The base model, the adapter method and the training settings. Field names follow peft,
transformers and trl.

Example:
    >>> from phi3industry.tuning import TunerConfig
    >>> TunerConfig(model="tiny-phi3", method="qlora", lora_r=8).bnb_4bit_quant_type
    'nf4'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phi3industry._config import ConfigBase, check
from phi3industry.models import DEFAULT_MODEL, PRECISIONS

TUNING_METHODS = ("lora", "qlora", "dora")


@dataclass
class TunerConfig(ConfigBase):
    """How to fine-tune: the base model, the adapter method and the training settings.

    Field names follow peft / transformers / trl so that users' habits carry over.

    Example:
        >>> cfg = TunerConfig(model="tiny-phi3", method="lora", lora_r=8, max_steps=10)
        >>> cfg.method
        'lora'
    """

    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Base model: short name, hub id, local directory or .gguf file."},
    )
    method: str = field(
        default="lora",
        metadata={"help": "'lora', 'qlora' (4-bit base) or 'dora' (= 'lora' with use_dora)."},
    )
    use_dora: bool = field(
        default=False,
        metadata={
            "help": "DoRA (weight-decomposed LoRA) on top of method: with method='qlora' "
            "it is QDoRA, DoRA over a 4-bit base. method='dora' sets it."
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on LoRA inputs."})
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Modules to adapt. Default per architecture (Phi-3: qkv_proj, o_proj, "
            "gate_up_proj, down_proj); 'all-linear' allowed."
        },
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate."})
    optim: str = field(
        default="adamw_torch_fused",
        metadata={
            "help": "Optimizer, a transformers name: 'adamw_torch_fused' (default), "
            "'adamw_torch', 'paged_adamw_8bit' (QLoRA on a CUDA GPU: 8-bit states, paged), "
            "'adamw_8bit', ... Checked against what can run here."
        },
    )
    num_epochs: float = field(default=1.0, metadata={"help": "Passes over the training data."})
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps; overrides num_epochs when > 0."}
    )
    batch_size: int = field(default=4, metadata={"help": "Sequences per device per step."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches accumulated per optimizer step."}
    )
    max_length: int = field(default=1024, metadata={"help": "Maximum tokens per sequence."})
    packing: bool = field(
        default=True,
        metadata={"help": "Pack short examples into full sequences (no attention leak)."},
    )
    completion_only_loss: bool = field(
        default=True, metadata={"help": "Loss on the assistant's answer only (prompt masked)."}
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Trade compute for memory."}
    )
    chunked_loss: bool = field(
        default=True,
        metadata={
            "help": "Compute the loss a chunk at a time from the final hidden states, over "
            "labelled tokens only: same loss and gradients, never the full logits (less "
            "memory; masked prompt tokens skip the vocabulary projection). Used on "
            "Phi-3, Llama, Mistral and Qwen2/3; other models get the model's own loss."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "'auto' (bf16 on GPUs that support it, else fp32), 'fp32', 'bf16', 'fp16'."
        },
    )
    load_in_8bit: bool = field(
        default=False, metadata={"help": "QLoRA: quantize the base to 8-bit instead of 4-bit."}
    )
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "'nf4' or 'fp4'."})
    bnb_4bit_use_double_quant: bool = field(
        default=True, metadata={"help": "Quantize the quantization constants too."}
    )
    seed: int = field(default=42, metadata={"help": "Random seed."})
    output_dir: str = field(
        default="phi3industry-adapter", metadata={"help": "Where the adapter and logs go."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow replacing an adapter already in output_dir."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the last checkpoint in output_dir."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the data held out for evaluation."}
    )
    eval_steps: int = field(
        default=0,
        metadata={
            "help": "Measure the held-out loss every N optimizer steps during training (0: "
            "only before and after). Needs held-out data (eval_fraction > 0 or eval_data)."
        },
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={
            "help": "Stop once the held-out loss has not improved for N evaluations in a row "
            "(0: never). Needs eval_steps."
        },
    )
    load_best_model_at_end: bool = field(
        default=True,
        metadata={
            "help": "With eval_steps: end with the adapter of the lowest held-out loss, not "
            "the last step's (save_steps must be a multiple of eval_steps)."
        },
    )
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N steps."})
    logging_steps: int = field(default=5, metadata={"help": "Log loss every N steps."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Linear warm-up fraction."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars (on a TTY)."})

    def __post_init__(self) -> None:
        check(
            self.method in TUNING_METHODS,
            f"method must be one of {', '.join(TUNING_METHODS)}, got {self.method!r}.",
        )
        check(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.",
        )
        check(
            isinstance(self.lora_r, int) and self.lora_r > 0,
            f"lora_r must be a positive integer, got {self.lora_r!r}.",
        )
        check(self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha!r}.")
        check(
            0.0 <= self.lora_dropout < 1.0,
            f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}.",
        )
        check(
            self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate!r}."
        )
        check(
            self.batch_size > 0 and self.gradient_accumulation_steps > 0,
            "batch_size and gradient_accumulation_steps must be positive, got "
            f"{self.batch_size!r} and {self.gradient_accumulation_steps!r}.",
        )
        check(self.max_length >= 16, f"max_length must be at least 16, got {self.max_length!r}.")
        check(
            self.max_steps > 0 or self.num_epochs > 0,
            "Set max_steps > 0 or num_epochs > 0 so that training has something to do.",
        )
        check(
            0.0 <= self.eval_fraction < 1.0,
            f"eval_fraction must be in [0, 1), got {self.eval_fraction!r}.",
        )
        check(
            self.bnb_4bit_quant_type in ("nf4", "fp4"),
            f"bnb_4bit_quant_type must be 'nf4' or 'fp4', got {self.bnb_4bit_quant_type!r}.",
        )
        check(
            not (self.load_in_8bit and self.method != "qlora"),
            "load_in_8bit quantizes the base model and only applies to method='qlora'; "
            f"got method={self.method!r}. Use method='qlora' with load_in_8bit=True.",
        )
        check(
            self.save_steps > 0 and self.logging_steps > 0,
            "save_steps and logging_steps must be positive.",
        )
        check(
            isinstance(self.eval_steps, int) and self.eval_steps >= 0,
            f"eval_steps must be 0 (off) or a positive integer, got {self.eval_steps!r}.",
        )
        check(
            isinstance(self.early_stopping_patience, int) and self.early_stopping_patience >= 0,
            "early_stopping_patience must be 0 (off) or a positive integer, got "
            f"{self.early_stopping_patience!r}.",
        )
        check(
            not (self.early_stopping_patience and not self.eval_steps),
            f"early_stopping_patience={self.early_stopping_patience} needs evaluations to "
            "watch: set eval_steps > 0 too (e.g. eval_steps=save_steps).",
        )
        check(
            not (
                self.eval_steps
                and self.load_best_model_at_end
                and self.save_steps % self.eval_steps
            ),
            f"save_steps ({self.save_steps}) must be a multiple of eval_steps "
            f"({self.eval_steps}) so that the best evaluated step has a checkpoint to restore: "
            f"set save_steps={self.eval_steps}, or load_best_model_at_end=False.",
        )
        check(
            isinstance(self.seed, int) and 0 <= self.seed < 2**32,
            f"seed must be an integer from 0 to 2**32 - 1 (numpy's range), got {self.seed!r}.",
        )
        if self.method == "dora":
            self.use_dora = True
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        check(
            self.target_modules is None
            or self.target_modules == "all-linear"
            or (isinstance(self.target_modules, list) and len(self.target_modules) > 0),
            "target_modules must be a non-empty list of module names, 'all-linear', or unset "
            f"for the architecture's default; got {self.target_modules!r}.",
        )
