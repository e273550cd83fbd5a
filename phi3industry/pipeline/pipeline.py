"""The Pipeline: retrieval + (fine-tuned) generation behind a LangChain Runnable, with citations.

A question goes through one LCEL chain, whether it is invoked, batched or streamed:
``start`` (check the input) -> ``retrieve`` -> ``pack`` (merge overlapping hits, fit them into
the context window in the model's own tokens) -> ``prompt`` (the model's chat template with
numbered sources, delimited as data) -> ``generate`` (one :class:`Answer`, or a stream of
:class:`AnswerChunk` that adds up to it, with the ``[n]`` citations parsed). The state passed
between the steps is a :class:`ChainState`.

One object answers under every strategy: ``base`` (model only), ``rag`` (retrieval),
``finetuned`` (LoRA adapter) and ``rag+finetuned`` (both), so they can be compared.

Example:
    >>> from phi3industry import Pipeline, PipelineConfig
    >>> pipe = Pipeline(retriever="kb-index", model="smollm2-135m-instruct")  # doctest: +SKIP
    >>> answer = pipe.invoke("How long is the warranty?")  # doctest: +SKIP
    >>> print(answer.format())  # doctest: +SKIP
    >>> for chunk in pipe.stream("How long is the warranty?"):  # doctest: +SKIP
    ...     print(chunk.text, end="")
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import ensure_config, merge_configs, run_in_executor

from phi3industry.errors import ConfigError, QueryError
from phi3industry.generation.adapters import parse_adapter_spec
from phi3industry.generation.base import (
    BASE_ADAPTER,
    AsyncGenerator,
    Generation,
    Generator,
    check_params,
)
from phi3industry.generation.endpoint import OpenAIGenerator
from phi3industry.generation.local import LocalGenerator
from phi3industry.models import load_tokenizer
from phi3industry.pipeline.answer import Answer, AnswerChunk
from phi3industry.pipeline.attribution import Attributor, Claim, grounded_share
from phi3industry.pipeline.config import ANSWER_MODES, PipelineConfig, resolve_answer_mode
from phi3industry.pipeline.prompt import (
    CONDENSE_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    format_source,
    pack_sources,
    parse_citations,
    question_message,
)
from phi3industry.retrieval.index import Retriever
from phi3industry.retrieval.search import Hit
from phi3industry.strategies import PIPELINE_STRATEGIES, STRATEGIES

_PROMPT_MARGIN = 8  # tokens of slack for template differences between count and render
_HISTORY_ROLES = ("user", "assistant", "system")
_INPUT_KEYS = (
    "question",
    "input",
    "history",
    "strategy",
    "adapter",
    "answer_mode",
    "system",
    "k",
)
_DEADLINE = "phi3industry_deadline"  # where a run's deadline rides in RunnableConfig


@dataclass
class Sampling:
    """How one answer is generated (the config's settings, or the request's)."""

    max_new_tokens: int
    temperature: float
    top_p: float
    stop: list[str] | None
    seed: int | None


@dataclass
class ChainState:
    """What the chain's steps hand each other for one question.

    Attributes:
        question: The question, stripped.
        strategy: ``base``, ``rag``, ``finetuned`` or ``rag+finetuned``.
        adapter: The adapter that generates (None: the base model).
        history: Earlier user/assistant turns kept in the prompt.
        system: A system message given with the input (replaces the configured one).
        sampling: Generation settings.
        k: Hits retrieved.
        start: ``time.perf_counter()`` when the question arrived.
        timings: Seconds per step so far.
        fixed_tokens: Prompt tokens without any source.
        query: The (condensed) query sent to the retriever.
        hits: What the retriever returned.
        sources: What the model is shown (merged, packed, maybe trimmed).
        messages: The chat messages given to the model.
        deadline: ``time.monotonic()`` after which generation stops with an error.
        first_token: Seconds from the start to the first streamed token.
        answer_mode: ``generate`` or ``extract`` (resolved: never ``auto``).
    """

    question: str
    strategy: str
    adapter: str | None
    history: list[dict[str, str]]
    system: str | None
    sampling: Sampling
    k: int
    start: float
    timings: dict[str, float] = field(default_factory=dict)
    fixed_tokens: int = 0
    query: str | None = None
    hits: list[Hit] = field(default_factory=list)
    sources: list[Hit] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    deadline: float | None = None
    first_token: float | None = None
    answer_mode: str = "generate"

    @property
    def retrieves(self) -> bool:
        """Whether the strategy shows retrieved sources."""
        return STRATEGIES[self.strategy].retrieves

    def generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the generator's ``generate``/``stream``."""
        return {
            **dataclasses.asdict(self.sampling),
            "adapter": self.adapter or BASE_ADAPTER,
            "deadline": self.deadline,
        }


