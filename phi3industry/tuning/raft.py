"""RAFT training data from the live index.

RAFT (Zhang et al. 2024, "RAFT: Adapting Language Model to Domain Specific RAG"): for each
training question the model is shown numbered sources, exactly as the
:class:`~phi3industry.pipeline.Pipeline` shows them at answer time: the oracle chunk (the
one that supports the answer) plus ``D`` distractors, shuffled. With probability
``1 - p_oracle`` the oracle is left out, so that the model also learns the domain and does
not come to trust whatever it is shown. The target answer quotes the supporting passage,
cites it as ``[n]``, and ends with the final answer.

Distractors are *hard negatives* by default: the Retriever's own top hits for the question
that are not the oracle, i.e. what the deployed retriever will really put next to the
answer. ``distractors="random"`` draws random chunks instead, as in the RAFT paper.

Example:
    >>> from phi3industry import Retriever, Tuner, TunerConfig
    >>> from phi3industry.tuning.raft import make_raft_examples
    >>> retriever = Retriever.open("kb-index")  # doctest: +SKIP
    >>> examples = make_raft_examples(retriever, "qa_train.jsonl")  # doctest: +SKIP
    >>> records = [ex.to_record() for ex in examples]  # doctest: +SKIP
    >>> Tuner(TunerConfig(model="smollm2-135m-instruct")).train(records)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.pipeline.prompt import DEFAULT_SYSTEM_PROMPT, format_source, question_message
from phi3industry.qa import QAItem, answer_recall, load_qa, source_matches, token_f1
from phi3industry.retrieval.search import Hit

if TYPE_CHECKING:
    from phi3industry.retrieval.index import Retriever

DISTRACTOR_KINDS = ("hard", "random")
_MIN_DOCUMENT_TOKENS = 48  # below this a trimmed source says too little to learn from
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class RaftExample:
    """One RAFT training example.

    Attributes:
        question: The training question.
        answer: Its reference answer.
        oracle: The chunk that supports the answer.
        oracle_kept: Whether the oracle is among :attr:`documents`.
        documents: The sources shown to the model, in the order shown (``[n]`` is
            ``documents[n - 1]``).
        target: The answer the model learns to give.
        messages: The chat conversation (system, user with sources, assistant = target).
    """

    question: str
    answer: str
    oracle: Hit
    oracle_kept: bool
    documents: list[Hit]
    target: str
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def oracle_position(self) -> int | None:
        """1-based position of the oracle among the documents, None when left out."""
        for n, doc in enumerate(self.documents, 1):
            if doc.id == self.oracle.id:
                return n
        return None

    @property
    def distractors(self) -> list[Hit]:
        """The documents that are not the oracle."""
        return [doc for doc in self.documents if doc.id != self.oracle.id]

    def to_record(self) -> dict[str, Any]:
        """Return the chat-format record the :class:`~phi3industry.tuning.Tuner` trains on."""
        return {"messages": [dict(m) for m in self.messages]}


def supporting_quote(passage: str, answer: str, max_chars: int = 300) -> str:
    """Return the passage's sentence(s) that best support ``answer`` (at most ``max_chars``).

    The sentence with the best token F1 against the answer is taken, and the next sentence
    is added while the answer's words are not yet covered and the length allows.
    """
    sentences = [" ".join(s.split()) for s in _SENTENCE.split(passage) if s and s.strip()]
    if not sentences:
        return ""
    best = max(range(len(sentences)), key=lambda i: token_f1(sentences[i], answer))
    quote = sentences[best]
    nxt = best + 1
    while (
        nxt < len(sentences)
        and answer_recall(quote, answer) < 0.8
        and len(quote) + 1 + len(sentences[nxt]) <= max_chars
        and answer_recall(quote + " " + sentences[nxt], answer) > answer_recall(quote, answer)
    ):
        quote += " " + sentences[nxt]
        nxt += 1
    if len(quote) > max_chars:
        cut = quote[:max_chars].rsplit(" ", 1)[0]
        quote = cut + " ..."
    return quote


def raft_target(answer: str, quote: str | None, n: int | None) -> str:
    """The target answer: quote the supporting source ``[n]``, then the final answer.

    Without the oracle (``n`` None) the target is the final answer alone: there is no
    source to quote, and citing one that does not hold the answer would teach false citations.
    """
    if n is None or not quote:
        return f"Answer: {answer}"
    return f'Source [{n}] says: "{quote}"\n\nAnswer: {answer} [{n}]'


def qa_triples(data: Any) -> list[tuple[str, str, list[str]]]:
    """``(question, answer, gold sources)`` from QA items, QA rows or chat records.

    Args:
        data: A JSONL file, or a list of :class:`~phi3industry.qa.QAItem`, QA rows
            (``question``/``answer``/``sources``) or chat records (``messages``: the last user
            turn is the question, the last assistant turn the answer).

    Raises:
        DataFormatError: For a missing file, bad JSON, or a row in neither format.
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise DataFormatError(f"RAFT training data not found: {path}.")
        rows: list[Any] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise DataFormatError(f"{path.name} row {n}: not valid JSON: {exc}.") from exc
        data = rows
    out: list[tuple[str, str, list[str]]] = []
    for i, row in enumerate(data):
        if isinstance(row, QAItem):
            out.append((row.question, row.answer, list(row.sources)))
        elif isinstance(row, dict) and "messages" in row:
            msgs = row["messages"]
            users = [m.get("content", "") for m in msgs if m.get("role") == "user"]
            answers = [m.get("content", "") for m in msgs if m.get("role") == "assistant"]
            if not users or not answers:
                raise DataFormatError(
                    f"row {i}: field 'messages' needs a 'user' question and an 'assistant' answer."
                )
            out.append((users[-1], answers[-1], []))
        else:
            item = load_qa([row])[0]
            out.append((item.question, item.answer, list(item.sources)))
    return out


