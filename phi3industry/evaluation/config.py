"""Settings of an evaluation run (``phi3industry eval --config eval.yaml``).

The index, the tuning and the answering are set by the same configs the rest of the library
uses, nested: ``retriever`` (:class:`~phi3industry.retrieval.RetrieverConfig`), ``tuner``
(:class:`~phi3industry.tuning.TunerConfig`) and ``pipeline``
(:class:`~phi3industry.pipeline.PipelineConfig`), so every setting has one name and one
default in the whole library. What is the evaluation's own (the documents, the questions, the
strategies, RAFT, the statistics) is set at the top level.

Example:
    >>> from phi3industry.evaluation import EvalConfig
    >>> cfg = EvalConfig.from_dict({
    ...     "docs": ["kb/docs"], "qa": "kb/questions.jsonl", "train": ["kb/qa_train.jsonl"],
    ...     "pipeline": {"model": "smollm2-135m-instruct", "k": 2},
    ...     "tuner": {"max_steps": 6},
    ... })
    >>> cfg.tuner.model, cfg.index_dir.as_posix()
    ('smollm2-135m-instruct', 'eval-output/index')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from phi3industry._config import ConfigBase, check, check_positive_int, split_list
from phi3industry.errors import ConfigError
from phi3industry.models import DEFAULT_MODEL
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.strategies import DEFAULT_EVAL_STRATEGIES, STRATEGIES, split_strategy
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.raft import DISTRACTOR_KINDS

_MOVED = {
    "index": "retriever.path",
    "include": "retriever.include",
    "exclude": "retriever.exclude",
    "chunk_size": "retriever.chunk_size",
    "model": "pipeline.model (the tuner trains the same model)",
    "k": "pipeline.k",
    "hybrid": "pipeline.hybrid",
    "min_score": "pipeline.min_score",
    "max_new_tokens": "pipeline.max_new_tokens",
    "context_tokens": "pipeline.context_tokens",
    "system_prompt": "pipeline.system_prompt",
    "answer_batch_size": "pipeline.batch_size",
    "dtype": "pipeline.dtype",
    "device": "pipeline.device",
    "max_steps": "tuner.max_steps",
    "learning_rate": "tuner.learning_rate",
    "lora_r": "tuner.lora_r",
    "train_batch_size": "tuner.batch_size",
    "train_max_length": "tuner.max_length",
}


@dataclass
class EvalConfig(ConfigBase):
    """An evaluation run: documents, questions, strategies, and the nested component configs.

    ``pipeline.model`` is the model answered with and tuned (``tuner.model`` may repeat it);
    the index lives in ``retriever.path`` (default ``OUTPUT_DIR/index``); adapters are tuned
    into ``OUTPUT_DIR/adapters/ROLE`` whatever ``tuner.output_dir`` says.

    Example:
        >>> cfg = EvalConfig(docs=["kb/docs"], qa="kb/questions.jsonl",
        ...                  pipeline=PipelineConfig(model="smollm2-135m-instruct"))
        >>> cfg.strategies
        ['base', 'rag', 'finetuned', 'rag+finetuned', 'raft+rag']
    """

    moved_settings: ClassVar[dict[str, str]] = _MOVED

    output_dir: str = field(
        default="eval-output",
        metadata={
            "help": "Where the index (unless retriever.path), adapters, answers and report go."
        },
    )
    docs: list[str] | None = field(
        default=None,
        metadata={"help": "Documents to index (synced: unchanged files are not re-embedded)."},
    )
    qa: str | None = field(
        default=None,
        metadata={
            "help": "Held-out questions (JSONL/CSV: question, answer, sources). Unset: "
            "generate them from the index."
        },
    )
    train: list[str] | None = field(
        default=None,
        metadata={
            "help": "Training data for the adapters: QA rows, chat JSONL ('messages') or "
            "any Tuner format. Unset with generated QA: the generated training split."
        },
    )
    train_on_docs: bool = field(
        default=True,
        metadata={"help": "Also train the plain adapter on the index's chunks (raw text)."},
    )
    max_questions: int | None = field(
        default=None, metadata={"help": "Evaluate at most this many held-out questions."}
    )
    generate_questions: int = field(
        default=30, metadata={"help": "Questions to generate when no QA file is given."}
    )
    heldout_fraction: float = field(
        default=0.4,
        metadata={"help": "Share of generated questions held out (never trained on)."},
    )
    qa_model: str | None = field(
        default=None,
        metadata={"help": "Model that writes generated questions (default: pipeline.model)."},
    )
    qa_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint that writes generated questions."},
    )
    judge_base_url: str | None = field(
        default=None,
        metadata={
            "help": "OpenAI-compatible endpoint of an LLM judge grading every answer against "
            "its reference (the 'judge' metric); unset: no judge."
        },
    )
    judge_model: str | None = field(
        default=None, metadata={"help": "The judge model's name at judge_base_url."}
    )
    strategies: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVAL_STRATEGIES),
        metadata={
            "help": f"Strategies to compare: {', '.join(STRATEGIES)}; a retrieving one may "
            "name its answer mode, 'rag@extract' or 'rag@generate'."
        },
    )
    adapter: str | None = field(
        default=None, metadata={"help": "Existing plain adapter directory (skips its tuning)."}
    )
    raft_adapter: str | None = field(
        default=None, metadata={"help": "Existing RAFT adapter directory (skips its tuning)."}
    )
    raft_distractors: int = field(
        default=3, metadata={"help": "RAFT: distractor chunks per training question (D)."}
    )
    raft_p_oracle: float = field(
        default=0.8, metadata={"help": "RAFT: probability that the oracle chunk is shown (P)."}
    )
    raft_distractor_type: str = field(
        default="hard",
        metadata={"help": "RAFT adapter: 'hard' (retriever's top non-oracle hits) or 'random'."},
    )
    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for CIs."})
    seed: int = field(default=0, metadata={"help": "Seed for splits, RAFT draws, bootstrap."})
    progress: bool = field(default=True, metadata={"help": "Show progress on stderr."})
    retriever: RetrieverConfig = field(
        default_factory=RetrieverConfig,
        metadata={"help": "The index: its path (default OUTPUT_DIR/index), chunking, embedder."},
    )
    tuner: TunerConfig = field(
        default_factory=TunerConfig,
        metadata={"help": "How the adapters are tuned (model: pipeline.model)."},
    )
    pipeline: PipelineConfig = field(
        default_factory=PipelineConfig,
        metadata={"help": "How questions are answered: model, sources, prompt, sampling."},
    )

    def __post_init__(self) -> None:
        self.docs, self.train = split_list(self.docs), split_list(self.train)
        self.strategies = split_list(self.strategies)
        check(
            bool(self.strategies),
            f"strategies must be a non-empty list of {', '.join(STRATEGIES)}; "
            f"got {self.strategies!r}.",
        )
        for name in self.strategies:
            split_strategy(name)  # an unknown strategy or answer mode: a ConfigError naming it
        check(
            len(set(self.strategies)) == len(self.strategies),
            f"strategies lists a strategy twice: {self.strategies!r}.",
        )
        check_positive_int(self.generate_questions, "generate_questions")
        check(
            self.max_questions is None or self.max_questions > 0,
            f"max_questions must be a positive integer or unset, got {self.max_questions!r}.",
        )
        check(
            0.0 < self.heldout_fraction < 1.0,
            f"heldout_fraction must be between 0 and 1 (exclusive), got {self.heldout_fraction!r}.",
        )
        check(
            isinstance(self.raft_distractors, int) and self.raft_distractors >= 0,
            f"raft_distractors must be an integer >= 0, got {self.raft_distractors!r}.",
        )
        check(
            0.0 <= self.raft_p_oracle <= 1.0,
            f"raft_p_oracle must be in [0, 1], got {self.raft_p_oracle!r}.",
        )
        check(
            self.raft_distractor_type in DISTRACTOR_KINDS,
            f"raft_distractor_type must be one of {', '.join(DISTRACTOR_KINDS)}, "
            f"got {self.raft_distractor_type!r}.",
        )
        check(
            self.n_bootstrap >= 100,
            f"n_bootstrap must be at least 100 resamples, got {self.n_bootstrap!r}.",
        )
        check(
            self.qa_base_url is None or self.qa_base_url.startswith(("http://", "https://")),
            f"qa_base_url must start with http:// or https://, got {self.qa_base_url!r}.",
        )
        check(
            self.judge_base_url is None or self.judge_base_url.startswith(("http://", "https://")),
            f"judge_base_url must start with http:// or https://, got {self.judge_base_url!r}.",
        )
        check(
            (self.judge_base_url is None) == (self.judge_model is None),
            "judge_base_url and judge_model go together: set both for an LLM judge, or neither.",
        )
        for name, cls in (("retriever", RetrieverConfig), ("tuner", TunerConfig)):
            check(
                isinstance(getattr(self, name), cls),
                f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}.",
            )
        check(
            isinstance(self.pipeline, PipelineConfig),
            f"pipeline must be a PipelineConfig, got {type(self.pipeline).__name__}.",
        )
        check(
            self.pipeline.index is None,
            "pipeline.index is not used by an evaluation: set retriever.path (the index "
            "directory; default OUTPUT_DIR/index).",
        )
        self._one_model()

    def _one_model(self) -> None:
        """Answer with the model that is tuned: ``tuner.model`` and ``pipeline.model`` agree."""
        answer, tune = self.pipeline.model, self.tuner.model
        if answer == tune:
            return
        if tune == DEFAULT_MODEL:
            self.tuner = dataclasses.replace(self.tuner, model=answer)
        elif answer == DEFAULT_MODEL:
            self.pipeline = dataclasses.replace(self.pipeline, model=tune)
        else:
            raise ConfigError(
                f"pipeline.model ({answer!r}) and tuner.model ({tune!r}) differ; an "
                "evaluation tunes the model it answers with. Set pipeline.model only."
            )

    @property
    def model(self) -> str:
        """The model answered with and tuned."""
        return self.pipeline.model

    @property
    def index_dir(self) -> Path:
        """The index directory (``retriever.path``, or ``output_dir/index``)."""
        return Path(self.retriever.path or Path(self.output_dir) / "index")

    @property
    def adapter_roles(self) -> list[str]:
        """The adapters the strategies need (``finetuned``, ``raft``, ``raft-random``)."""
        names = [split_strategy(s)[0].adapter for s in self.strategies]
        return list(dict.fromkeys(n for n in names if n is not None))
