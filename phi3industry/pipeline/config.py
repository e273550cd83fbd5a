"""Settings of a :class:`~phi3industry.pipeline.Pipeline`.

The strategy and model, how retrieval is used, the prompt and sampling, and (nested) the
OpenAI-compatible endpoint to generate with.

Server settings (host, port, limits) are not here: they are
:class:`~phi3industry.serving.ServerConfig`'s, which ``phi3industry serve`` composes with this one.

Example:
    >>> from phi3industry.pipeline import EndpointConfig, PipelineConfig
    >>> cfg = PipelineConfig(strategy="rag", model="tiny-phi3", index="kb-index", k=4)
    >>> cfg.uses_retrieval, cfg.uses_adapter
    (True, False)
    >>> remote = PipelineConfig(endpoint=EndpointConfig(base_url="http://localhost:8001/v1"))
    >>> remote.endpoint.retries
    3
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from phi3industry._config import SEED_MAX, ConfigBase, check, check_positive_int, split_list
from phi3industry.models import DEFAULT_MODEL, PRECISIONS
from phi3industry.strategies import PIPELINE_STRATEGIES, STRATEGIES

#: How a question is made standalone for retrieval when there is chat history.
CONDENSE_MODES = ("llm", "concat", "none")
#: How an answer is made from the sources: ``generate`` (the model writes it) or ``extract``
#: (the best supporting span of the sources, quoted); ``auto`` picks per model.
ANSWER_MODES = ("auto", "generate", "extract")
#: The mode that measured best for a model (docs/evaluation.md): ``auto`` resolves to it, and
#: to ``generate`` for models not measured here.
MEASURED_ANSWER_MODES = {"smollm2-135m-instruct": "extract"}
#: What happens to an answer whose share of supported claims is below ``min_support``: it is
#: flagged, replaced by the abstain message, or replaced by the quote of the sources that
#: best answers the question (``extract``).
LOW_SUPPORT_ACTIONS = ("flag", "abstain", "extract")

_SERVER_SETTINGS = (
    "host",
    "port",
    "api_key",
    "max_body_bytes",
    "request_timeout",
    "max_tokens_cap",
    "max_messages",
    "max_queue",
)


@dataclass
class EndpointConfig(ConfigBase):
    """An OpenAI-compatible endpoint to generate with instead of a local model.

    vLLM, llama.cpp's server, Azure OpenAI and ``phi3industry serve`` all speak this API.

    Example:
        >>> EndpointConfig(base_url="http://localhost:8001/v1", model="kb").timeout
        120.0
    """

    base_url: str | None = field(
        default=None,
        metadata={
            "help": "Generate with the OpenAI-compatible endpoint at this URL (vLLM, "
            "llama.cpp, Azure OpenAI, phi3industry serve) instead of a local model."
        },
    )
    api_key: str | None = field(
        default=None, metadata={"help": "API key of the endpoint (default: $OPENAI_API_KEY)."}
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Model name at the endpoint (default: the pipeline's model)."},
    )
    retries: int = field(
        default=3, metadata={"help": "Retries when the endpoint is unreachable or busy."}
    )
    backoff: float = field(
        default=0.5, metadata={"help": "First retry delay in seconds (doubles each retry)."}
    )
    timeout: float = field(
        default=120.0, metadata={"help": "Seconds to wait for the endpoint per request."}
    )

    def __post_init__(self) -> None:
        check(
            self.base_url is None or self.base_url.startswith(("http://", "https://")),
            f"base_url must start with http:// or https://, got {self.base_url!r}.",
        )
        check(
            isinstance(self.retries, int) and self.retries >= 0 and self.backoff >= 0,
            f"retries and backoff must be >= 0, got {self.retries!r} and {self.backoff!r}.",
        )
        check(self.timeout > 0, f"timeout must be positive seconds, got {self.timeout!r}.")


@dataclass
class PipelineConfig(ConfigBase):
    """How a question is answered: strategy, model, retrieval use, prompt and sampling.

    Example:
        >>> cfg = PipelineConfig(strategy="rag", model="tiny-phi3", index="kb-index", k=4)
        >>> cfg.uses_retrieval, cfg.uses_adapter
        (True, False)
    """

    moved_settings: ClassVar[dict[str, str]] = {
        "base_url": "endpoint.base_url (CLI: --endpoint.base-url)",
        "endpoint_api_key": "endpoint.api_key (CLI: --endpoint.api-key)",
        "endpoint_model": "endpoint.model (CLI: --endpoint.model)",
        "endpoint_retries": "endpoint.retries (CLI: --endpoint.retries)",
        "endpoint_backoff": "endpoint.backoff (CLI: --endpoint.backoff)",
        "endpoint_timeout": "endpoint.timeout (CLI: --endpoint.timeout)",
        **{
            name: f"{name} of the server's settings (ServerConfig; a flag of "
            "`phi3industry serve`, which reads it from the same YAML file)"
            for name in _SERVER_SETTINGS
        },
    }

    strategy: str = field(
        default="rag",
        metadata={
            "help": "; ".join(f"'{s}': {STRATEGIES[s].description}" for s in PIPELINE_STRATEGIES)
            + "."
        },
    )
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Base model: short name, hub id, local directory or .gguf file."},
    )
    adapter: str | None = field(
        default=None,
        metadata={
            "help": "LoRA adapter directory used by the 'finetuned' strategies "
            "('name=DIR' to name it)."
        },
    )
    adapters: list[str] | None = field(
        default=None,
        metadata={"help": "More adapters to load on the same base, as 'name=DIR' (or DIR)."},
    )
    index: str | None = field(
        default=None, metadata={"help": "Index directory (embedded Chroma) for retrieval."}
    )
    k: int = field(default=4, metadata={"help": "Sources retrieved per question."})
    hybrid: bool | None = field(
        default=None,
        metadata={"help": "Fuse BM25 with dense search (RRF); unset: the index's own setting."},
    )
    mmr: bool | None = field(
        default=None,
        metadata={"help": "Diversify sources (MMR); unset: the index's own setting."},
    )
    reranker: str | None = field(
        default=None,
        metadata={
            "help": "Cross-encoder that re-scores the retrieved candidates (a local directory or "
            "a cached hub id, e.g. 'cross-encoder/ms-marco-MiniLM-L-6-v2'); unset: the "
            "index's own setting."
        },
    )
    min_score: float | None = field(
        default=0.2,
        metadata={
            "help": "Hits whose (dense cosine) score is below this are not used; "
            "when none is left the pipeline abstains. None: keep all."
        },
    )
    abstain: bool = field(
        default=True,
        metadata={
            "help": "With retrieval and no relevant hit, answer abstain_message instead "
            "of letting the model answer unaided."
        },
    )
    abstain_message: str = field(
        default="I could not find this in the knowledge base, so I cannot answer it reliably.",
        metadata={"help": "What the pipeline answers when it abstains."},
    )
    context_tokens: int = field(
        default=2048,
        metadata={"help": "Token budget for the numbered sources in the prompt (model tokens)."},
    )
    context_window: int | None = field(
        default=None,
        metadata={"help": "Model context window in tokens (default: from the model config)."},
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Tokens generated at most."})
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature; 0 = greedy (deterministic)."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (0 < p <= 1)."})
    seed: int | None = field(default=None, metadata={"help": "Sampling seed (reproducible)."})
    stop: list[str] | None = field(
        default=None, metadata={"help": "Extra stop strings (besides end-of-turn tokens)."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt (default: a domain-expert prompt)."}
    )
    condense_question: str = field(
        default="llm",
        metadata={
            "help": "With chat history, how the question is made standalone for "
            "retrieval: 'llm', 'concat' or 'none'."
        },
    )
    max_history_messages: int = field(
        default=8, metadata={"help": "Most recent history messages kept in the prompt."}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Questions generated together (left-padded) by batch()."}
    )
    answer_mode: str = field(
        default="auto",
        metadata={
            "help": "With sources: 'generate' (the model writes the answer), 'extract' (the "
            "best supporting passage of the sources, quoted), or 'auto' (the mode measured "
            "best for the model: extract for smollm2-135m-instruct, else generate; "
            "strategies with an adapter generate)."
        },
    )
    attribution: bool = field(
        default=True,
        metadata={
            "help": "Split the answer into claims and find the passage of the sources that "
            "supports each one (citations, quotes, groundedness)."
        },
    )
    min_support: float | None = field(
        default=None,
        metadata={
            "help": "Answers whose share of supported claims is below this are flagged, or "
            "replaced by abstain_message or by a quote of the sources (low_support). None: "
            "no check."
        },
    )
    low_support: str = field(
        default="flag",
        metadata={
            "help": "Below min_support: 'flag' the answer, 'abstain' (answer "
            "abstain_message), or 'extract' (answer with the quote of the sources that best "
            "answers the question, as answer_mode='extract' would; both send a streamed "
            "answer whole, at the end)."
        },
    )
    dtype: str = field(
        default="auto", metadata={"help": "Model dtype: 'auto', 'fp32', 'bf16' or 'fp16'."}
    )
    device: str | None = field(
        default=None, metadata={"help": "Model device ('cpu', 'cuda'); default: best."}
    )
    endpoint: EndpointConfig = field(
        default_factory=EndpointConfig,
        metadata={"help": "Generate with an OpenAI-compatible endpoint instead of locally."},
    )

    @property
    def uses_retrieval(self) -> bool:
        """Whether the strategy retrieves sources."""
        return STRATEGIES[self.strategy].retrieves

    @property
    def uses_adapter(self) -> bool:
        """Whether the strategy generates with the fine-tuned adapter."""
        return STRATEGIES[self.strategy].uses_adapter

    def __post_init__(self) -> None:
        check(
            self.strategy in PIPELINE_STRATEGIES,
            f"strategy must be one of {', '.join(PIPELINE_STRATEGIES)}, got {self.strategy!r}.",
        )
        check(bool(self.model), "model must name a model (short name, hub id, path or .gguf).")
        check_positive_int(self.k, "k")
        check_positive_int(self.max_new_tokens, "max_new_tokens")
        check(
            isinstance(self.context_tokens, int) and self.context_tokens > 0,
            f"context_tokens must be a positive number of tokens, got {self.context_tokens!r}.",
        )
        check(
            self.context_window is None
            or (isinstance(self.context_window, int) and self.context_window > self.max_new_tokens),
            f"context_window must be larger than max_new_tokens ({self.max_new_tokens}), "
            f"got {self.context_window!r}.",
        )
        check(
            0.0 <= float(self.temperature) <= 2.0,
            f"temperature must be between 0 and 2, got {self.temperature!r}.",
        )
        check(0.0 < float(self.top_p) <= 1.0, f"top_p must be in (0, 1], got {self.top_p!r}.")
        check(
            self.seed is None or (isinstance(self.seed, int) and -SEED_MAX <= self.seed < SEED_MAX),
            f"seed must be a signed 64-bit integer or unset, got {self.seed!r}.",
        )
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        check(
            self.stop is None or all(isinstance(s, str) and s for s in self.stop),
            f"stop must be a list of non-empty strings, got {self.stop!r}.",
        )
        self.adapters = split_list(self.adapters)
        check(
            self.condense_question in CONDENSE_MODES,
            f"condense_question must be one of {', '.join(CONDENSE_MODES)}, "
            f"got {self.condense_question!r}.",
        )
        check(
            self.dtype in PRECISIONS,
            f"dtype must be one of {', '.join(PRECISIONS)}, got {self.dtype!r}.",
        )
        check(
            self.max_history_messages >= 0,
            f"max_history_messages must be >= 0, got {self.max_history_messages!r}.",
        )
        check(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size!r}.")
        check(
            self.answer_mode in ANSWER_MODES,
            f"answer_mode must be one of {', '.join(ANSWER_MODES)}, got {self.answer_mode!r}.",
        )
        check(
            self.min_support is None or 0.0 <= float(self.min_support) <= 1.0,
            f"min_support must be between 0 and 1 (a share of claims) or unset, "
            f"got {self.min_support!r}.",
        )
        check(
            self.low_support in LOW_SUPPORT_ACTIONS,
            f"low_support must be one of {', '.join(LOW_SUPPORT_ACTIONS)}, "
            f"got {self.low_support!r}.",
        )
        check(
            not (self.min_support is not None and not self.attribution),
            "min_support needs attribution (it compares the share of supported claims); "
            "set attribution=True or leave min_support unset.",
        )
        check(
            isinstance(self.endpoint, EndpointConfig),
            f"endpoint must be an EndpointConfig, got {type(self.endpoint).__name__}.",
        )


def resolve_answer_mode(mode: str, model_name: str) -> str:
    """``generate`` or ``extract`` for ``mode``: ``auto`` is the mode measured best for the model.

    Example:
        >>> resolve_answer_mode("auto", "smollm2-135m-instruct")
        'extract'
        >>> resolve_answer_mode("auto", "phi-3-mini-4k-instruct")
        'generate'
    """
    if mode != "auto":
        return mode
    name = model_name.rstrip("/").rsplit("/", 1)[-1].lower()
    for model, measured in MEASURED_ANSWER_MODES.items():
        if name.startswith(model):  # a short name, or the directory it was converted into
            return measured
    return "generate"
