"""LoRA / QLoRA / DoRA fine-tuning of Phi-3 (and Llama-style models) with peft.

The traps of the Phi-3 CookBook recipes, and what the :class:`Tuner` does instead:

* LoRA targets ``q_proj``/``v_proj`` do not exist in HF Phi-3 (its attention is one fused
  ``qkv_proj`` and its MLP one fused ``gate_up_proj``): the default targets are the fused
  modules, and every requested target is checked against the model before training
  (:class:`~phi3industry.errors.TargetModulesError` lists the modules that exist).
* Phi-3 pads with eos, so a collator masking padding also masks eos: the tokenizer pads with
  ``<unk>`` (:func:`phi3industry.models.load_tokenizer`).
* A hand-made template: examples are rendered with the model's own chat template and the
  loss is on the assistant's answer only (:mod:`phi3industry.tuning.data`).
* fp16 weights trained with fp16 AMP: precision ``auto`` is bf16 on GPUs that support it and
  fp32 on CPU; trainable (adapter) weights are always fp32.
* Padding to the maximum length: examples are packed without attention across examples.

Example:
    >>> from phi3industry import Tuner, TunerConfig
    >>> tuner = Tuner(TunerConfig(model="smollm2-135m-instruct", max_steps=20,
    ...                           output_dir="my-adapter"))
    >>> result = tuner.train("qa_train.jsonl")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError
from phi3industry.models import load_model, load_tokenizer, quiet_peft, stop_token_ids
from phi3industry.tuning import data as data_mod
from phi3industry.tuning import lm_metrics
from phi3industry.tuning.adapters import (
    ADAPTER_FILES,
    check_adapter_dir,
    load_adapted_model,
    merge_adapter,
)
from phi3industry.tuning.chunked_loss import ChunkedCausalLMLoss
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.cpu_memory import limit_heap_retention, training_threshold
from phi3industry.tuning.gguf import export_gguf
from phi3industry.tuning.model_setup import (
    check_optimizer,
    check_target_modules,
    count_parameters,
    cuda_available,
    default_target_modules,
    quantization_config,
    require_bitsandbytes,
    resolve_precision,
    restore_4bit_training_layout,
    training_device_map,
    verify_adapters,
    weights_dtype,
)
from phi3industry.tuning.training import (
    CountingCollator,
    held_out_rows,
    plot_loss_curve,
    training_callbacks,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "phi3industry-tune.yaml"
METRICS_FILE = "metrics.json"
LOG_FILE = "training_log.json"
CURVE_FILE = "loss_curve.png"
TERMS_FILE = "domain_terms.json"
CHECKPOINT_DIR = "checkpoints"
_MAX_EVAL_EXAMPLES = 64
_MAX_EVAL_CHARS = 2000


@dataclass
class TrainResult:
    """What :meth:`Tuner.train` did and measured.

    Attributes:
        output_dir: Directory holding the adapter, tokenizer, config, metrics and logs.
        global_step: Optimizer steps taken.
        train_loss: Mean training loss over the run.
        metrics_before: Evaluation before training (held-out perplexity, domain-term
            log-prob, general-text perplexity).
        metrics_after: The same after training.
        trainable_params: Parameters trained (the adapter).
        total_params: All parameters of the wrapped model.
        target_modules: The LoRA targets used.
        train_tokens: Non-padding tokens in one pass over the training rows.
        tokens_per_second: Non-padding tokens processed per second of training.
        train_runtime: Seconds spent in the training loop.
        log_history: The Trainer's log entries (loss, learning rate, held-out loss, ...).
        best_step: With ``eval_steps``: the step of the lowest held-out loss (the adapter
            saved is that step's when ``load_best_model_at_end``), else None.
        best_eval_loss: That lowest held-out loss, else None.
        stopped_early: Whether early stopping ended the run before ``max_steps``.
    """

    output_dir: Path
    global_step: int
    train_loss: float
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    trainable_params: int = 0
    total_params: int = 0
    target_modules: list[str] | str = field(default_factory=list)
    train_tokens: int = 0
    tokens_per_second: float = 0.0
    train_runtime: float = 0.0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    best_eval_loss: float | None = None
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        return data

    def summary(self) -> str:
        """A few human-readable lines: parameters, loss, before/after metrics."""
        lines = [
            f"Adapter saved to {self.output_dir}",
            f"Trainable parameters: {self.trainable_params:,} of {self.total_params:,} "
            f"({100 * self.trainable_params / max(1, self.total_params):.2f}%)",
            f"Steps: {self.global_step}, mean train loss {self.train_loss:.4f}, "
            f"{self.tokens_per_second:,.0f} tokens/s",
        ]
        if self.best_step is not None and self.best_eval_loss is not None:
            stop = " (stopped early)" if self.stopped_early else ""
            lines.append(
                f"Lowest held-out loss {self.best_eval_loss:.4f} at step {self.best_step}{stop}"
            )
        for key in sorted(set(self.metrics_before) | set(self.metrics_after)):
            before = self.metrics_before.get(key)
            after = self.metrics_after.get(key)
            lines.append(f"{key}: {_fmt(before)} -> {_fmt(after)}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# --------------------------------------------------------------------------------------
# Precision, quantization, targets
# --------------------------------------------------------------------------------------


class Tuner:
    """Fine-tune a causal LM with LoRA, QLoRA or DoRA on domain text and Q&A.

    Args:
        config: The settings (default: ``TunerConfig()``).
        **overrides: Settings that replace those of ``config``.

    Example:
        >>> from phi3industry import Tuner, TunerConfig
        >>> tuner = Tuner(TunerConfig(model="tiny-phi3", max_steps=5, output_dir="out"))
        >>> tuner.config.method
        'lora'
        >>> result = tuner.train([{"prompt": "What is MTBF?",
        ...                        "completion": "Mean time between failures."}])  # doctest: +SKIP
        >>> model = Tuner.load("out")  # doctest: +SKIP
    """

    def __init__(self, config: TunerConfig | None = None, **overrides: Any) -> None:
        config = config or TunerConfig()
        if overrides:
            config = TunerConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        self.precision = resolve_precision(config.precision)
        if config.method == "qlora":
            require_bitsandbytes()
        check_optimizer(config.optim)
        self._tokenizer: Any = None
        self._model: Any = None
        self.domain_terms: list[str] = []
        self.target_modules: list[str] | str = config.target_modules or []

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Tuner:
        """Build a Tuner from a YAML file of :class:`~phi3industry.config.TunerConfig` keys."""
        return cls(TunerConfig.from_yaml(path), **overrides)

    @classmethod
    def from_adapter(cls, adapter_dir: str | Path, **overrides: Any) -> Tuner:
        """Rebuild the Tuner that trained ``adapter_dir`` (for evaluate/merge/export)."""
        adapter_dir = Path(adapter_dir)
        check_adapter_dir(adapter_dir)
        cfg_file = adapter_dir / CONFIG_FILE
        if cfg_file.is_file():
            config = TunerConfig.from_yaml(cfg_file)
        else:
            base = json.loads((adapter_dir / "adapter_config.json").read_text())
            config = TunerConfig(model=base["base_model_name_or_path"])
        overrides.setdefault("output_dir", str(adapter_dir))
        tuner = cls(config, **overrides)
        terms = adapter_dir / TERMS_FILE
        if terms.is_file():
            tuner.domain_terms = json.loads(terms.read_text())
        return tuner

    # -- model and tokenizer ----------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The base model's tokenizer (pad != eos, right padding, chat template)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.model, padding_side="right")
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The model being tuned: the base wrapped with a fresh adapter (built on first use)."""
        if self._model is None:
            self._model = self._build_model()
        return self._model

    def _load_base(self) -> Any:
        quant = quantization_config(self.config, self.precision)
        kwargs: dict[str, Any] = {"dtype": weights_dtype(self.precision)}
        device_map = training_device_map(quantized=quant is not None)
        if device_map is not None:
            kwargs["device_map"] = device_map
        if quant is not None:
            kwargs["quantization_config"] = quant
            if not cuda_available():
                kwargs["dtype"] = None if self.config.load_in_8bit else weights_dtype("fp32")
        return load_model(self.config.model, **kwargs)

    def _build_model(self) -> Any:
        with quiet_peft():
            return self._build_peft_model()

    def _build_peft_model(self) -> Any:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        cfg = self.config
        base = self._load_base()
        targets = cfg.target_modules or default_target_modules(base)
        check_target_modules(base, targets)
        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            base = prepare_model_for_kbit_training(
                base,
                use_gradient_checkpointing=cfg.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        base.generation_config.eos_token_id = stop_token_ids(self.tokenizer)
        base.generation_config.pad_token_id = self.tokenizer.pad_token_id
        base.config.pad_token_id = self.tokenizer.pad_token_id
        set_seed(cfg.seed)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            use_dora=cfg.use_dora,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, lora)
        verify_adapters(model, targets)
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()  # never step fp16/bf16 weights
        self.target_modules = targets
        return model

    # -- training ---------------------------------------------------------------------

    def _check_output_dir(self) -> Path:
        """Refuse an ``output_dir`` holding an adapter or an unfinished run, unless told.

        Only checks: nothing is created, so a run that fails on its data leaves no trace.
        """
        cfg = self.config
        out = Path(cfg.output_dir)
        if cfg.overwrite_output_dir or cfg.resume:
            return out
        if (out / ADAPTER_FILES[0]).is_file():
            raise ConfigError(
                f"output_dir {out} already holds an adapter. Set overwrite_output_dir=True "
                "(CLI: --overwrite-output-dir) to replace it, resume=True to continue its "
                "training, or choose another output_dir."
            )
        if any((out / CHECKPOINT_DIR).glob("checkpoint-*")):
            raise ConfigError(
                f"output_dir {out} holds checkpoints of an unfinished run "
                f"({out / CHECKPOINT_DIR}). Set resume=True (CLI: --resume) to continue it, "
                "overwrite_output_dir=True (CLI: --overwrite-output-dir) to start over, or "
                "choose another output_dir."
            )
        return out

    def _prepare_output_dir(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        starting_over = self.config.overwrite_output_dir and not self.config.resume
        if starting_over and int(os.environ.get("RANK", "0")) == 0:
            # A new run must not rotate, or later resume from, the old run's checkpoints,
            # nor append its loss log to the old one.
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            (out / (LOG_FILE + "l")).unlink(missing_ok=True)

    def _last_checkpoint(self, out: Path) -> str | None:
        """The newest *complete* checkpoint (None if there is none).

        The Trainer writes ``trainer_state.json`` last, so a run killed while saving leaves
        a ``checkpoint-N`` without it; transformers' ``get_last_checkpoint`` would pick that
        one and resuming would fail.
        """
        ckpt = out / CHECKPOINT_DIR
        done = [
            d
            for d in ckpt.glob("checkpoint-*")
            if d.name.split("-", 1)[1].isdigit() and (d / "trainer_state.json").is_file()
        ]
        return str(max(done, key=lambda d: int(d.name.split("-", 1)[1]))) if done else None

    def _training_arguments(self, out: Path, n_rows: int) -> Any:
        from transformers import TrainingArguments

        cfg = self.config
        cuda = cuda_available()
        return TrainingArguments(
            output_dir=str(out / CHECKPOINT_DIR),
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            optim=cfg.optim,
            num_train_epochs=cfg.num_epochs,
            max_steps=cfg.max_steps,
            warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type="cosine",
            weight_decay=0.0,
            logging_steps=cfg.logging_steps,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=2,
            save_only_model=False,
            eval_strategy="steps" if cfg.eval_steps else "no",
            eval_steps=cfg.eval_steps or None,
            load_best_model_at_end=bool(cfg.eval_steps and cfg.load_best_model_at_end),
            metric_for_best_model="eval_loss" if cfg.eval_steps else None,
            greater_is_better=False if cfg.eval_steps else None,
            report_to="none",
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=self.precision == "bf16",
            fp16=self.precision == "fp16",
            use_cpu=not cuda,
            ddp_backend="gloo" if not cuda and _world_size() > 1 else None,
            ddp_find_unused_parameters=False,
            remove_unused_columns=False,
            dataloader_pin_memory=cuda,
            disable_tqdm=not cfg.progress,
            activation_checkpointing=cfg.gradient_checkpointing,
            activation_checkpointing_kwargs={"use_reentrant": False},
        )

    def train(self, data: Any, *, eval_data: Any = None) -> TrainResult:
        """Fine-tune on ``data`` and save the adapter, tokenizer, config, metrics and logs.

        Args:
            data: A file, directory, list of files/rows, ``datasets.Dataset`` or
                ``Retriever`` (see :func:`phi3industry.tuning.data.load_examples`).
            eval_data: Held-out data in the same forms; default: ``eval_fraction`` of
                ``data``.

        Returns:
            The :class:`TrainResult`, with metrics before and after training.

        Raises:
            ConfigError: If ``output_dir`` holds an adapter or an unfinished run's
                checkpoints and neither ``overwrite_output_dir`` nor ``resume`` is set.
            DataFormatError: If the data is missing or has a bad row.
            TargetModulesError: If ``target_modules`` do not match the model.
        """
        from transformers import Trainer

        cfg = self.config
        out = self._check_output_dir()
        if not cuda_available():
            limit_heap_retention()
        examples = data_mod.load_examples(data)
        if eval_data is not None:
            train_ex, eval_ex = examples, data_mod.load_examples(eval_data)
        else:
            train_ex, eval_ex = data_mod.split_examples(examples, cfg.eval_fraction, cfg.seed)
        tokenizer = self.tokenizer
        rows, collator = data_mod.build_rows(
            train_ex,
            tokenizer,
            max_length=cfg.max_length,
            packing=cfg.packing,
            completion_only_loss=cfg.completion_only_loss,
            seed=cfg.seed,
        )
        eval_rows: list[dict[str, list[int]]] = []
        if eval_ex:
            eval_rows, _ = data_mod.build_rows(
                eval_ex[:_MAX_EVAL_EXAMPLES],
                tokenizer,
                max_length=cfg.max_length,
                packing=False,
                completion_only_loss=cfg.completion_only_loss,
            )
        watch_rows: list[dict[str, list[int]]] = []
        if cfg.eval_steps:
            if not eval_ex:
                raise ConfigError(
                    f"eval_steps={cfg.eval_steps} needs held-out data, and there is none: set "
                    "eval_fraction > 0 (with at least 2 examples) or pass eval_data."
                )
            # Batched like the training rows, so that the training collator serves both.
            watch_rows, _ = data_mod.build_rows(
                eval_ex[:_MAX_EVAL_EXAMPLES],
                tokenizer,
                max_length=cfg.max_length,
                packing=cfg.packing,
                completion_only_loss=cfg.completion_only_loss,
                seed=cfg.seed,
            )
        self.domain_terms = lm_metrics.mine_domain_terms([e.plain_text() for e in train_ex])
        # Bounded so that the before/after evaluation stays a small fraction of a CPU run.
        eval_texts = [e.plain_text()[:_MAX_EVAL_CHARS] for e in eval_ex[:_MAX_EVAL_EXAMPLES]]

        model = self.model
        if not cuda_available():  # loaded under the default; train under this run's threshold
            limit_heap_retention(self._heap_threshold(model))
        trainable, total = count_parameters(model)
        # Created only now: bad data or a bad model leaves no empty output_dir behind.
        self._prepare_output_dir(out)
        counting = CountingCollator(collator)
        loss_func = self._chunked_loss(model)
        trainer = Trainer(
            model=model,
            args=self._training_arguments(out, len(rows)),
            data_collator=counting,
            train_dataset=data_mod.rows_to_dataset(rows),
            eval_dataset=data_mod.rows_to_dataset(held_out_rows(watch_rows))
            if watch_rows
            else None,
            processing_class=tokenizer,
            callbacks=training_callbacks(
                out / (LOG_FILE + "l"), early_stopping_patience=cfg.early_stopping_patience
            ),
            compute_loss_func=loss_func,
        )
        is_main = trainer.is_world_process_zero()
        before = self._measure(eval_rows, eval_texts, "before") if is_main else {}

        resume_from = self._last_checkpoint(out) if cfg.resume else None
        if cfg.resume and resume_from is None:
            warnings.warn(
                f"resume=True but {out / CHECKPOINT_DIR} holds no checkpoint; training from "
                "the start.",
                stacklevel=2,
            )
        model.config.use_cache = False
        restore_4bit_training_layout(model)
        hook = counting.attach(model)
        start = time.perf_counter()
        try:
            with loss_func.attach() if loss_func else contextlib.nullcontext(), quiet_peft():
                output = trainer.train(resume_from_checkpoint=resume_from)
        finally:
            hook.remove()
        runtime = time.perf_counter() - start
        model.config.use_cache = True
        model.eval()

        result = TrainResult(
            output_dir=out,
            global_step=int(output.global_step),
            train_loss=float(output.training_loss),
            trainable_params=trainable,
            total_params=total,
            target_modules=self.target_modules,
            train_tokens=sum(len(r["input_ids"]) for r in rows),
            tokens_per_second=counting.tokens / runtime if runtime else 0.0,
            train_runtime=runtime,
            log_history=list(trainer.state.log_history),
        )
        if cfg.eval_steps and trainer.state.best_metric is not None:
            result.best_eval_loss = float(trainer.state.best_metric)
            result.best_step = trainer.state.best_global_step
            result.stopped_early = 0 < output.global_step < trainer.state.max_steps
        if is_main:
            result.metrics_before = before
            result.metrics_after = self._measure(eval_rows, eval_texts, "after")
            self._save(out, trainer, result)
        return result

    def _heap_threshold(self, model: Any) -> int:
        """The mmap threshold glibc gets for this run (see :func:`training_threshold`)."""
        cfg = self.config
        text_config = model.config.get_text_config()
        return training_threshold(
            cfg.batch_size,
            cfg.max_length,
            int(getattr(text_config, "hidden_size", 0) or 0),
            save_memory=cfg.method == "qlora",
            bytes_per=4 if self.precision == "fp32" else 2,
        )

    def _chunked_loss(self, model: Any) -> ChunkedCausalLMLoss | None:
        """The chunked loss for ``model`` if configured and supported, else None."""
        if not self.config.chunked_loss:
            return None
        try:
            return ChunkedCausalLMLoss(model)
        except ValueError as exc:
            logger.info("chunked_loss off: %s; using the model's own loss", exc)
            return None

    def _measure(
        self, eval_rows: list[dict[str, list[int]]], eval_texts: list[str], when: str
    ) -> dict[str, float]:
        """Held-out perplexity, domain-term log-prob and general-text perplexity.

        Args:
            eval_rows: Tokenized held-out rows.
            eval_texts: Held-out plain texts (for the domain-term score).
            when: "before" or "after" (training), for the progress bar.
        """
        from tqdm.auto import tqdm

        model, tokenizer = self.model, self.tokenizer
        was_training = model.training
        model.eval()
        out: dict[str, float] = {}
        pad = int(tokenizer.pad_token_id or 0)
        bar = tqdm(
            total=3,
            desc=f"metrics {when} training",
            unit="metric",
            disable=not self.config.progress,
        )
        if eval_rows:
            ppl, n = lm_metrics.perplexity_of_rows(
                model, eval_rows, batch_size=self.config.batch_size, pad_id=pad
            )
            out["eval_perplexity"] = ppl
            out["eval_tokens"] = n
        bar.update()
        if eval_texts and self.domain_terms:
            scores = lm_metrics.text_metrics(
                model,
                tokenizer,
                eval_texts,
                terms=self.domain_terms,
                max_length=self.config.max_length,
                batch_size=self.config.batch_size,
            )
            for key in ("domain_term_logprob", "domain_term_perplexity"):
                if key in scores:
                    out[key] = scores[key]
        bar.update()
        out["general_perplexity"] = lm_metrics.general_perplexity(
            model, tokenizer, max_length=self.config.max_length
        )
        bar.update()
        bar.close()
        if was_training:
            model.train()
        return out

    def _save(self, out: Path, trainer: Any, result: TrainResult) -> None:
        self.model.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        self.model.generation_config.save_pretrained(str(out))
        self.config.to_yaml(out / CONFIG_FILE)
        (out / TERMS_FILE).write_text(json.dumps(self.domain_terms, indent=1))
        (out / LOG_FILE).write_text(json.dumps(result.log_history, indent=1))
        plot_loss_curve(result.log_history, out / CURVE_FILE)
        summary = {k: v for k, v in result.to_dict().items() if k != "log_history"}
        (out / METRICS_FILE).write_text(json.dumps(summary, indent=2, default=_json_default))

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, texts: str | list[str]) -> dict[str, float]:
        """Score held-out texts with the current model (the adapter once trained).

        Args:
            texts: One text or several (raw domain text).

        Returns:
            ``perplexity`` and ``num_tokens`` on ``texts``; ``domain_term_logprob`` (mean
            log-prob, nats/token, of the domain terms' tokens where they occur: higher is
            better) and ``domain_term_perplexity`` when terms occur; ``general_perplexity``
            on the bundled general-English sample (forgetting).
        """
        if isinstance(texts, str):
            texts = [texts]
        terms = self.domain_terms or lm_metrics.mine_domain_terms(texts)
        model = self.model
        model.eval()
        out = lm_metrics.text_metrics(
            model,
            self.tokenizer,
            texts,
            terms=terms,
            max_length=self.config.max_length,
            batch_size=self.config.batch_size,
        )
        out["general_perplexity"] = lm_metrics.general_perplexity(
            model, self.tokenizer, max_length=self.config.max_length
        )
        return out

    # -- loading, merging, export ---------------------------------------------------------

    @staticmethod
    def load(adapter_dir: str | Path, *, merge: bool = False, dtype: Any = None) -> Any:
        """Load a saved adapter onto its unquantized base (see :func:`load_adapted_model`)."""
        return load_adapted_model(adapter_dir, merge=merge, dtype=dtype)

    def merge(self, out_dir: str | Path, *, dtype: str = "bfloat16") -> Path:
        """Write base + adapter merged as a 16-bit safetensors model (with the tokenizer).

        For QLoRA the adapter is merged into the original 16-bit base weights reloaded
        unquantized, not into dequantized 4-bit ones.

        Args:
            out_dir: Directory to write.
            dtype: ``"bfloat16"`` (default), ``"float16"`` or ``"float32"``.

        Returns:
            ``out_dir``.
        """
        return merge_adapter(self.config.output_dir, out_dir, dtype=dtype)

    def export_gguf(self, out_file: str | Path, *, quantization: str = "f16") -> Path:
        """Merge the adapter and write the model as a GGUF file (llama.cpp / Ollama).

        Args:
            out_file: The ``.gguf`` file to write.
            quantization: ``"f32"``, ``"f16"``, ``"q8_0"``, or ``"q4_k_m"``/``"q5_k_m"``
                (quantized by llama.cpp, see :func:`~phi3industry.tuning.gguf.quantize_gguf`).

        Returns:
            ``out_file``.
        """
        return export_gguf(self.config.output_dir, out_file, quantization=quantization)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


__all__ = ["TrainResult", "Tuner"]
