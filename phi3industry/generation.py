"""Text generators: a local transformers model (with LoRA adapters) or an OpenAI endpoint.

Both generators share one small interface used by :class:`~phi3industry.pipeline.Pipeline` and
the server: ``generate(messages) -> Generation``, ``generate_batch([messages, ...])``,
``stream(messages) -> Iterator[GenerationChunk]``, ``count_tokens(text)``,
``context_window`` and ``adapter_names``. :class:`LocalChatModel` wraps a generator as a
LangChain chat model.

Example:
    >>> from phi3industry.generation import LocalGenerator
    >>> gen = LocalGenerator.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
    >>> msgs = [{"role": "user", "content": "Say hi."}]
    >>> gen.generate(msgs, max_new_tokens=8).text  # doctest: +SKIP
    'Hi! How can I help you today?'
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry.errors import ConfigError, DependencyMissingError, GenerationError

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

Message = Mapping[str, str]
BASE_ADAPTER = "base"
_ROLES = ("system", "user", "assistant")
_SYSTEM_PROBE = "\x1fphi3industry-system-probe\x1f"


class GenerationTimeoutError(GenerationError, TimeoutError):
    """Generation did not finish (or could not start) before its deadline."""


@dataclass
class Generation:
    """One finished generation.

    Attributes:
        text: The generated text, without the end-of-turn token or the stop string.
        finish_reason: ``"stop"`` (end of turn or stop string) or ``"length"`` (max tokens).
        prompt_tokens: Tokens in the prompt.
        completion_tokens: Tokens generated (up to the stop).
        first_token_s: Seconds from the call to the first generated token (None if none).
        total_s: Seconds the call took.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float | None = None
    total_s: float = 0.0

    @property
    def usage(self) -> dict[str, int]:
        """Token usage in the OpenAI shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the generation as a plain dict."""
        return asdict(self)


@dataclass
class GenerationChunk:
    """A piece of a streamed generation; the last chunk carries the whole :class:`Generation`."""

    text: str
    generation: Generation | None = field(default=None)


def _check_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise GenerationError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}."
        )
    out = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, Mapping) else None
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if role not in _ROLES or not isinstance(content, str):
            raise GenerationError(
                f"messages[{i}] must have role in {_ROLES} and string content, got {msg!r}."
            )
        out.append({"role": str(role), "content": content})
    return out


# Sampling temperatures below this decode greedily: logits divided by a temperature like
# 1e-300 overflow to inf, and the sampler then fails on NaN probabilities.
_GREEDY_BELOW = 1e-5


def _check_params(max_new_tokens: int, temperature: float, top_p: float) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}.")
    if not 0.0 <= temperature <= 2.0:
        raise ConfigError(f"temperature must be between 0 and 2, got {temperature!r}.")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}.")


