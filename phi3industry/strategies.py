"""The strategies in one table: what each retrieves, which adapter it needs, what it stands for.

A *strategy* is a way to answer a question: with the base model alone, with retrieved sources,
with a fine-tuned adapter, or both. The :class:`~phi3industry.pipeline.Pipeline` answers with the
four plain ones; the evaluation also compares RAFT adapters (trained to answer from sources
with distractors among them). Every other module reads this table instead of parsing names.

Example:
    >>> from phi3industry.strategies import STRATEGIES
    >>> STRATEGIES["raft+rag"].retrieves, STRATEGIES["raft+rag"].adapter_role
    (True, 'raft')
    >>> STRATEGIES["raft+rag"].pipeline_strategy
    'rag+finetuned'
"""

from __future__ import annotations

from dataclasses import dataclass

from phi3industry.errors import ConfigError

#: Adapter roles: a plain LoRA adapter, or one trained the RAFT way.
ADAPTER_ROLES = ("plain", "raft")
#: The advisor's families: what a strategy stands for when recommending one.
FAMILIES = ("base", "rag", "fine-tuning", "both")


@dataclass(frozen=True)
class Strategy:
    """One row of the table.

    Attributes:
        name: The strategy's name (``rag+finetuned``...).
        retrieves: Whether sources are retrieved and shown to the model.
        adapter_role: ``None`` (base model), ``"plain"`` or ``"raft"``.
        adapter: The name of the adapter it uses in an evaluation (``finetuned``, ``raft``,
            ``raft-random``), None without one.
        family: The advisor family: ``base``, ``rag``, ``fine-tuning`` or ``both``.
        description: One line, for help texts.
    """

    name: str
    retrieves: bool
    adapter_role: str | None
    adapter: str | None
    family: str
    description: str

    @property
    def uses_adapter(self) -> bool:
        """Whether it generates with a fine-tuned adapter."""
        return self.adapter_role is not None

    @property
    def pipeline_strategy(self) -> str:
        """The plain strategy the Pipeline runs it as (the adapter is chosen by name)."""
        return _PLAIN[(self.retrieves, self.uses_adapter)]


_ROWS = (
    Strategy("base", False, None, None, "base", "the model alone"),
    Strategy("rag", True, None, None, "rag", "retrieved sources, base model"),
    Strategy("finetuned", False, "plain", "finetuned", "fine-tuning", "the fine-tuned adapter"),
    Strategy("rag+finetuned", True, "plain", "finetuned", "both", "sources and the adapter"),
    Strategy("raft", False, "raft", "raft", "fine-tuning", "a RAFT adapter, no sources"),
    Strategy("raft+rag", True, "raft", "raft", "both", "sources and a RAFT adapter"),
    Strategy(
        "raft-random+rag",
        True,
        "raft",
        "raft-random",
        "both",
        "sources and a RAFT adapter trained with random distractors",
    ),
)
_PLAIN = {(False, False): "base", (True, False): "rag", (False, True): "finetuned"}
_PLAIN[(True, True)] = "rag+finetuned"

#: Every strategy by name, in the order of the table.
STRATEGIES: dict[str, Strategy] = {row.name: row for row in _ROWS}
#: The strategies a Pipeline (and the server) answers with.
PIPELINE_STRATEGIES: tuple[str, ...] = tuple(
    name for name, row in STRATEGIES.items() if row.adapter_role in (None, "plain")
)
#: The strategies an evaluation compares unless told otherwise.
DEFAULT_EVAL_STRATEGIES: tuple[str, ...] = ("base", "rag", "finetuned", "rag+finetuned", "raft+rag")


def get_strategy(name: str, allowed: tuple[str, ...] | None = None) -> Strategy:
    """The row of strategy ``name``.

    Args:
        name: A strategy name.
        allowed: The names accepted here (default: every strategy).

    Raises:
        ConfigError: If ``name`` is not one of ``allowed``.
    """
    names = allowed if allowed is not None else tuple(STRATEGIES)
    if name not in names:
        raise ConfigError(f"Unknown strategy {name!r}; choose one of {', '.join(names)}.")
    return STRATEGIES[name]


#: The answer modes an evaluated strategy may name after ``@`` (``rag@extract``).
EVAL_ANSWER_MODES = ("generate", "extract")


def split_strategy(name: str) -> tuple[Strategy, str | None]:
    """An evaluated strategy's row and answer mode: ``rag@extract`` -> (rag, ``extract``).

    Without ``@`` the mode is None (the pipeline's own). A mode applies to strategies that
    retrieve: it is how the answer is made from the sources.

    Raises:
        ConfigError: For an unknown strategy or mode, or a mode on a strategy without sources.
    """
    base, at, mode = name.partition("@")
    row = get_strategy(base)
    if not at:
        return row, None
    if mode not in EVAL_ANSWER_MODES:
        raise ConfigError(
            f"Unknown answer mode {mode!r} in strategy {name!r}; write "
            f"{' or '.join(f'{base}@{m}' for m in EVAL_ANSWER_MODES)}."
        )
    if not row.retrieves:
        raise ConfigError(
            f"Strategy {name!r}: an answer mode applies to strategies that retrieve; "
            f"{base!r} shows the model no source. Write {base!r} alone."
        )
    return row, mode


__all__ = [
    "ADAPTER_ROLES",
    "DEFAULT_EVAL_STRATEGIES",
    "EVAL_ANSWER_MODES",
    "FAMILIES",
    "PIPELINE_STRATEGIES",
    "STRATEGIES",
    "Strategy",
    "get_strategy",
    "split_strategy",
]