class _Generate(Runnable[ChainState, Answer]):
    """The chain's last step: generate (or abstain) and parse citations.

    ``invoke`` returns the :class:`Answer`; ``transform`` (what ``stream`` runs) yields
    :class:`AnswerChunk` text deltas and a closing chunk that add up to the same answer.
    """

    name = "generate"

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def invoke(
        self, input: ChainState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        return self._call_with_config(self._invoke, input, config)

    def _invoke(self, state: ChainState) -> Answer:
        return self.pipeline.answer_state(state)

    async def ainvoke(
        self, input: ChainState, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        return await self._acall_with_config(self._ainvoke, input, config)

    async def _ainvoke(self, state: ChainState) -> Answer:
        return await self.pipeline.aanswer_state(state)

    def transform(
        self, input: Iterator[ChainState], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Answer]:
        yield from self._transform_stream_with_config(input, self._transform, config)

    def _transform(self, states: Iterator[ChainState]) -> Iterator[AnswerChunk]:
        for state in states:
            yield from self.pipeline.stream_state(state)

    async def atransform(
        self,
        input: AsyncIterator[ChainState],
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Answer]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config):
            yield chunk

    async def _atransform(self, states: AsyncIterator[ChainState]) -> AsyncIterator[AnswerChunk]:
        async for state in states:
            if isinstance(self.pipeline.generator, AsyncGenerator):
                async for chunk in self.pipeline.astream_state(state):
                    yield chunk
            else:
                async for chunk in _in_thread(self.pipeline.stream_state(state)):
                    yield chunk


async def _in_thread(chunks: Iterator[AnswerChunk]) -> AsyncIterator[AnswerChunk]:
    """Drive a blocking iterator in a worker thread; closing the consumer stops the producer."""
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[Any] = asyncio.Queue()
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in chunks:
                loop.call_soon_threadsafe(out.put_nowait, item)
                if stop.is_set():  # the consumer went away: closing the stream stops the model
                    break
        except BaseException as exc:  # handed to the event loop
            loop.call_soon_threadsafe(out.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(out.put_nowait, done)

    task = loop.run_in_executor(None, work)
    try:
        while True:
            item = await out.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await asyncio.shield(task)


class Pipeline(Runnable[Any, Answer]):
    """Answer questions in a company's domain with retrieval, a fine-tuned adapter, or both.

    A LangChain ``Runnable``: ``invoke``, ``batch``, ``stream`` and their async forms take a
    ``RunnableConfig`` (callbacks, tags, run names) and fire its callbacks; ``stream`` yields
    :class:`AnswerChunk` pieces that add up to the :class:`Answer`. Input is a question
    string, or a dict ``{"question": ..., "history": [...], "strategy": ..., "adapter": ...}``.

    Args:
        retriever: A :class:`~phi3industry.retrieval.Retriever`, an index directory, or None
            (then ``config.index``; only the ``base``/``finetuned`` strategies work without).
        model: A model name/path (loaded locally, or served by ``config.endpoint``), or a
            generator (:class:`~phi3industry.generation.LocalGenerator` /
            :class:`~phi3industry.generation.OpenAIGenerator`); default ``config.model``.
        adapter: The LoRA adapter the ``finetuned`` strategies use: a directory
            (``'name=DIR'`` to name it) or the name of an adapter the generator already has.
        config: The :class:`~phi3industry.pipeline.PipelineConfig`.

    Raises:
        ConfigError: For a bad strategy, an adapter that does not fit the base model, or a
            missing retriever.

    Example:
        >>> from phi3industry import Pipeline, PipelineConfig
        >>> pipe = Pipeline(retriever="kb-index", model="smollm2-135m-instruct",
        ...                 adapter="out/adapter", config=PipelineConfig(k=4))  # doctest: +SKIP
        >>> for strategy in ("base", "rag", "finetuned", "rag+finetuned"):  # doctest: +SKIP
        ...     answer = pipe.invoke("What does error E4711 mean?", strategy=strategy)
        ...     print(strategy, answer.format())
    """

    name = "phi3industry.Pipeline"

    def __init__(
        self,
        retriever: Retriever | str | os.PathLike[str] | None = None,
        model: str | Generator | None = None,
        adapter: str | os.PathLike[str] | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        cfg = config or PipelineConfig()
        overrides: dict[str, Any] = {}
        if isinstance(model, (str, os.PathLike)):
            overrides["model"] = os.fspath(model)
        if adapter is not None:
            overrides["adapter"] = os.fspath(adapter)
        if isinstance(retriever, (str, os.PathLike)):
            overrides["index"] = os.fspath(retriever)
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        cfg = self.config

        if retriever is None and cfg.index is not None:
            retriever = cfg.index
        if isinstance(retriever, (str, os.PathLike)):
            if not Path(retriever).is_dir():
                raise ConfigError(
                    f"Index directory {os.fspath(retriever)!r} does not exist. Build it with "
                    "'phi3industry ingest DOCS --index DIR' or Retriever(...).sync(paths)."
                )
            retriever = Retriever.open(os.fspath(retriever))
        self.retriever: Retriever | None = retriever
        self._search_lock = threading.Lock()

        extra = [parse_adapter_spec(spec) for spec in cfg.adapters or []]
        default_adapter: str | None = None
        if cfg.adapter is not None and not (
            not isinstance(model, (str, os.PathLike, type(None)))
            and cfg.adapter in getattr(model, "adapter_names", [])
        ):
            name, path = parse_adapter_spec(cfg.adapter)
            extra.insert(0, (name, path))
            default_adapter = name
        elif cfg.adapter is not None:
            default_adapter = cfg.adapter

        self.generator: Generator
        if model is None or isinstance(model, (str, os.PathLike)):
            self.generator = self._build_generator(cfg, extra)
        else:
            self.generator = model
            for name, path in extra:
                if name not in self.generator.adapter_names:
                    if not hasattr(self.generator, "load_adapter"):
                        raise ConfigError(
                            f"The generator {type(model).__name__} cannot load adapter "
                            f"directories; serve the adapter at the endpoint as {name!r}."
                        )
                    self.generator.load_adapter(path, name)
        if default_adapter is None and self.generator.adapter_names:
            default_adapter = self.generator.adapter_names[0]
        self.adapter = default_adapter
        self.model_name = str(getattr(self.generator, "name", cfg.model))
        self.answer_mode = resolve_answer_mode(cfg.answer_mode, self.model_name)
        self.attributor: Attributor | None = None
        if self.retriever is not None:  # it embeds with the retriever's (already loaded) model
            self.attributor = Attributor(
                self.retriever.embedder.embed_documents, lock=self._search_lock
            )
        self._check_strategy(cfg.strategy)
        self._prompt_chain = (
            RunnableLambda(self._start, name="start")
            | RunnableLambda(self._retrieve, name="retrieve")
            | RunnableLambda(self._pack, name="pack")
            | RunnableLambda(self._build_messages, name="prompt")
        )
        self.chain = (self._prompt_chain | _Generate(self)).with_config(run_name=self.name)

    # -- construction ---------------------------------------------------------------------

    @staticmethod
    def _build_generator(cfg: PipelineConfig, adapters: list[tuple[str, str]]) -> Generator:
        endpoint = cfg.endpoint
        if endpoint.base_url:
            tokenizer = None
            try:  # exact token counts if the model's tokenizer is available locally
                tokenizer = load_tokenizer(cfg.model)
            except Exception:
                tokenizer = None
            return OpenAIGenerator(
                endpoint.base_url,
                endpoint.model or cfg.model,
                api_key=endpoint.api_key,
                retries=endpoint.retries,
                backoff=endpoint.backoff,
                timeout=endpoint.timeout,
                tokenizer=tokenizer,
                context_window=cfg.context_window or 4096,
                adapters=dict(adapters),  # served by the engine under these names
            )
        return LocalGenerator.from_pretrained(
            cfg.model, adapters=dict(adapters), dtype=cfg.dtype, device=cfg.device
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Pipeline:
        """Build a pipeline from a YAML file of :class:`PipelineConfig` settings."""
        return cls(config=PipelineConfig.from_yaml(os.fspath(path)))

    @classmethod
    def from_config(cls, config: PipelineConfig) -> Pipeline:
        """Build a pipeline from a :class:`PipelineConfig`."""
        return cls(config=config)

    def _check_strategy(self, strategy: str) -> None:
        if strategy not in PIPELINE_STRATEGIES:
            raise ConfigError(
                f"Unknown strategy {strategy!r}; choose one of {', '.join(PIPELINE_STRATEGIES)}."
            )
        row = STRATEGIES[strategy]
        if row.retrieves and self.retriever is None:
            raise ConfigError(
                f"Strategy {strategy!r} retrieves sources but the pipeline has no retriever; "
                "pass retriever= (a Retriever or an index directory) or set 'index'."
            )
        if row.uses_adapter and self.adapter is None:
            raise ConfigError(
                f"Strategy {strategy!r} needs a LoRA adapter; pass adapter=DIR or set "
                "'adapter' (train one with 'phi3industry tune')."
            )

    @property
    def context_window(self) -> int:
        """The model's context window in tokens (``config.context_window`` overrides it)."""
        return int(self.config.context_window or self.generator.context_window)

    # -- chain steps ----------------------------------------------------------------------

    def _start(self, inp: Any, config: RunnableConfig) -> ChainState:
        """Check the input and settle the strategy, adapter, history and sampling."""
        data: dict[str, Any] = {}
        if isinstance(inp, Mapping):
            data = dict(inp)
            question = data.pop("question", data.pop("input", None))
        else:
            question = inp
        if not isinstance(question, str) or not question.strip():
            raise QueryError(
                f"The question must be a non-empty string, got {question!r}. Ask something."
            )
        cfg = self.config
        sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.stop, cfg.seed)
        for key in ("max_new_tokens", "temperature", "top_p", "stop", "seed"):
            value = data.pop(key, None)
            if value is not None:
                setattr(sampling, key, value)
        strategy = data.pop("strategy", None) or cfg.strategy
        adapter = data.pop("adapter", None)
        history, system = data.pop("history", None), data.pop("system", None)
        k = data.pop("k", None) or cfg.k
        answer_mode = data.pop("answer_mode", None) or cfg.answer_mode
        if answer_mode not in ANSWER_MODES:
            raise QueryError(
                f"answer_mode must be one of {', '.join(ANSWER_MODES)}, got {answer_mode!r}."
            )
        if data:
            allowed = [*_INPUT_KEYS, *dataclasses.asdict(sampling)]
            raise QueryError(f"Unknown input key(s) {sorted(data)}; allowed: {', '.join(allowed)}.")
        check_params(sampling.max_new_tokens, sampling.temperature, sampling.top_p)
        self._check_strategy(strategy)
        if answer_mode == "auto" and STRATEGIES[strategy].uses_adapter:
            answer_mode = "generate"  # the mode measured for the model is the base model's
        if STRATEGIES[strategy].uses_adapter:
            adapter = adapter or self.adapter
            if adapter not in self.generator.adapter_names:
                loaded = ", ".join(self.generator.adapter_names) or "none"
                raise ConfigError(f"Unknown adapter {adapter!r}; loaded: {loaded}.")
        else:
            adapter = None
        hist = []
        for i, msg in enumerate(history or []):
            if not isinstance(msg, Mapping) or msg.get("role") not in _HISTORY_ROLES:
                raise QueryError(
                    f"history[{i}] must be {{'role': 'user'|'assistant', 'content': str}}, "
                    f"got {msg!r}."
                )
            if msg["role"] != "system":
                hist.append({"role": str(msg["role"]), "content": str(msg.get("content", ""))})
        keep = cfg.max_history_messages
        return ChainState(
            question=question.strip(),
            strategy=strategy,
            adapter=adapter,
            history=hist[-keep:] if keep else [],
            system=system,
            sampling=sampling,
            k=int(k),
            start=time.perf_counter(),
            deadline=(config.get("configurable") or {}).get(_DEADLINE),
            answer_mode=resolve_answer_mode(answer_mode, self.model_name),
        )

    def _system(self, state: ChainState) -> list[dict[str, str]]:
        # A caller's system message replaces the configured one; grounding rules stay in the
        # user turn, next to the sources.
        system = state.system or self.config.system_prompt or DEFAULT_SYSTEM_PROMPT
        return [{"role": "system", "content": system}]

    def _fixed_tokens(self, state: ChainState) -> int:
        """Prompt tokens without any source: system, history, instructions and question."""
        marker = ["<sources>\n\n</sources>"] if state.retrieves else []
        content = question_message(state.question, marker)
        messages = [*self._system(state), *state.history, {"role": "user", "content": content}]
        return int(self.generator.prompt_tokens(messages))

    def _window(self, state: ChainState) -> int:
        return self.context_window - state.sampling.max_new_tokens - _PROMPT_MARGIN

    def _condense(self, state: ChainState) -> str:
        mode, history = self.config.condense_question, state.history
        if not history or mode == "none":
            return state.question
        if mode == "concat":
            asked = [m["content"] for m in history if m["role"] == "user"][-2:]
            return " ".join([*asked, state.question])
        convo = "\n".join(f"{m['role']}: {m['content']}" for m in history)
        prompt = CONDENSE_PROMPT.format(history=convo, question=state.question)
        gen = self.generator.generate(
            [{"role": "user", "content": prompt}], max_new_tokens=64, temperature=0.0
        )
        condensed = gen.text.strip().splitlines()[0].strip() if gen.text.strip() else ""
        return condensed or state.question

    def _retrieve(self, state: ChainState) -> ChainState:
        t0 = time.perf_counter()
        # Fail fast, before any retrieval, if the question alone cannot fit.
        window = self._window(state)
        fixed = self._fixed_tokens(state)
        while fixed > window and state.history:
            state.history = state.history[2:]  # drop the oldest turn first
            fixed = self._fixed_tokens(state)
        if fixed > window:
            raise QueryError(
                f"The question is too long: its prompt takes {fixed} tokens, but the model's "
                f"context window is {self.context_window} tokens, of which max_new_tokens="
                f"{state.sampling.max_new_tokens} are kept for the answer. Shorten the question "
                "or lower max_new_tokens."
            )
        state.fixed_tokens = fixed
        if state.retrieves:
            assert self.retriever is not None  # _check_strategy refused it otherwise
            state.query = self._condense(state)
            with self._search_lock:  # the embedder and index are shared by server threads
                state.hits = self.retriever.search(
                    state.query,
                    k=state.k,
                    hybrid=self.config.hybrid,
                    mmr=self.config.mmr,
                    min_score=self.config.min_score,
                    reranker=self.config.reranker,
                )
        state.timings["retrieve"] = time.perf_counter() - t0
        return state

    def _pack(self, state: ChainState) -> ChainState:
        t0 = time.perf_counter()
        budget = min(self.config.context_tokens, self._window(state) - state.fixed_tokens)
        state.sources = pack_sources(
            state.hits, budget, self.generator.count_tokens, self.generator.truncate
        )
        state.timings["pack"] = time.perf_counter() - t0
        return state

    def _build_messages(self, state: ChainState) -> ChainState:
        t0 = time.perf_counter()
        blocks = [format_source(n, hit) for n, hit in enumerate(state.sources, 1)]
        state.messages = [
            *self._system(state),
            *state.history,
            {"role": "user", "content": question_message(state.question, blocks)},
        ]
        state.timings["prompt"] = state.timings.pop("pack", 0.0) + time.perf_counter() - t0
        return state

    def abstains(self, state: ChainState) -> bool:
        """Whether the pipeline answers ``abstain_message`` instead of generating."""
        return state.retrieves and not state.sources and self.config.abstain

    def uses_extraction(self, state: ChainState) -> bool:
        """Whether the answer to ``state`` is quoted from the sources instead of generated."""
        return state.answer_mode == "extract" and state.retrieves and bool(state.sources)

    def sends_whole(self, state: ChainState) -> bool:
        """Whether a streamed answer to ``state`` comes in one piece.

        There is nothing to stream (abstaining, quoting), or the answer policy may replace
        the text (``low_support``).
        """
        replaces = self.config.min_support is not None and self.config.low_support != "flag"
        return replaces or self.abstains(state) or self.uses_extraction(state)

    def answer_state(self, state: ChainState) -> Answer:
        """Answer a prepared ``state``: abstain, quote the sources, or generate."""
        if self.abstains(state):
            return self.finish(state, None)
        if self.uses_extraction(state):
            return self.finish(state, self._extract(state))
        gen = self.generator.generate(state.messages, **state.generation_kwargs())
        return self.finish(state, gen)

    async def aanswer_state(self, state: ChainState) -> Answer:
        """Async :meth:`answer_state`: an engine is awaited, a local model runs in a thread.

        Awaiting an async generator on the event loop means concurrent requests are not capped
        by a thread pool; the CPU work around it (quoting, attribution) runs in worker threads.
        """
        gen_ = self.generator
        if (
            not isinstance(gen_, AsyncGenerator)
            or self.abstains(state)
            or self.uses_extraction(state)
        ):
            return await run_in_executor(None, self.answer_state, state)
        gen = await gen_.agenerate(state.messages, **state.generation_kwargs())
        return await self._afinish(state, gen)

    async def _afinish(self, state: ChainState, gen: Generation, text: str | None = None) -> Answer:
        if self.config.attribution and self.attributor is not None and state.sources:
            return await run_in_executor(None, self.finish, state, gen, text)
        return self.finish(state, gen, text)  # nothing to embed: no reason to leave the loop

    def _extract(self, state: ChainState) -> Generation:
        """The extractive answer: the span of the sources that best answers the question."""
        started = time.perf_counter()
        assert self.attributor is not None  # sources come from a retriever, which embeds
        quote = self.attributor.extract(state.question, state.sources)
        text = " ".join(quote.text.split()) if quote is not None else ""
        elapsed = time.perf_counter() - started
        if state.first_token is None:
            state.first_token = time.perf_counter() - state.start
        return Generation(text, "stop", 0, 0, first_token_s=elapsed, total_s=elapsed)

    def finish(self, state: ChainState, gen: Generation | None, text: str | None = None) -> Answer:
        """The :class:`Answer` for ``state`` from its generation (None: abstained).

        With retrieval, the text is attributed: each claim gets the quotes of the sources that
        support it, the supported sources become the citations, and ``min_support`` applies.
        """
        timings = state.timings
        first: float | None
        if gen is None:
            text, usage, reason = self.config.abstain_message, _NO_USAGE, None
        else:
            text = gen.text.strip() if text is None else text
            usage, reason = gen.usage, gen.finish_reason
        claims: list[Claim] = []
        grounded: float | None = None
        flagged = quoted = False
        abstained = gen is None
        attributes = self.config.attribution and self.attributor is not None
        if gen is not None and state.sources and attributes:
            assert self.attributor is not None
            t0 = time.perf_counter()
            claims = self.attributor.attribute(text, state.sources, unfinished=reason == "length")
            grounded = grounded_share(claims)
            timings["attribute"] = time.perf_counter() - t0
            low = self.config.min_support
            # an answer that asserts nothing checkable ("The answer is:") has no support either
            if low is not None and (grounded is None or grounded < low):
                flagged = True
                if self.config.low_support == "abstain":
                    text, claims, abstained = self.config.abstain_message, [], True
                elif self.config.low_support == "extract" and not self.uses_extraction(state):
                    # the written answer is replaced by the quote that best answers the question
                    text, reason, quoted = self._extract(state).text, "stop", True
                    claims = self.attributor.attribute(text, state.sources)
                    grounded = grounded_share(claims)
        if attributes and state.retrieves:
            numbers = list(dict.fromkeys(n for c in claims for n in c.sources))
        else:  # no attribution: the model's own markers are all there is
            numbers = parse_citations(text, len(state.sources))
        total = time.perf_counter() - state.start
        first = state.first_token
        if first is None:
            first = total
            if gen is not None and gen.first_token_s is not None:  # prefill, not the answer
                first = timings.get("retrieve", 0.0) + timings.get("prompt", 0.0)
                first += gen.first_token_s
        return Answer(
            text=text,
            citations=[state.sources[n - 1] for n in numbers],
            strategy=state.strategy,
            usage=dict(usage),
            timings={
                "retrieve": timings.get("retrieve", 0.0),
                "prompt": timings.get("prompt", 0.0),
                "first_token": first,
                "attribute": timings.get("attribute", 0.0),
                "total": total,
            },
            sources=list(state.sources),
            question=state.question,
            query=state.query,
            abstained=abstained,
            finish_reason=reason,
            adapter=state.adapter,
            claims=claims,
            grounded=grounded,
            flagged=flagged,
            quoted_instead=quoted,
            mode="extract"
            if quoted or (self.uses_extraction(state) and gen is not None)
            else "generate",
        )

    def stream_state(self, state: ChainState) -> Iterator[AnswerChunk]:
        """Generate for a prepared ``state``: text deltas, then the closing chunk.

        The deltas add up to the answer's text exactly: leading and trailing white space is
        held back, as ``invoke`` strips it.
        """
        if self.sends_whole(state):
            answer = self.answer_state(state)
            yield AnswerChunk.delta(answer.text, strategy=state.strategy, question=state.question)
            yield AnswerChunk.closing(answer)
            return
        raw, sent = "", ""
        final: Generation | None = None
        for piece in self.generator.stream(state.messages, **state.generation_kwargs()):
            if piece.generation is not None:
                final = piece.generation
            if not piece.text:
                continue
            raw += piece.text
            ready = raw.lstrip().rstrip()
            if len(ready) > len(sent):
                if state.first_token is None:
                    state.first_token = time.perf_counter() - state.start
                yield AnswerChunk.delta(
                    ready[len(sent) :], strategy=state.strategy, question=state.question
                )
                sent = ready
        assert final is not None, "a generator's stream ends with its Generation"
        answer = self.finish(state, final, text=sent)
        yield AnswerChunk.closing(answer)

    async def astream_state(self, state: ChainState) -> AsyncIterator[AnswerChunk]:
        """Async :meth:`stream_state` for an async generator (an engine): same chunks."""
        gen_ = self.generator
        assert isinstance(gen_, AsyncGenerator)
        if self.sends_whole(state):
            answer = await self.aanswer_state(state)
            yield AnswerChunk.delta(answer.text, strategy=state.strategy, question=state.question)
            yield AnswerChunk.closing(answer)
            return
        raw, sent = "", ""
        final: Generation | None = None
        pieces = gen_.astream(state.messages, **state.generation_kwargs())
        try:
            async for piece in pieces:
                if piece.generation is not None:
                    final = piece.generation
                if not piece.text:
                    continue
                raw += piece.text
                ready = raw.lstrip().rstrip()
                if len(ready) > len(sent):
                    if state.first_token is None:
                        state.first_token = time.perf_counter() - state.start
                    yield AnswerChunk.delta(
                        ready[len(sent) :], strategy=state.strategy, question=state.question
                    )
                    sent = ready
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]  # a client gone stops the engine
        assert final is not None, "a generator's stream ends with its Generation"
        yield AnswerChunk.closing(await self._afinish(state, final, sent))

    # -- Runnable interface ---------------------------------------------------------------

    @staticmethod
    def _prepare(
        input: Any,
        config: RunnableConfig | None,
        *,
        strategy: str | None = None,
        history: Sequence[Mapping[str, str]] | None = None,
        adapter: str | None = None,
        answer_mode: str | None = None,
        deadline: float | None = None,
        **run_options: Any,
    ) -> tuple[Any, RunnableConfig]:
        """The chain's input (the per-call keywords folded in; they win) and run config."""
        extra = {
            "strategy": strategy,
            "history": history,
            "adapter": adapter,
            "answer_mode": answer_mode,
        }
        extra = {key: value for key, value in extra.items() if value is not None}
        if extra:
            base = dict(input) if isinstance(input, Mapping) else {"question": input}
            input = {**base, **extra}
        config = ensure_config(config)
        if deadline is not None:
            config = merge_configs(config, {"configurable": {_DEADLINE: deadline}})
        return input, config

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        """Answer one question.

        Args:
            input: The question, or ``{"question", "history", "strategy", "adapter"}``
                (plus sampling overrides: ``max_new_tokens``, ``temperature``, ``top_p``,
                ``stop``, ``seed``, and ``k``).
            config: LangChain run config (callbacks, tags, run name).
            **kwargs: ``strategy`` (overrides the configured one), ``history`` (earlier
                ``role``/``content`` messages), ``adapter`` (a loaded adapter's name for the
                ``finetuned`` strategies), ``answer_mode`` (``generate``, ``extract`` or
                ``auto``: overrides the configured one), ``deadline``
                (``time.monotonic()`` after which generation stops with an error). Other
                keywords LangChain passes are ignored. The same keywords work for
                :meth:`ainvoke`, :meth:`stream` and :meth:`astream`.

        Returns:
            The :class:`Answer`.

        Raises:
            QueryError: Empty question, or a question too long for the context window.
            ConfigError: Unknown strategy or adapter, or a strategy the pipeline cannot run.
            GenerationError: The model or endpoint failed.
        """
        inp, run_config = self._prepare(input, config, **kwargs)
        return self.chain.invoke(inp, run_config)  # type: ignore[no-any-return]

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        """Async :meth:`invoke`: a local model runs in a worker thread, an endpoint is awaited."""
        inp, run_config = self._prepare(input, config, **kwargs)
        return await self.chain.ainvoke(inp, run_config)  # type: ignore[no-any-return]

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AnswerChunk]:
        """Stream the answer: text pieces as generated, then the chunk with the sources.

        Args:
            input: As for :meth:`invoke`.
            config: LangChain run config (callbacks, tags, run name).
            **kwargs: As for :meth:`invoke`.

        Yields:
            :class:`AnswerChunk` objects; ``chunk.text`` is the new text. Added up
            (``a + b + ...``) they are the :class:`Answer` :meth:`invoke` returns.
        """
        inp, run_config = self._prepare(input, config, **kwargs)
        yield from self.chain.stream(inp, run_config)  # type: ignore[misc]

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AnswerChunk]:
        """Async :meth:`stream`: a local model runs in a worker thread, an endpoint is awaited.

        Closing the stream stops either.
        """
        inp, run_config = self._prepare(input, config, **kwargs)
        async for chunk in self.chain.astream(inp, run_config):
            yield chunk  # type: ignore[misc]

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        strategy: str | None = None,
        adapter: str | None = None,
        answer_mode: str | None = None,
        **kwargs: Any,
    ) -> list[Answer]:
        """Answer several questions, generating up to ``batch_size`` together (left-padded).

        Each question is its own run for the callbacks in ``config`` (one config, or one per
        input), with the chain's steps as child runs.

        Args:
            inputs: Questions (strings or input dicts).
            config: LangChain run config(s).
            return_exceptions: Return errors in place of answers instead of raising.
            strategy: Override the configured strategy for every question.
            adapter: Override the configured adapter for every question.
            answer_mode: Override the configured answer mode for every question.
            **kwargs: Ignored.

        Returns:
            One :class:`Answer` (or exception) per input, in order.
        """
        inputs = [
            self._prepare(inp, None, strategy=strategy, adapter=adapter, answer_mode=answer_mode)[0]
            for inp in inputs
        ]
        return self._batch_with_config(
            self._batch, inputs, config, return_exceptions=return_exceptions
        )

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Answer]:
        """Async :meth:`batch` (in a worker thread, so questions are still generated together)."""
        return await asyncio.to_thread(
            self.batch, inputs, config, return_exceptions=return_exceptions, **kwargs
        )

    def _batch(
        self,
        inputs: list[Any],
        run_manager: list[CallbackManagerForChainRun],
        config: list[RunnableConfig],
    ) -> list[Answer | Exception]:
        results: list[Answer | Exception | None] = [None] * len(inputs)
        pending: dict[Any, list[tuple[int, ChainState]]] = {}
        for i, (inp, cfg) in enumerate(zip(inputs, config, strict=True)):
            try:
                state = self._prompt_chain.invoke(inp, cfg)
            except Exception as exc:
                results[i] = exc
                continue
            if self.abstains(state) or self.uses_extraction(state):
                results[i] = self.answer_state(state)
            else:
                key = (state.adapter, repr(dataclasses.astuple(state.sampling)))
                pending.setdefault(key, []).append((i, state))
        size = self.config.batch_size
        for group in pending.values():
            for at in range(0, len(group), size):
                chunk = group[at : at + size]
                try:
                    gens = self.generator.generate_batch(
                        [st.messages for _, st in chunk], **chunk[0][1].generation_kwargs()
                    )
                except Exception as exc:
                    for i, _ in chunk:
                        results[i] = exc
                    continue
                for (i, st), gen in zip(chunk, gens, strict=True):
                    results[i] = self.finish(st, gen)
        return [r for r in results if r is not None]

    def prompt(
        self,
        input: Any,
        *,
        strategy: str | None = None,
        history: Sequence[Mapping[str, str]] | None = None,
        adapter: str | None = None,
    ) -> list[dict[str, str]]:
        """Return the chat messages the model would be given for ``input``, without generating.

        Retrieval and packing run as in :meth:`invoke`, so the last message holds the numbered
        sources: this is everything the model sees (e.g. to audit that no secret reaches it).

        Args:
            input: The question, or ``{"question", "history", "strategy", "adapter"}``.
            strategy: Override the configured strategy.
            history: Earlier messages of the conversation.
            adapter: Which loaded adapter the ``finetuned`` strategies use.

        Returns:
            The messages (``role``/``content`` dicts): system, history, then the question.

        Raises:
            QueryError: Empty question, or a question too long for the context window.
            ConfigError: Unknown strategy or adapter.
        """
        inp, _ = self._prepare(input, None, strategy=strategy, history=history, adapter=adapter)
        state = self._prompt_chain.invoke(inp)
        return [dict(m) for m in state.messages]

    def retrieve(self, query: str, k: int | None = None) -> list[Hit]:
        """The sources the model is shown for ``query``: retrieved, filtered, merged, packed.

        Exactly what :meth:`invoke` puts in the prompt for the same question (``min_score``,
        MMR, hybrid search, merging of overlapping chunks and the token budget all apply), so
        retrieval can be judged on what the model really sees.

        Args:
            query: The question.
            k: Hits retrieved (default: ``config.k``).

        Raises:
            ConfigError: If the pipeline has no retriever.
            QueryError: For an empty query.
        """
        if self.retriever is None:
            raise ConfigError("This pipeline has no retriever; pass retriever= or set 'index'.")
        if not isinstance(query, str) or not query.strip():
            raise QueryError(f"The query must be a non-empty string, got {query!r}.")
        inp: dict[str, Any] = {"question": query, "strategy": "rag"}
        if k is not None:
            inp["k"] = k
        state = self._prompt_chain.invoke(inp)
        return list(state.sources)

    def __repr__(self) -> str:
        return (
            f"Pipeline(model={getattr(self.generator, 'name', '?')!r}, strategy="
            f"{self.config.strategy!r}, adapters={self.generator.adapter_names!r})"
        )


_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

__all__ = ["Answer", "AnswerChunk", "ChainState", "Pipeline"]