def _find_stop(text: str, stop: Sequence[str]) -> int:
    """Return the index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else -1


def _held_back(text: str, stop: Sequence[str]) -> int:
    """Characters at the end of ``text`` that could start a stop string (not safe to emit)."""
    best = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


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


class _Interrupt:
    """A transformers StoppingCriteria: stops on deadline, on cancel, or on user stop strings."""

    def __init__(
        self,
        tokenizer: Any,
        prompt_len: int,
        stop: Sequence[str],
        deadline: float | None,
        cancel: threading.Event,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.stop = list(stop)
        self.deadline = deadline
        self.cancel = cancel
        self.timed_out = False
        # A stop string of n characters spans at most n + a few tokens.
        self.tail = max((len(s) for s in self.stop), default=0) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        batch = input_ids.shape[0]
        if self.cancel.is_set():
            return torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            return torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        if self.stop:
            tails = self.tokenizer.batch_decode(
                input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.tail) :],
                skip_special_tokens=True,
            )
            for row, text in enumerate(tails):
                if _find_stop(text, self.stop) >= 0:
                    done[row] = True
        return done


def _first_token_timer(start: float, out: dict[str, float]) -> Any:
    """A transformers streamer that records when the first generated token arrives."""
    from transformers.generation.streamers import BaseStreamer

    class _Timer(BaseStreamer):  # type: ignore[misc]
        def __init__(self) -> None:
            self.calls = 0

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call hands over the prompt
                out["first"] = time.perf_counter() - start

        def end(self) -> None:
            pass

    return _Timer()


class LocalGenerator:
    """A local transformers causal LM, with any number of LoRA adapters switchable by name.

    Generation is serialized by a lock (a model and its active adapter are shared state), so
    one generator can be used from many threads: calls queue.

    Args:
        model: A loaded causal LM (``PreTrainedModel``, or a ``PeftModel``).
        tokenizer: Its tokenizer (with a chat template and a pad token).
        adapters: Adapters to load now, ``{name: directory}``.
        name: How to call the base model (in errors and ``/v1/models``).

    Example:
        >>> gen = LocalGenerator.from_pretrained(
        ...     "tiny-phi3", adapters={"kb": "out/adapter"}
        ... )  # doctest: +SKIP
        >>> msgs = [{"role": "user", "content": "Hi"}]
        >>> gen.generate(msgs, adapter="kb", max_new_tokens=4)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or str(getattr(model.config, "_name_or_path", "") or "local-model")
        self._lock = threading.Lock()
        self._adapters: dict[str, str] = {}
        self._system_ok: bool | None = None
        try:
            from phi3industry.models import stop_token_ids

            ids = stop_token_ids(tokenizer)
        except ImportError:  # pragma: no cover - models.py is part of the package
            ids = [tokenizer.eos_token_id]
        self.stop_ids: list[int] = sorted({int(i) for i in ids if i is not None})
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.stop_ids[0]
        for adapter_name, path in (adapters or {}).items():
            self.load_adapter(path, adapter_name)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        adapters: Mapping[str, str | os.PathLike[str]] | None = None,
        dtype: str | None = None,
        device: str | None = None,
    ) -> LocalGenerator:
        """Load a model by short name, path, ``.gguf`` or hub id, plus optional adapters.

        Args:
            name_or_path: Anything :func:`phi3industry.models.resolve_model` accepts.
            adapters: ``{name: adapter_dir}`` to load on the base.
            dtype: ``"auto"``/None (checkpoint dtype; fp32 on CPU), ``"fp32"``, ``"bf16"``,
                ``"fp16"``.
            device: ``"cpu"``, ``"cuda"``...; default: CUDA if available, else CPU.

        Returns:
            The generator.
        """
        import torch

        from phi3industry.models import load_model, load_tokenizer

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype in (None, "auto") and device == "cpu":
            dtype = "fp32"  # half precision is slow (or unsupported) on CPU
        model = load_model(name_or_path, dtype=None if dtype == "auto" else dtype)
        model.to(device)  # type: ignore[arg-type]
        tokenizer = load_tokenizer(name_or_path, padding_side="left")
        return cls(model, tokenizer, adapters=adapters, name=str(name_or_path))

    # -- adapters -------------------------------------------------------------------------

    @property
    def adapter_names(self) -> list[str]:
        """Names of the loaded adapters (``"base"`` selects none)."""
        return list(self._adapters)

    def load_adapter(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Load a LoRA adapter directory onto the base model under ``name``.

        Args:
            path: A peft adapter directory (``adapter_config.json`` + safetensors).
            name: Name to select it by (default: the directory name).

        Returns:
            The adapter's name.

        Raises:
            ConfigError: If the name is taken or reserved, or the adapter does not fit the base.
        """
        name = name or parse_adapter_spec(os.fspath(path))[0]
        if name == BASE_ADAPTER or name in self._adapters:
            raise ConfigError(
                f"Adapter name {name!r} is {'reserved' if name == BASE_ADAPTER else 'taken'}; "
                "give it another name ('name=DIR')."
            )
        base = self.model.get_base_model() if hasattr(self.model, "peft_config") else self.model
        check_adapter_compatible(base, os.fspath(path), self.name)
        try:
            from peft import PeftModel
        except ImportError as exc:  # pragma: no cover - peft is a core dependency
            raise DependencyMissingError("Adapters need peft: pip install peft") from exc
        with self._lock:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(os.fspath(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(
                    self.model, os.fspath(path), adapter_name=name
                )
            self.model.eval()
        self._adapters[name] = os.fspath(path)
        return name

    def _activate(self, adapter: str | None) -> Any:
        """Select ``adapter`` (under the lock); return a context manager to generate within."""
        import contextlib

        if adapter in (None, BASE_ADAPTER):
            if hasattr(self.model, "disable_adapter") and self._adapters:
                return self.model.disable_adapter()
            return contextlib.nullcontext()
        if adapter not in self._adapters:
            loaded = ", ".join([BASE_ADAPTER, *self._adapters])
            raise ConfigError(f"Unknown adapter {adapter!r}; loaded: {loaded}.")
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    # -- prompts --------------------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """The model's context window in tokens."""
        cfg = self.model.config
        for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with the model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        """Return the longest prefix of ``text`` that fits in ``max_tokens`` tokens."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return str(self.tokenizer.decode(ids[: max(0, max_tokens)], skip_special_tokens=True))

    def _keeps_system(self) -> bool:
        if self._system_ok is None:
            try:
                probe = self.tokenizer.apply_chat_template(
                    [
                        {"role": "system", "content": _SYSTEM_PROBE},
                        {"role": "user", "content": "x"},
                    ],
                    tokenize=False,
                )
                self._system_ok = _SYSTEM_PROBE in probe
            except Exception:
                self._system_ok = False
        return self._system_ok

    def render(self, messages: Sequence[Message]) -> str:
        """Render messages with the model's own chat template, ready for the assistant turn.

        Templates that drop the system role (Phi-3's) get the system text at the top of the
        first user message instead, so it is never silently lost.
        """
        msgs = _check_messages(messages)
        if not self._keeps_system() and any(m["role"] == "system" for m in msgs):
            system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
            msgs = [m for m in msgs if m["role"] != "system"]
            for m in msgs:
                if m["role"] == "user":
                    m["content"] = f"{system}\n\n{m['content']}"
                    break
            else:
                msgs.insert(0, {"role": "user", "content": system})
        return str(
            self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        )

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the rendered prompt of ``messages`` takes."""
        return self.count_tokens(self.render(messages))

    # -- generation -----------------------------------------------------------------------

    def _generation_config(self, max_new_tokens: int, temperature: float, top_p: float) -> Any:
        from transformers import GenerationConfig

        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.pad_id,
            "use_cache": True,
        }
        if temperature >= _GREEDY_BELOW:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        return GenerationConfig(**kwargs)

    def _encode(self, prompts: list[str]) -> Any:
        enc = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,  # the chat template already has BOS where the model wants it
            padding_side="left",
        )
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _acquire(self, deadline: float | None) -> None:
        timeout = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=timeout):
            raise GenerationTimeoutError(
                "Timed out waiting for the model (other requests are generating)."
            )

    def _finish(
        self, ids: list[int], stop: Sequence[str], max_new_tokens: int
    ) -> tuple[str, str, int]:
        """Cut generated ids at the end of turn / stop string: (text, finish_reason, tokens)."""
        reason = "length"
        for i, tid in enumerate(ids):
            if tid in self.stop_ids:
                ids, reason = ids[:i], "stop"
                break
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        cut = _find_stop(text, stop) if stop else -1
        if cut >= 0:
            text, reason = text[:cut], "stop"
        elif reason == "length" and len(ids) < max_new_tokens:
            reason = "stop"
        return text, reason, len(ids)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Generation:
        """Generate the assistant's reply to ``messages``.

        Args:
            messages: Chat messages (``{"role": "system"|"user"|"assistant", "content": str}``).
            max_new_tokens: Tokens generated at most.
            temperature: 0 for greedy decoding, else the sampling temperature.
            top_p: Nucleus sampling mass (with temperature > 0).
            stop: Strings that end the reply (not included in it).
            adapter: Adapter name, or None / ``"base"`` for the bare base model.
            seed: Seed for sampling.
            deadline: ``time.monotonic()`` value after which generation stops with an error.

        Returns:
            The :class:`Generation`.

        Raises:
            GenerationError: On bad messages, an unknown adapter, a timeout or a model failure.
        """
        return self.generate_batch(
            [messages],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop,
            adapter=adapter,
            seed=seed,
            deadline=deadline,
        )[0]

    def generate_batch(
        self,
        batch: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> list[Generation]:
        """Generate replies for several conversations at once (left-padded batch).

        Args are those of :meth:`generate`, applied to every conversation.

        Returns:
            One :class:`Generation` per conversation, in order.
        """
        _check_params(max_new_tokens, temperature, top_p)
        if not batch:
            return []
        stop = list(stop or [])
        prompts = [self.render(m) for m in batch]
        start = time.perf_counter()
        inputs = self._encode(prompts)
        prompt_len = int(inputs["input_ids"].shape[1])
        cancel = threading.Event()
        interrupt = _Interrupt(self.tokenizer, prompt_len, stop, deadline, cancel)
        from transformers import StoppingCriteriaList

        self._acquire(deadline)
        first: dict[str, float] = {}
        try:
            import torch

            with self._activate(adapter), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                # Streamers only support a batch of one in transformers.
                timer = _first_token_timer(start, first) if len(prompts) == 1 else None
                out = self.model.generate(
                    **inputs,
                    generation_config=self._generation_config(max_new_tokens, temperature, top_p),
                    stopping_criteria=StoppingCriteriaList([interrupt]),
                    streamer=timer,
                )
        except GenerationError:
            raise
        except ConfigError:
            raise
        except Exception as exc:
            raise GenerationError(f"Generation with {self.name!r} failed: {exc}") from exc
        finally:
            self._lock.release()
        if interrupt.timed_out:
            raise GenerationTimeoutError("Generation ran past its deadline.")
        total = time.perf_counter() - start
        mask = inputs["attention_mask"]
        results = []
        for row in range(out.shape[0]):
            ids = out[row, prompt_len:].tolist()
            text, reason, n = self._finish(ids, stop, max_new_tokens)
            results.append(
                Generation(
                    text=text,
                    finish_reason=reason,
                    prompt_tokens=int(mask[row].sum()),
                    completion_tokens=n,
                    first_token_s=first.get("first"),
                    total_s=total,
                )
            )
        return results

    def _next_tokens(
        self,
        inputs: Mapping[str, Any],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        deadline: float | None,
    ) -> Iterator[int]:
        """Decode one sequence token by token with the KV cache, in the caller's thread.

        ``model.generate`` cannot yield, and running it in a worker thread costs about 8 % of
        decode speed on CPU (measured in bench/bench_pipeline.py), so streaming has its own
        loop: greedy, or temperature / top-p sampling as ``generate`` does it.
        """
        import torch
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        warpers = LogitsProcessorList()
        if temperature >= _GREEDY_BELOW:
            warpers.append(TemperatureLogitsWarper(temperature))
            if top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p))
        seen = inputs["input_ids"]
        step_ids, mask, past = seen, inputs["attention_mask"], None
        for _ in range(max_new_tokens):
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationTimeoutError("Generation ran past its deadline.")
            with torch.inference_mode():
                out = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=1,
                )
                past, scores = out.past_key_values, out.logits[:, -1, :].float()
                if temperature >= _GREEDY_BELOW:
                    probs = torch.softmax(warpers(seen, scores), dim=-1)
                    token = torch.multinomial(probs, num_samples=1)
                else:
                    token = scores.argmax(dim=-1, keepdim=True)
                seen = torch.cat([seen, token], dim=1)
                mask = torch.cat([mask, mask.new_ones((1, 1))], dim=1)
            step_ids = token
            tid = int(token)
            yield tid
            if tid in self.stop_ids:
                return

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Iterator[GenerationChunk]:
        """Stream the reply as text pieces; the last chunk carries the full :class:`Generation`.

        Args are those of :meth:`generate`. Closing the iterator early stops generation. The
        model runs in the caller's thread, holding the generator's lock until the stream ends.

        Yields:
            :class:`GenerationChunk` objects.
        """
        _check_params(max_new_tokens, temperature, top_p)
        stop = list(stop or [])
        start = time.perf_counter()
        inputs = self._encode([self.render(messages)])
        prompt_len = int(inputs["input_ids"].shape[1])
        self._acquire(deadline)
        try:
            ids: list[int] = []
            emitted = 0
            first: float | None = None
            reason = "length"
            text = ""
            with self._activate(adapter):
                if seed is not None:
                    import torch

                    torch.manual_seed(seed)
                tokens = self._next_tokens(inputs, max_new_tokens, temperature, top_p, deadline)
                for tid in _guarded(tokens, self.name):
                    if first is None:
                        first = time.perf_counter() - start
                    if tid in self.stop_ids:
                        reason = "stop"
                        break
                    ids.append(tid)
                    text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
                    cut = _find_stop(text, stop) if stop else -1
                    if cut >= 0:
                        text, reason = text[:cut], "stop"
                        break
                    safe = len(text) - (_held_back(text, stop) if stop else 0)
                    if text.endswith("\ufffd"):  # half of a multi-byte character: wait
                        safe = min(safe, len(text) - 1)
                    if safe > emitted:
                        yield GenerationChunk(text[emitted:safe])
                        emitted = safe
            if reason == "length" and len(ids) < max_new_tokens:
                reason = "stop"
            final = Generation(
                text=text,
                finish_reason=reason,
                prompt_tokens=prompt_len,
                completion_tokens=len(ids),
                first_token_s=first,
                total_s=time.perf_counter() - start,
            )
            yield GenerationChunk(text[emitted:], final)
        finally:
            self._lock.release()


