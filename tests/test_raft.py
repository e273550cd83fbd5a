"""RAFT records from a real index: oracle kept at rate P, distractors never the oracle,
positions shuffled, hard negatives from the retriever's own hits, Tuner-ready records."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _corpus import TOPICS

from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.qa import QAItem
from phi3industry.tuning.raft import (
    find_oracle,
    make_raft_examples,
    raft_records,
    raft_target,
    supporting_quote,
    write_raft_jsonl,
)

DOCS = {
    **TOPICS,
    "battery.md": (
        "# Battery\n\nThe AR7 robot uses a 48 V lithium battery pack. A full charge takes "
        "75 minutes on the CD-2 dock.\n\n## Error E4711\n\nError code E4711 means the battery "
        "pack overheated. Let it cool for thirty minutes before charging again.\n"
    ),
    "speed.md": "# Speed\n\nIn shared zones robots drive at most 1.0 m/s near people.\n",
}
QA = [
    QAItem("What does error E4711 mean?", ["the battery pack overheated"], ["battery.md"]),
    QAItem("How long can unused parts be returned?", ["within 30 days of delivery"]),
    QAItem("What Wi-Fi band does the robot use?", ["the 5 GHz band"], ["network.md"]),
]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, _session_env: None) -> Any:
    from phi3industry import Retriever, RetrieverConfig

    root = tmp_path_factory.mktemp("raft-kb")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    retriever = Retriever(
        RetrieverConfig(path=str(root / "index"), chunk_size=32, chunk_overlap=0, progress=False)
    )
    retriever.sync([docs])
    return retriever


def test_find_oracle_holds_the_answer(index: Any) -> None:
    for item in QA:
        oracle = find_oracle(index, item.question, item.answer, item.sources)
        assert oracle is not None
        assert item.answer.split()[-1] in oracle.text
    assert find_oracle(index, "What is love?", "baby don't hurt me no more") is None
    chunk = next(iter(index.iter_chunks()))
    assert find_oracle(index, "anything?", "x", [chunk.id]).id == chunk.id  # a gold chunk id


def test_oracle_kept_at_rate_p_and_positions_shuffled(index: Any) -> None:
    oracle = find_oracle(index, QA[0].question, QA[0].answer, QA[0].sources)
    items = [QAItem(f"{QA[0].question} ({i})", QA[0].answers, [oracle.id]) for i in range(300)]
    examples = make_raft_examples(
        index, items, n_distractors=3, p_oracle=0.7, distractors="random", seed=1
    )
    assert len(examples) == 300
    rate = sum(e.oracle_kept for e in examples) / len(examples)
    assert abs(rate - 0.7) < 0.1  # binomial sd = 0.026
    positions = Counter(e.oracle_position for e in examples if e.oracle_kept)
    assert set(positions) == {1, 2, 3, 4}  # shuffled: the oracle is not always first
    assert min(positions.values()) > 0.1 * sum(positions.values())
    for e in examples:
        assert e.oracle_kept == (e.oracle_position is not None)
        assert len(e.documents) == 4 if e.oracle_kept else len(e.documents) == 3
        ids = [d.id for d in e.documents]
        assert len(set(ids)) == len(ids)
        assert all(d.id != e.oracle.id and d.text != e.oracle.text for d in e.distractors)


@pytest.mark.parametrize("p_oracle", [0.0, 1.0])
def test_p_oracle_extremes(index: Any, p_oracle: float) -> None:
    examples = make_raft_examples(index, QA, n_distractors=2, p_oracle=p_oracle, seed=0)
    assert all(e.oracle_kept == bool(p_oracle) for e in examples)


def test_hard_negatives_are_the_retrievers_top_non_oracle_hits(index: Any) -> None:
    examples = make_raft_examples(index, QA, n_distractors=2, p_oracle=1.0, seed=0)
    assert len(examples) == len(QA)
    for e in examples:
        # make_raft_examples draws its hard distractors from dense search (hybrid=False)
        top = [h.id for h in index.search(e.question, k=6, hybrid=False, min_score=-1.0)]
        distractor_ids = [d.id for d in e.distractors]
        assert len(distractor_ids) == 2 and e.oracle.id not in distractor_ids
        assert set(distractor_ids) <= set(top)
        # the best-ranked non-oracle hits, in rank order
        expected = [cid for cid in top if cid != e.oracle.id][:2]
        assert sorted(distractor_ids) == sorted(expected)


def test_target_quotes_the_oracle_and_ends_with_the_answer(index: Any) -> None:
    examples = make_raft_examples(index, QA, n_distractors=2, p_oracle=1.0, seed=0)
    for e in examples:
        n = e.oracle_position
        assert n is not None
        assert e.target.endswith(f"Answer: {e.answer} [{n}]")
        quote = e.target.split('"')[1]
        assert quote in " ".join(e.oracle.text.split())
        user = e.messages[1]["content"]
        assert f'<source id="{n}"' in user and user.rstrip().endswith(f"Question: {e.question}")
        assert [m["role"] for m in e.messages] == ["system", "user", "assistant"]
    dropped = make_raft_examples(index, QA[:1], n_distractors=2, p_oracle=0.0, seed=0)[0]
    assert dropped.target == f"Answer: {QA[0].answer}" and "[" not in dropped.target


def test_records_are_tuner_training_data(index: Any, tmp_path: Path) -> None:
    from phi3industry.tuning.data import load_examples

    records = raft_records(index, QA, n_distractors=1, seed=0)
    assert all(set(r) == {"messages"} for r in records)
    assert len(load_examples(records)) == len(QA)
    path = write_raft_jsonl(make_raft_examples(index, QA, seed=0), tmp_path / "raft.jsonl")
    assert len(load_examples(path)) == len(QA)


def test_chat_records_as_input(index: Any, tmp_path: Path) -> None:
    chat = [
        {
            "messages": [
                {"role": "user", "content": "Which button must be pressed first?"},
                {"role": "assistant", "content": "The red emergency stop button."},
            ]
        }
    ]
    example = make_raft_examples(index, chat, n_distractors=1, p_oracle=1.0)[0]
    assert "emergency stop" in example.oracle.text


def test_unsupported_questions_are_skipped_with_a_warning(index: Any) -> None:
    bad = [*QA[:1], QAItem("What is love?", ["baby don't hurt me no more"])]
    with pytest.warns(UserWarning, match="1 of 2 questions"):
        examples = make_raft_examples(index, bad, seed=0)
    assert len(examples) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataFormatError, match="no training question has a supporting chunk"):
            make_raft_examples(index, bad[1:], seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_distractors": -1}, "n_distractors must be an integer >= 0"),
        ({"p_oracle": 1.2}, r"p_oracle must be in \[0, 1\]"),
        ({"distractors": "easy"}, "distractors must be one of hard, random"),
    ],
)
def test_bad_settings(index: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_raft_examples(index, QA, **kwargs)


def test_supporting_quote_and_target() -> None:
    passage = "The dock is blue. Error E4711 means the pack overheated. Call support."
    assert supporting_quote(passage, "the pack overheated") == (
        "Error E4711 means the pack overheated."
    )
    assert len(supporting_quote("word " * 200, "word", max_chars=50)) <= 54
    assert raft_target("42", "It is 42.", 3) == 'Source [3] says: "It is 42."\n\nAnswer: 42 [3]'
    assert raft_target("42", None, None) == "Answer: 42"


def test_sources_fit_the_context_budget_and_keep_the_quote(index: Any) -> None:
    from phi3industry.models import phi3_tokenizer

    tok = phi3_tokenizer()
    full = make_raft_examples(index, QA, n_distractors=1, p_oracle=1.0, seed=0)
    fitted = make_raft_examples(
        index, QA, n_distractors=1, p_oracle=1.0, seed=0, tokenizer=tok, context_tokens=110
    )
    assert any(d.metadata.get("trimmed") for e in fitted for d in e.documents)
    for long, short in zip(full, fitted, strict=True):
        blocks = short.messages[1]["content"].split("<sources>\n")[1].split("\n</sources>")[0]
        assert len(tok(blocks, add_special_tokens=False)["input_ids"]) <= 110 + 2
        assert [d.id for d in short.documents] == [d.id for d in long.documents]
        assert short.target == long.target
        n = short.oracle_position
        assert n is not None
        quote = short.target.split('"')[1].removesuffix(" ...")
        shown = " ".join(short.documents[n - 1].text.split())
        assert quote[:40] in shown  # the trimmed oracle still holds what the target quotes


def test_whole_conversation_fits_max_length(index: Any) -> None:
    from phi3industry.models import phi3_tokenizer

    tok = phi3_tokenizer()
    for e in make_raft_examples(index, QA, n_distractors=1, seed=0, tokenizer=tok, max_length=320):
        text = tok.apply_chat_template(e.messages, tokenize=False)
        assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 320
    with pytest.raises(ConfigError, match="tokens are left for"):
        make_raft_examples(index, QA, n_distractors=2, seed=0, tokenizer=tok, max_length=200)
    with pytest.raises(ConfigError, match="need the tuned model's tokenizer"):
        make_raft_examples(index, QA, context_tokens=100)