class _Corpus:
    """Every chunk of the index, in a stable order (for oracle lookup and random draws)."""

    def __init__(self, retriever: Retriever) -> None:
        self.hits = sorted(retriever.iter_chunks(), key=lambda h: h.id)
        self.by_id = {h.id: h for h in self.hits}


def _overlaps(a: Hit, b: Hit) -> bool:
    if a.id == b.id or " ".join(a.text.split()) == " ".join(b.text.split()):
        return True
    return a.source == b.source and a.span[0] < b.span[1] and b.span[0] < a.span[1]


def find_oracle(
    retriever: Retriever,
    question: str,
    answer: str,
    sources: Sequence[str] = (),
    *,
    corpus: _Corpus | None = None,
    fetch_k: int = 20,
    min_overlap: float = 0.5,
    question_hits: Sequence[Hit] | None = None,
) -> Hit | None:
    """Find the chunk that supports ``answer``.

    A gold chunk id in ``sources`` is taken as is. Otherwise the candidates are the
    retriever's hits for the question and for question + answer (restricted to the gold
    documents when ``sources`` names documents, and all their chunks if none is hit); the
    one containing the largest share of the answer's words wins.

    Args:
        retriever: The index.
        question: The training question.
        answer: Its reference answer.
        sources: Gold chunk ids or document paths, if known.
        corpus: The index's chunks, when already read.
        fetch_k: Hits searched per query.
        min_overlap: Share of the answer's words the oracle must contain.
        question_hits: The retriever's hits for ``question``, when already searched.

    Returns:
        The oracle chunk, or None if no candidate contains ``min_overlap`` of the answer.
    """
    corpus = corpus or _Corpus(retriever)
    for src in sources:
        if src in corpus.by_id:
            return corpus.by_id[src]
    candidates = list(question_hits) if question_hits is not None else []
    queries = [f"{question} {answer}"] + ([] if question_hits is not None else [question])
    for query in queries:
        candidates += retriever.search(query, k=fetch_k, hybrid=False, mmr=False, min_score=-1.0)
    if sources:
        in_gold = [h for h in candidates if any(source_matches(g, h.id, h.source) for g in sources)]
        if not in_gold:
            in_gold = [
                h for h in corpus.hits if any(source_matches(g, h.id, h.source) for g in sources)
            ]
        candidates = in_gold
    best: Hit | None = None
    best_score = -1.0
    for hit in candidates:
        score = answer_recall(hit.text, answer)
        if score > best_score:
            best, best_score = hit, score
    if best is None or best_score < min_overlap:
        return None
    return corpus.by_id.get(best.id, best)