def _guarded(tokens: Iterator[int], name: str) -> Iterator[int]:
    """Re-raise a model failure while decoding as a :class:`GenerationError`."""
    while True:
        try:
            tid = next(tokens)
        except StopIteration:
            return
        except (GenerationError, ConfigError):
            raise
        except Exception as exc:
            raise GenerationError(f"Generation with {name!r} failed: {exc}") from exc
        yield tid


class OpenAIGenerator:
    """Generate with any OpenAI-compatible endpoint: vLLM, llama.cpp, Azure OpenAI, our server.

    Unreachable or overloaded endpoints are retried with exponential backoff; then a
    :class:`GenerationError` names the URL. An adapter name is sent as the model name (vLLM
    serves LoRA adapters as models).

    Args:
        base_url: Endpoint root, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name at the endpoint.
        api_key: Key sent as ``Authorization: Bearer`` (default: ``$OPENAI_API_KEY``).
        retries: Retries after the first attempt on connection errors, 429 and 5xx.
        backoff: First retry delay in seconds; doubles each retry (with jitter).
        timeout: Seconds per request.
        tokenizer: Optional tokenizer for exact token counts (else ~4 characters a token).
        context_window: The served model's context window.
        adapters: Adapter (model) names the endpoint serves.

    Example:
        >>> gen = OpenAIGenerator(
        ...     "http://127.0.0.1:8000/v1", model="phi-3-mini-4k-instruct"
        ... )  # doctest: +SKIP
        >>> gen.generate([{"role": "user", "content": "Hi"}]).text  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 120.0,
        tokenizer: Any = None,
        context_window: int = 4096,
        adapters: Sequence[str] = (),
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise DependencyMissingError(
                "The OpenAI-compatible generator needs the openai client: "
                "pip install 'phi3industry[openai]'"
            ) from exc
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.retries = retries
        self.backoff = backoff
        self.tokenizer = tokenizer
        self._context_window = context_window
        self._adapters = list(adapters)
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=0,  # we retry ourselves, to name the URL in the final error
            timeout=timeout,
        )

    @property
    def adapter_names(self) -> list[str]:
        """Adapter (model) names the endpoint serves, as configured."""
        return list(self._adapters)

    @property
    def context_window(self) -> int:
        """The served model's context window in tokens (as configured)."""
        return self._context_window

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: exact with a tokenizer, else about 4 characters a token."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text) // 4 + 1

    def truncate(self, text: str, max_tokens: int) -> str:
        """Return a prefix of ``text`` that fits in ``max_tokens`` tokens."""
        if self.tokenizer is not None:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return str(self.tokenizer.decode(ids[: max(0, max_tokens)], skip_special_tokens=True))
        return text[: max(0, max_tokens) * 4]

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Approximate prompt tokens of ``messages`` (content plus a few per message)."""
        return sum(self.count_tokens(m["content"]) + 4 for m in _check_messages(messages))

    def _request(self, **kwargs: Any) -> Any:
        o = self._openai
        retryable = (o.APIConnectionError, o.RateLimitError, o.InternalServerError)
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._client.chat.completions.create(**kwargs)
            except retryable as exc:
                if attempt + 1 >= attempts:
                    raise GenerationError(
                        f"Cannot get a completion from the OpenAI-compatible endpoint at "
                        f"{self.base_url} after {attempts} attempt(s): "
                        f"{type(exc).__name__}: {exc}. Check that the server is running and "
                        "that base_url is right."
                    ) from exc
                delay = self.backoff * (2**attempt)
                time.sleep(delay * (0.5 + random.random()))  # jitter spreads out the retries
            except o.APIStatusError as exc:
                raise GenerationError(
                    f"The endpoint at {self.base_url} refused the request "
                    f"(HTTP {exc.status_code}): {exc.message}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _kwargs(
        self,
        messages: Sequence[Message],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: Sequence[str] | None,
        adapter: str | None,
        seed: int | None,
    ) -> dict[str, Any]:
        _check_params(max_new_tokens, temperature, top_p)
        kwargs: dict[str, Any] = {
            "model": self.name if adapter in (None, BASE_ADAPTER) else adapter,
            "messages": _check_messages(messages),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if stop:
            kwargs["stop"] = list(stop)
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Generation:
        """Generate the reply to ``messages`` (see :meth:`LocalGenerator.generate`)."""
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        resp = self._request(**kwargs)
        choice = resp.choices[0]
        usage = resp.usage
        text = choice.message.content or ""
        return Generation(
            text=text,
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=usage.prompt_tokens if usage else self.prompt_tokens(kwargs["messages"]),
            completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
            first_token_s=None,
            total_s=time.perf_counter() - start,
        )

    def generate_batch(self, batch: Sequence[Sequence[Message]], **kwargs: Any) -> list[Generation]:
        """Generate replies one request at a time (the endpoint batches on its side)."""
        return [self.generate(messages, **kwargs) for messages in batch]

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Iterator[GenerationChunk]:
        """Stream the reply (see :meth:`LocalGenerator.stream`)."""
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        events = self._request(**kwargs, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        first: float | None = None
        reason = "stop"
        usage = None
        try:
            for event in events:
                if getattr(event, "usage", None):
                    usage = event.usage
                for choice in event.choices or []:
                    delta = choice.delta.content or ""
                    if delta:
                        if first is None:
                            first = time.perf_counter() - start
                        parts.append(delta)
                        yield GenerationChunk(delta)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        except self._openai.APIError as exc:
            raise GenerationError(f"Stream from {self.base_url} failed: {exc}") from exc
        text = "".join(parts)
        final = Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=usage.prompt_tokens if usage else self.prompt_tokens(kwargs["messages"]),
            completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
            first_token_s=first,
            total_s=time.perf_counter() - start,
        )
        yield GenerationChunk("", final)


def _lc_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant", "user": "user"}
    out = []
    for m in messages:
        role = roles.get(m.type)
        if role is None:
            raise GenerationError(f"Unsupported message type {m.type!r}; use system/human/ai.")
        content = m.content if isinstance(m.content, str) else m.text
        out.append({"role": role, "content": str(content)})
    return out


def _chat_model_class() -> type:
    try:
        from langchain_core.language_models.chat_models import BaseChatModel
        from langchain_core.messages import AIMessage, AIMessageChunk
        from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
        from pydantic import ConfigDict
    except ImportError as exc:  # pragma: no cover - langchain-core is a core dependency
        raise DependencyMissingError("LocalChatModel needs langchain-core.") from exc

    class LocalChatModel(BaseChatModel):  # type: ignore[misc]
        """A LangChain chat model backed by a phi3industry generator (local or endpoint).

        Example:
            >>> from phi3industry.generation import LocalChatModel, LocalGenerator
            >>> gen = LocalGenerator.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
            >>> chat = LocalChatModel(generator=gen)  # doctest: +SKIP
            >>> chat.invoke("What is 2+2?", max_tokens=16).content  # doctest: +SKIP
        """

        model_config = ConfigDict(arbitrary_types_allowed=True)

        generator: Any
        max_tokens: int = 256
        temperature: float = 0.0
        top_p: float = 1.0
        adapter: str | None = None
        stop: list[str] | None = None
        seed: int | None = None

        @property
        def _llm_type(self) -> str:
            return "phi3industry-local"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {
                "model": getattr(self.generator, "name", "?"),
                "adapter": self.adapter,
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
            }

        def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
            stops = [*(self.stop or []), *(stop or []), *(kwargs.pop("stop", None) or [])]
            params = {
                "max_new_tokens": int(kwargs.pop("max_tokens", self.max_tokens)),
                "temperature": float(kwargs.pop("temperature", self.temperature)),
                "top_p": float(kwargs.pop("top_p", self.top_p)),
                "adapter": kwargs.pop("adapter", self.adapter),
                "seed": kwargs.pop("seed", self.seed),
                "stop": stops or None,
            }
            return params

        @staticmethod
        def _usage(gen: Generation) -> dict[str, int]:
            return {
                "input_tokens": gen.prompt_tokens,
                "output_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            }

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            gen = self.generator.generate(_lc_messages(messages), **self._params(stop, kwargs))
            message = AIMessage(
                content=gen.text,
                usage_metadata=self._usage(gen),  # type: ignore[arg-type]
                response_metadata={
                    "finish_reason": gen.finish_reason,
                    "model_name": getattr(self.generator, "name", None),
                },
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _stream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Iterator[ChatGenerationChunk]:
            params = self._params(stop, kwargs)
            for piece in self.generator.stream(_lc_messages(messages), **params):
                if piece.generation is None:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece.text))
                else:
                    gen = piece.generation
                    chunk = ChatGenerationChunk(
                        message=AIMessageChunk(
                            content=piece.text,
                            usage_metadata=self._usage(gen),  # type: ignore[arg-type]
                            response_metadata={"finish_reason": gen.finish_reason},
                        )
                    )
                if run_manager is not None and piece.text:
                    run_manager.on_llm_new_token(piece.text, chunk=chunk)
                yield chunk

    return LocalChatModel


def __getattr__(name: str) -> Any:
    # Built on first use so that importing this module does not import langchain.
    if name == "LocalChatModel":
        cls = _chat_model_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASE_ADAPTER",
    "Generation",
    "GenerationChunk",
    "GenerationTimeoutError",
    "LocalGenerator",
    "OpenAIGenerator",
    "check_adapter_compatible",
    "parse_adapter_spec",
]
