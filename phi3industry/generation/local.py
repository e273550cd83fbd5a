"""A local transformers model with LoRA adapters.

Batched generation through ``model.generate``, and a streaming KV-cache decode loop that runs
in the caller's thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from phi3industry.errors import (
    ConfigError,
    GenerationError,
    GenerationTimeoutError,
)
from phi3industry.generation.adapters import check_adapter_compatible, parse_adapter_spec
from phi3industry.generation.base import (
    BASE_ADAPTER,
    GREEDY_BELOW,
    SYSTEM_PROBE,
    Generation,
    GenerationChunk,
    Message,
    check_messages,
    check_params,
    find_stop,
    held_back,
)
from phi3industry.models import load_model, load_tokenizer, quiet_peft, stop_token_ids


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
                if find_stop(text, self.stop) >= 0:
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
        ids = stop_token_ids(tokenizer)
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

    @property
    def adapter_paths(self) -> dict[str, str]:
        """Adapter name -> the directory it was loaded from."""
        return dict(self._adapters)

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
        with self._lock, quiet_peft():
            from peft import PeftModel

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
                        {"role": "system", "content": SYSTEM_PROBE},
                        {"role": "user", "content": "x"},
                    ],
                    tokenize=False,
                )
                self._system_ok = SYSTEM_PROBE in probe
            except Exception:
                self._system_ok = False
        return self._system_ok

    def render(self, messages: Sequence[Message]) -> str:
        """Render messages with the model's own chat template, ready for the assistant turn.

        Templates that drop the system role (Phi-3's) get the system text at the top of the
        first user message instead, so it is never silently lost.
        """
        msgs = check_messages(messages)
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
        if temperature >= GREEDY_BELOW:
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
        cut = find_stop(text, stop) if stop else -1
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
        check_params(max_new_tokens, temperature, top_p)
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
        if temperature >= GREEDY_BELOW:
            warpers.append(TemperatureLogitsWarper(temperature))
            if top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p))
        seen = inputs["input_ids"]
        step_ids, mask, past = seen, inputs["attention_mask"], None
        cache_kwarg = _cache_kwarg(self.model)
        for _ in range(max_new_tokens):
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationTimeoutError("Generation ran past its deadline.")
            with torch.inference_mode():
                out = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    use_cache=True,
                    logits_to_keep=1,
                    **{cache_kwarg: past},
                )
                past, scores = out.get(cache_kwarg), out.logits[:, -1, :].float()
                if temperature >= GREEDY_BELOW:
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
        check_params(max_new_tokens, temperature, top_p)
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
                    cut = find_stop(text, stop) if stop else -1
                    if cut >= 0:
                        text, reason = text[:cut], "stop"
                        break
                    safe = len(text) - (held_back(text, stop) if stop else 0)
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


def _cache_kwarg(model: Any) -> str:
    """The KV cache's name in ``model``'s forward and outputs.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns until
    5.40); earlier 5.x releases know only ``past_key_values``.
    """
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in names else "past_key_values"