def _token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _fit_text(text: str, max_tokens: int, tokenizer: Any, keep: str | None = None) -> str:
    """At most ``max_tokens`` tokens of ``text``: its start, or a window around ``keep``.

    The window starts a little before the first words of ``keep`` (the supporting quote), so
    that a trimmed oracle still holds what the target answer quotes.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(ids) <= max_tokens:
        return text
    if max_tokens <= 0:
        return ""
    first = 0
    words = (keep or "").split()[:6]
    found = re.search(r"\s+".join(map(re.escape, words)), text) if words else None
    if found is not None:
        anchor = next((i for i, (a, _) in enumerate(offsets) if a >= found.start()), 0)
        first = max(0, min(anchor - max_tokens // 8, len(ids) - max_tokens))
    last = first + max_tokens - 1
    return text[offsets[first][0] : offsets[last][1]]


def _fit_documents(
    documents: list[Hit],
    budget: int,
    tokenizer: Any,
    oracle: Hit,
    quote: str | None,
) -> list[Hit]:
    """Trim the shown documents to ``budget`` tokens of source blocks, shared equally."""
    blocks = [format_source(n, d) for n, d in enumerate(documents, 1)]
    if not documents or sum(_token_count(tokenizer, b) + 1 for b in blocks) <= budget:
        return documents
    share = budget // len(documents)
    fitted = []
    for n, doc in enumerate(documents, 1):
        empty = format_source(n, dataclasses.replace(doc, text=""))
        room = share - _token_count(tokenizer, empty) - 2
        keep = quote if doc.id == oracle.id else None
        text = _fit_text(doc.text, room, tokenizer, keep)
        if text != doc.text:
            doc = dataclasses.replace(doc, text=text, metadata={**doc.metadata, "trimmed": True})
        fitted.append(doc)
    return fitted


def make_raft_examples(
    retriever: Retriever,
    data: Any,
    *,
    n_distractors: int = 3,
    p_oracle: float = 0.8,
    distractors: str = "hard",
    fetch_k: int = 20,
    seed: int = 0,
    system_prompt: str | None = None,
    max_quote_chars: int = 300,
    min_oracle_overlap: float = 0.5,
    tokenizer: Any = None,
    context_tokens: int | None = None,
    max_length: int | None = None,
) -> list[RaftExample]:
    """Build RAFT examples for training questions from the live index.

    Args:
        retriever: The index the deployed pipeline retrieves from.
        data: Training questions: a QA file (``question``/``answer``/``sources``), a chat
            JSONL file (``{"messages": [...]}``, last user turn = question, last assistant
            turn = answer), or a list of :class:`~phi3industry.evaluation.QAItem` / rows.
        n_distractors: Distractors ``D`` per example.
        p_oracle: Probability ``P`` that the oracle is among the documents.
        distractors: ``"hard"`` (the retriever's top non-oracle hits for the question) or
            ``"random"`` (random non-oracle chunks, as in the RAFT paper).
        fetch_k: Hits searched for oracle candidates and hard negatives.
        seed: Seed of the oracle draw, random distractors and shuffling.
        system_prompt: System message (default: the Pipeline's).
        max_quote_chars: Longest quote in the target answer.
        min_oracle_overlap: Share of the answer's words the oracle must contain; questions
            without such a chunk are skipped (with a warning).
        tokenizer: The tuned model's tokenizer (``models.load_tokenizer``); needed by
            ``context_tokens`` and ``max_length``.
        context_tokens: Token budget of the source blocks, as the Pipeline's
            ``context_tokens`` at answer time: longer documents are trimmed to equal shares
            (the oracle around its supporting quote).
        max_length: The Tuner's ``max_length``: the budget is lowered further so that the
            whole conversation (system, sources, question, target) fits, and no example is
            cut or dropped in training.

    Returns:
        One example per question whose oracle was found.

    Raises:
        ConfigError: For a bad ``n_distractors``, ``p_oracle`` or ``distractors``.
        DataFormatError: For malformed data, or when no question has an oracle.
    """
    if not isinstance(n_distractors, int) or n_distractors < 0:
        raise ConfigError(f"n_distractors must be an integer >= 0, got {n_distractors!r}.")
    if not 0.0 <= float(p_oracle) <= 1.0:
        raise ConfigError(f"p_oracle must be in [0, 1], got {p_oracle!r}.")
    if distractors not in DISTRACTOR_KINDS:
        raise ConfigError(
            f"distractors must be one of {', '.join(DISTRACTOR_KINDS)}, got {distractors!r}."
        )
    if (context_tokens is not None or max_length is not None) and tokenizer is None:
        raise ConfigError(
            "context_tokens and max_length need the tuned model's tokenizer: pass "
            "tokenizer=phi3industry.models.load_tokenizer(MODEL)."
        )
    items = qa_triples(data)
    corpus = _Corpus(retriever)
    rng = random.Random(seed)
    system = system_prompt or DEFAULT_SYSTEM_PROMPT
    examples: list[RaftExample] = []
    skipped: list[str] = []
    for question, answer, sources in items:
        # One search for the question serves both the oracle lookup and the hard negatives.
        hits = None
        if distractors == "hard" and n_distractors > 0:
            hits = retriever.search(
                question, k=max(fetch_k, n_distractors + 4), hybrid=False, mmr=False, min_score=-1.0
            )
        oracle = find_oracle(
            retriever,
            question,
            answer,
            sources,
            corpus=corpus,
            fetch_k=fetch_k,
            min_overlap=min_oracle_overlap,
            question_hits=hits,
        )
        if oracle is None:
            skipped.append(question)
            continue
        chosen = _distractors(corpus, hits or [], oracle, n_distractors, rng)
        kept = rng.random() < p_oracle
        documents = ([oracle] if kept else []) + chosen
        rng.shuffle(documents)
        n = next((i for i, d in enumerate(documents, 1) if d.id == oracle.id), None)
        quote = supporting_quote(oracle.text, answer, max_quote_chars) if n else None
        target = raft_target(answer, quote, n)
        if tokenizer is not None:
            budget = context_tokens if context_tokens is not None else 1 << 30
            if max_length is not None:
                fixed = tokenizer.apply_chat_template(
                    [
                        {"role": "system", "content": system},
                        {"role": "user", "content": question_message(question, ["x"])},
                        {"role": "assistant", "content": target},
                    ],
                    tokenize=False,
                )
                budget = min(budget, max_length - _token_count(tokenizer, fixed) - 8)
            if documents and budget < _MIN_DOCUMENT_TOKENS * len(documents):
                raise ConfigError(
                    f"RAFT: only {budget} tokens are left for {len(documents)} source(s) of "
                    f"{question!r}; raise max_length / context_tokens or lower n_distractors."
                )
            documents = _fit_documents(documents, budget, tokenizer, oracle, quote)
        blocks = [format_source(i, doc) for i, doc in enumerate(documents, 1)]
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": question_message(question, blocks)},
            {"role": "assistant", "content": target},
        ]
        examples.append(RaftExample(question, answer, oracle, kept, documents, target, messages))
    if skipped:
        warnings.warn(
            f"RAFT: no chunk of the index supports the answer of {len(skipped)} of "
            f"{len(items)} questions (e.g. {skipped[0]!r}); they were skipped.",
            stacklevel=2,
        )
    if not examples:
        raise DataFormatError(
            "RAFT: no training question has a supporting chunk in the index; check that the "
            "index holds the documents the answers come from."
        )
    return examples


def _distractors(
    corpus: _Corpus, hits: Sequence[Hit], oracle: Hit, n: int, rng: random.Random
) -> list[Hit]:
    """Pick ``n`` distractors: the first ``hits`` that do not overlap the oracle or each other.

    Random chunks top them up (all are random when ``hits`` is empty).
    """
    chosen: list[Hit] = []
    for hit in hits:
        if len(chosen) == n:
            break
        if not _overlaps(hit, oracle) and all(not _overlaps(hit, c) for c in chosen):
            chosen.append(corpus.by_id.get(hit.id, hit))
    need = n - len(chosen)
    if need > 0:
        taken = {h.id for h in chosen}
        pool = [h for h in corpus.hits if h.id not in taken and not _overlaps(h, oracle)]
        chosen += rng.sample(pool, min(need, len(pool)))
    return chosen


def raft_records(retriever: Retriever, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Return chat-format RAFT records (``{"messages": [...]}``) for the Tuner.

    See :func:`make_raft_examples` for the arguments.
    """
    return [ex.to_record() for ex in make_raft_examples(retriever, data, **kwargs)]


def write_raft_jsonl(examples: Iterable[RaftExample], path: str | Path) -> Path:
    """Write RAFT examples as chat JSONL (the Tuner reads it), one record per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(ex.to_record(), ensure_ascii=False) for ex in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


__all__ = [
    "DISTRACTOR_KINDS",
    "RaftExample",
    "find_oracle",
    "make_raft_examples",
    "raft_records",
    "raft_target",
    "supporting_quote",
    "write_raft_jsonl",
]
