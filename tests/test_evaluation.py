"""Evaluation: metrics against hand-computed cases, bootstrap CIs, QA validation, the report,
and a small end-to-end evaluate() on the sample knowledge base."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.evaluation.config import EvalConfig
from phi3industry.evaluation.evaluate import evaluate, final_answer
from phi3industry.evaluation.metrics import (
    bootstrap_ci,
    citation_precision,
    mrr,
    paired_comparison,
    recall_at_k,
    rouge_l,
)
from phi3industry.evaluation.questions import generate_qa, parse_generated_qa
from phi3industry.evaluation.report import Report
from phi3industry.qa import QAItem, exact_match, load_qa, split_qa, token_f1

SAMPLE_KB = Path(__file__).resolve().parents[1] / "phi3industry" / "assets" / "sample_kb"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


# -- answer metrics -----------------------------------------------------------------------


def test_exact_match_normalizes_case_punctuation_and_articles() -> None:
    assert exact_match("The Cat!", "cat") == 1.0
    assert exact_match("a  cat", ["dog", "the cat"]) == 1.0
    assert exact_match("cats", "cat") == 0.0


def test_token_f1_hand_computed() -> None:
    # pred {cat, sat} vs gold {cat, sat, on, mat}: P = 1, R = 1/2, F1 = 2/3
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0
    # the best of several acceptable answers counts
    assert token_f1("450 kg", ["four hundred fifty kilograms", "450 kg"]) == 1.0
    assert token_f1("", "") == 1.0


def test_rouge_l_hand_computed() -> None:
    # LCS = 5 of 5 predicted and 6 reference tokens: F = 2 * 1 * 5/6 / (1 + 5/6) = 10/11
    assert rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    assert rouge_l("nothing shared", "the cat sat") == 0.0


def test_final_answer_takes_the_answer_line_without_citations() -> None:
    raft = 'Source [2] says: "The payload is 450 kg."\n\nAnswer: 450 kg [2]'
    assert final_answer(raft) == "450 kg"
    assert final_answer("It is 450 kg [1][3].") == "It is 450 kg."
    assert final_answer("No answer line here [Source 1]") == "No answer line here"


# -- retrieval metrics ----------------------------------------------------------------------

RANKED = [("c1", "/kb/docs/a.md"), ("c2", "/kb/docs/b.md"), ("c3", "/kb/docs/c.md")]


def test_recall_at_k_and_mrr_hand_computed() -> None:
    gold = ["docs/c.md", "docs/d.md"]
    assert recall_at_k(RANKED, gold, k=2) == 0.0
    assert recall_at_k(RANKED, gold, k=3) == 0.5
    assert mrr(RANKED, gold) == pytest.approx(1 / 3)
    assert mrr(RANKED, ["docs/b.md"]) == 0.5
    assert mrr(RANKED, ["docs/zzz.md"]) == 0.0


def test_gold_paths_match_at_path_boundaries_and_chunk_ids() -> None:
    assert recall_at_k([("x", "/kb/docs/aa.md")], ["docs/a.md"], k=1) == 0.0
    assert recall_at_k([("x", "/kb/docs/a.md")], ["./docs/a.md"], k=1) == 1.0
    assert recall_at_k(RANKED, ["c2"], k=2) == 1.0  # a chunk id
    assert mrr([("c7,c8", "/kb/x.md")], ["c8"]) == 1.0  # a merged hit lists its ids


def test_citation_precision_hand_computed() -> None:
    assert citation_precision(RANKED[:2], ["docs/a.md"]) == 0.5
    assert citation_precision(RANKED[:1], ["docs/a.md"]) == 1.0
    assert citation_precision([], ["docs/a.md"]) is None


# -- uncertainty ----------------------------------------------------------------------------


def test_bootstrap_ci_sanity() -> None:
    const = bootstrap_ci([0.5] * 20)
    assert (const.mean, const.low, const.high, const.n) == (0.5, 0.5, 0.5, 20)
    coin = [float(i % 2) for i in range(200)]
    est = bootstrap_ci(coin, seed=3)
    assert est.low < 0.5 < est.high
    assert 0.08 < est.high - est.low < 0.2  # ~ 2 * 1.96 * sqrt(.25 / 200) = 0.139
    assert bootstrap_ci(coin, seed=3) == est  # seeded: reproducible
    assert bootstrap_ci(coin[:20], seed=3).high - bootstrap_ci(coin[:20], seed=3).low > (
        est.high - est.low
    )  # fewer questions, wider interval
    skipped = bootstrap_ci([1.0, None, 0.0])
    assert skipped.n == 2 and skipped.mean == 0.5
    empty = bootstrap_ci([None])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_paired_comparison() -> None:
    a = [0.1 * (i % 5) for i in range(30)]
    better = paired_comparison("a", a, "b", [x + 0.5 for x in a], "token_f1")
    assert better.diff.mean == pytest.approx(0.5)
    assert (better.wins, better.ties, better.losses) == (30, 0, 0)
    assert better.significant and better.p_value < 0.01
    same = paired_comparison("a", a, "b", list(a), "token_f1")
    assert not same.significant and same.p_value == 1.0 and same.ties == 30
    with pytest.raises(ValueError, match="equal lengths"):
        paired_comparison("a", [1.0], "b", [1.0, 2.0], "token_f1")


# -- QA sets --------------------------------------------------------------------------------


def test_load_sample_questions() -> None:
    items = load_qa(SAMPLE_KB / "questions.jsonl")
    assert len(items) == 13
    assert items[0].answers == ["450 kg"] and items[0].sources == ["docs/specs/ar7-spec.txt"]
    assert len(load_qa(SAMPLE_KB / "questions.jsonl", limit=2)) == 2


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ('{"question": "Q?"}', r"qa.jsonl row 1: missing field 'answer'"),
        ('{"question": "  ", "answer": "a"}', r"row 1: field 'question' must be a non-empty"),
        ('{"question": "Q?", "answer": []}', r"row 1: field 'answer' is empty"),
        ('{"question": "Q?", "answer": 3}', r"row 1: field 'answer' must be a string or a list"),
        ('{"question": "Q?", "answer": "a", "sources": 5}', r"row 1: field 'sources' must be"),
        ('{"question": "Q?", "answer": "a", "anser": "b"}', r"row 1: unknown field\(s\) 'anser'"),
        ('{"question": "Q?", "answer": "a"}\n{bad json', r"qa.jsonl row 2: not valid JSON"),
        (
            '{"question": "Same?", "answer": "a"}\n{"question": "same", "answer": "b"}',
            r"row 2: field 'question' repeats the question of qa.jsonl row 1",
        ),
        ("[1, 2]", r"row 1: a QA row must be an object"),
    ],
)
def test_qa_file_validation_errors(tmp_path: Path, lines: str, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        load_qa(_write(tmp_path, "qa.jsonl", lines + "\n"))


def test_qa_csv_rows_lists_and_errors(tmp_path: Path) -> None:
    good = _write(
        tmp_path,
        "qa.csv",
        'question,answer,sources\nWhat?,"[""a"", ""b""]",docs/x.md;docs/y.md\n',
    )
    item = load_qa(good)[0]
    assert item.answers == ["a", "b"] and item.sources == ["docs/x.md", "docs/y.md"]
    bad = _write(tmp_path, "bad.csv", "question,answer\nWhat?,ok\nWhy?,\n")
    with pytest.raises(DataFormatError, match=r"bad.csv row 3: missing field 'answer'"):
        load_qa(bad)


def test_qa_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="QA file not found"):
        load_qa(tmp_path / "nope.jsonl")
    with pytest.raises(DataFormatError, match="unknown extension"):
        load_qa(_write(tmp_path, "qa.txt", "hello"))
    with pytest.raises(DataFormatError, match="QA set is empty"):
        load_qa(_write(tmp_path, "empty.jsonl", "\n"))
    rows = [{"question": "Q?", "answer": "A"}]
    assert load_qa(rows)[0].answer == "A"


def test_split_qa_is_disjoint_and_holds_out() -> None:
    items = [QAItem(f"Question {i}?", ["a"]) for i in range(10)]
    train, held = split_qa(items, 0.3, seed=1)
    assert len(held) == 3 and len(train) == 7
    assert not {i.question for i in train} & {i.question for i in held}
    assert split_qa(items, 0.3, seed=1) == (train, held)


def test_parse_generated_qa() -> None:
    assert parse_generated_qa("Question: What is the payload?\nAnswer: 450 kg\nextra") == (
        "What is the payload?",
        "450 kg",
    )
    assert parse_generated_qa("Here is a question about robots.") is None
    assert parse_generated_qa("Question: no question mark\nAnswer: x") is None


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategies": ["rag", "magic"]}, "Unknown strategy 'magic'"),
        (
            {"strategies": ["rag@quote"]},
            r"Unknown answer mode 'quote'.*rag@generate or rag@extract",
        ),
        ({"strategies": ["base@extract"]}, "an answer mode applies to strategies that retrieve"),
        ({"judge_base_url": "http://127.0.0.1:9/v1"}, "judge_base_url and judge_model go together"),
        ({"strategies": []}, "strategies must be a non-empty list"),
        ({"strategies": ["rag", "rag"]}, "lists a strategy twice"),
        ({"pipeline": {"k": 0}}, r"In EvalConfig.pipeline: k must be a positive integer"),
        ({"pipeline": {"max_new_tokens": -1}}, "max_new_tokens must be a positive integer"),
        ({"heldout_fraction": 1.0}, "heldout_fraction must be between 0 and 1"),
        ({"raft_p_oracle": 1.5}, r"raft_p_oracle must be in \[0, 1\]"),
        ({"raft_distractors": -1}, "raft_distractors must be an integer >= 0"),
        ({"raft_distractor_type": "easy"}, "raft_distractor_type must be one of hard, random"),
        ({"n_bootstrap": 10}, "n_bootstrap must be at least 100"),
        ({"max_questions": 0}, "max_questions must be a positive integer or unset"),
        ({"tuner": {"max_length": 8}}, "max_length must be at least 16"),
        ({"tuner": {"learning_rate": 0}}, "learning_rate must be positive"),
        ({"tuner": {"lora_r": 0}}, "lora_r must be a positive integer"),
        ({"qa_base_url": "localhost:8000"}, "qa_base_url must start with http"),
        ({"pipeline": {"index": "kb"}}, "pipeline.index is not used by an evaluation"),
        (
            {"pipeline": {"model": "tiny-phi3"}, "tuner": {"model": "smollm2-135m-instruct"}},
            "pipeline.model .* and tuner.model .* differ",
        ),
        ({"retriever": {"path": "a", "host": "h"}}, "takes one of 'path'"),
    ],
)
def test_eval_config_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EvalConfig.from_dict(kwargs)


@pytest.mark.parametrize(
    ("key", "place"),
    [
        ("k", "pipeline.k"),
        ("model", "pipeline.model"),
        ("chunk_size", "retriever.chunk_size"),
        ("index", "retriever.path"),
        ("train_max_length", "tuner.max_length"),
        ("answer_batch_size", "pipeline.batch_size"),
    ],
)
def test_old_flat_eval_keys_name_their_new_place(key: str, place: str) -> None:
    with pytest.raises(ConfigError, match=rf"EvalConfig setting '{key}' has moved: set {place}"):
        EvalConfig.from_dict({key: 1})


def test_one_model_is_answered_with_and_tuned() -> None:
    by_pipeline = EvalConfig.from_dict({"pipeline": {"model": "tiny-phi3"}})
    assert by_pipeline.tuner.model == "tiny-phi3" == by_pipeline.model
    by_tuner = EvalConfig.from_dict({"tuner": {"model": "tiny-phi3"}})
    assert by_tuner.pipeline.model == "tiny-phi3"
    # one default per setting: what the eval does not set is the component's own default
    from phi3industry.pipeline import PipelineConfig
    from phi3industry.tuning import TunerConfig

    cfg = EvalConfig()
    assert cfg.pipeline.context_tokens == PipelineConfig().context_tokens
    assert cfg.tuner.learning_rate == TunerConfig().learning_rate


def test_eval_config_yaml_and_roles(tmp_path: Path) -> None:
    cfg = EvalConfig(strategies="base,rag,raft+rag", docs="a,b")  # type: ignore[arg-type]
    assert cfg.strategies == ["base", "rag", "raft+rag"] and cfg.docs == ["a", "b"]
    assert cfg.adapter_roles == ["raft"]
    cfg.to_yaml(tmp_path / "eval.yaml")
    assert EvalConfig.from_yaml(tmp_path / "eval.yaml") == cfg
    example = Path(__file__).resolve().parents[1] / "examples" / "eval-sample-kb.yaml"
    loaded = EvalConfig.from_yaml(example)
    assert loaded.model == "smollm2-135m-instruct" == loaded.tuner.model
    assert loaded.pipeline.k == 2 and loaded.tuner.max_steps == 6
    with pytest.raises(ConfigError, match="Did you mean 'strategies'"):
        EvalConfig.from_dict({"strategy": ["rag"]})


# -- with a real index ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, _session_env: None) -> Any:
    from phi3industry import Retriever, RetrieverConfig

    retriever = Retriever(
        RetrieverConfig(path=str(tmp_path_factory.mktemp("eval-kb") / "index"), progress=False)
    )
    retriever.sync([SAMPLE_KB / "docs"])
    return retriever


class _EchoWriter:
    """A deterministic question writer: one grounded reply, one ungrounded, one unparsable."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        from phi3industry.generation import Generation

        self.calls += 1
        passage = messages[-1]["content"].split("Passage:\n", 1)[1]
        words = passage.split()
        replies = [
            f"Question: What does passage {self.calls} say?\nAnswer: {' '.join(words[3:9])}",
            f"Question: What colour is the moon {self.calls}?\nAnswer: purple cheese wheels",
            "I cannot write a question.",
        ]
        text = replies[(self.calls - 1) % 3]
        return Generation(text=text, prompt_tokens=1, completion_tokens=1, finish_reason="stop")


def test_generate_qa_keeps_grounded_questions_with_their_chunk(sample_index: Any) -> None:
    writer = _EchoWriter()
    items = generate_qa(sample_index, writer, n=3, seed=0, progress=False)
    assert 1 <= len(items) <= 3
    assert writer.calls > len(items)  # ungrounded and unparsable replies were dropped
    ids = {h.id for h in sample_index.iter_chunks()}
    for item in items:
        assert "moon" not in item.question
        assert item.sources[0] in ids and item.metadata["generated"]


def _tiny_adapter(base_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=2, lora_alpha=4, target_modules=["qkv_proj", "o_proj"]),
    )
    model.save_pretrained(out)
    return out


def test_evaluate_end_to_end_writes_report(
    sample_index: Any,
    tiny_phi3_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from phi3industry import Pipeline, PipelineConfig

    adapter = _tiny_adapter(tiny_phi3_dir, tmp_path / "adapter")
    pipe = Pipeline(
        retriever=sample_index,
        model="tiny-phi3",
        config=PipelineConfig(
            max_new_tokens=4,
            k=2,
            min_score=None,
            context_tokens=256,
            adapters=[f"finetuned={adapter}", f"raft={adapter}"],
        ),
    )
    qa = load_qa(SAMPLE_KB / "questions.jsonl", limit=2)
    strategies = ["base", "rag", "finetuned", "raft+rag"]
    report = evaluate(pipe, qa, strategies, cache_dir=tmp_path / "runs", n_bootstrap=200)
    assert report.strategies == strategies and report.n_questions == 2
    data = report.to_dict()
    rag = data["strategies"]["rag"]["metrics"]
    for key in ("exact_match", "token_f1", "rouge_l", "recall@k", "mrr", "latency_s"):
        assert key in rag and rag[key]["n"] == 2
    assert 0.0 <= rag["recall@k"]["mean"] <= 1.0
    assert rag["recall@k"]["mean"] == 1.0  # both gold documents are retrieved at k=2
    assert "recall@k" not in data["strategies"]["base"]["metrics"]  # no retrieval, no recall
    # Asked after "rag" had retrieved for the same questions: still no retrieval of its own.
    assert "recall@k" not in data["strategies"]["finetuned"]["metrics"]
    compared = [c["metric"] for c in data["comparisons"]]
    for metric in ("token_f1", "rouge_l", "exact_match", "token_f1_text"):
        assert compared.count(metric) == 6  # 4 strategies: 6 pairs per metric
    assert all(c["p_holm"] >= c["p_value"] for c in data["comparisons"])  # Holm only raises
    for key in ("token_f1_text", "rouge_l_text", "cited", "citation_recall"):
        assert rag[key]["n"] >= 1, key
    assert "groundedness" not in data["strategies"]["base"]["metrics"]
    json.dumps(data)  # JSON-ready

    paths = report.save(tmp_path / "out")
    for name in ("report.json", "report.md", "metrics.png", "latency.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert paths["metrics_chart"].read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| raft+rag |" in markdown and "Paired comparison" in markdown
    again = Report.load(tmp_path / "out" / "report.json")
    assert again.table() == report.table()

    # Resumable: finished strategies are reused, not asked again.
    capsys.readouterr()
    evaluate(pipe, qa, ["base", "rag"], cache_dir=tmp_path / "runs", n_bootstrap=200)
    err = capsys.readouterr().err
    assert "[base] 2 answers reused" in err and "[rag] 2 answers reused" in err


def test_batched_answers_match_one_by_one(sample_index: Any, tiny_phi3_dir: Path) -> None:
    from phi3industry import Pipeline, PipelineConfig

    pipe = Pipeline(
        retriever=sample_index,
        model="tiny-phi3",
        config=PipelineConfig(max_new_tokens=4, k=2, min_score=None, context_tokens=256),
    )
    qa = load_qa(SAMPLE_KB / "questions.jsonl", limit=3)
    single = evaluate(pipe, qa, ["base", "rag"], n_bootstrap=50, progress=False)
    batched = evaluate(pipe, qa, ["base", "rag"], n_bootstrap=50, progress=False, batch_size=3)
    for strategy in ("base", "rag"):
        one = single.results[strategy].records
        together = batched.results[strategy].records
        assert [r["prediction"] for r in together] == [r["prediction"] for r in one]
        assert [r["cited"] for r in together] == [r["cited"] for r in one]
        shares = {r["scores"]["latency_s"] for r in together}
        assert len(shares) == 1 and shares.pop() > 0  # each answer's share of one batch
    assert batched.settings["batch_size"] == 3
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        evaluate(pipe, qa, ["base"], batch_size=0)


def test_evaluate_rejects_strategies_it_cannot_run(sample_index: Any, tiny_phi3_dir: Path) -> None:
    from phi3industry import Pipeline, PipelineConfig

    pipe = Pipeline(model="tiny-phi3", config=PipelineConfig(strategy="base", max_new_tokens=2))
    qa = [QAItem("What is the payload?", ["450 kg"])]
    with pytest.raises(ConfigError, match="Unknown strategy 'magic'"):
        evaluate(pipe, qa, ["magic"])
    with pytest.raises(ConfigError, match="needs the 'finetuned' adapter"):
        evaluate(pipe, qa, ["finetuned"])
    with pytest.raises(ConfigError, match="needs a retriever"):
        evaluate(pipe, qa, ["rag"])


@pytest.mark.slow
def test_sample_kb_eval_smollm2(tmp_path: Path) -> None:
    from phi3industry.evaluation.run import run_eval

    root = Path(__file__).resolve().parents[1]
    cfg = EvalConfig.from_yaml(root / "examples" / "eval-sample-kb.yaml")
    cfg = EvalConfig.from_dict(
        {
            **cfg.to_dict(),
            "output_dir": str(tmp_path / "eval"),
            "docs": [str(SAMPLE_KB / "docs")],
            "qa": str(SAMPLE_KB / "questions.jsonl"),
            "train": [str(SAMPLE_KB / "qa_train.jsonl")],
        }
    )
    report = run_eval(cfg)
    assert (tmp_path / "eval" / "report.md").is_file()
    assert report.metric("rag", "recall@k").mean > 0.5


# -- grounding, answer modes, corrected p-values -------------------------------------------


def test_citation_recall_and_holm_hand_computed() -> None:
    from phi3industry.evaluation.metrics import citation_recall, holm

    cited = [("c1", "/kb/a.md"), ("c2", "/kb/b.md")]
    assert citation_recall(cited, ["a.md"]) == 1.0
    assert citation_recall(cited, ["a.md", "c.md"]) == 0.5
    assert citation_recall([], ["a.md"]) == 0.0
    with pytest.raises(ValueError, match="at least one gold source"):
        citation_recall(cited, [])
    # Holm: sorted p = .01, .03, .04 -> 3 x .01, 2 x .03, max(.06, 1 x .04); order kept.
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.2, 0.3, 0.4, 0.9]) == [0.8, 0.9, 0.9, 0.9]


def test_holm_correction_decides_significance() -> None:
    from dataclasses import replace

    comp = paired_comparison("a", [0.0] * 12, "b", [1.0] * 12, "token_f1", n_resamples=2000)
    assert comp.p_value < 0.05 and comp.significant
    corrected = replace(comp, p_holm=min(1.0, comp.p_value * 200))
    assert not corrected.significant  # 200 comparisons: the same difference is not enough


def test_split_strategy_names_answer_modes() -> None:
    from phi3industry.strategies import split_strategy

    assert split_strategy("rag")[1] is None
    row, mode = split_strategy("raft+rag@generate")
    assert row.name == "raft+rag" and mode == "generate"
    with pytest.raises(ConfigError, match="rag@generate or rag@extract"):
        split_strategy("rag@summarize")
    with pytest.raises(ConfigError, match="applies to strategies that retrieve"):
        split_strategy("finetuned@extract")


def test_evaluate_compares_answer_modes_with_grounding(
    sample_index: Any, tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    from phi3industry import Pipeline, PipelineConfig

    pipe = Pipeline(
        retriever=sample_index,
        model="tiny-phi3",
        config=PipelineConfig(max_new_tokens=6, k=2, min_score=None, context_tokens=256),
    )
    qa = load_qa(SAMPLE_KB / "questions.jsonl", limit=3)
    strategies = ["base", "rag@generate", "rag@extract"]
    report = evaluate(pipe, qa, strategies, cache_dir=tmp_path / "runs", n_bootstrap=200)
    assert report.strategies == strategies
    quoted = report.results["rag@extract"].records
    written = report.results["rag@generate"].records
    assert quoted and written
    assert {r["answer_mode"] for r in quoted} == {"extract"}
    assert {r["answer_mode"] for r in written} == {"generate"}
    for record in quoted:  # a quote is supported by what it quotes, and cites it
        assert record["scores"]["groundedness"] == 1.0 and record["scores"]["cited"] == 1.0
        assert record["claims"] and all(c["quotes"] for c in record["claims"])
    extract = report.results["rag@extract"].metrics
    assert extract["citation_precision"].mean > 0.5 and extract["gold_support"].n >= 1
    # Quoting the gold document scores on its text: better than 6 random tokens.
    assert extract["token_f1"].mean > report.results["rag@generate"].metrics["token_f1"].mean
    comps = [c for c in report.comparisons if c.metric == "token_f1"]
    assert len(comps) == 3 and all(c.p_holm is not None and c.p_holm >= c.p_value for c in comps)
    markdown = report.to_markdown()
    assert "| rag@extract |" in markdown and "p (Holm)" in markdown and "**Grounded**" in markdown
    # The answer mode is part of what is cached: both modes are reused, not confused.
    again = evaluate(pipe, qa, strategies, cache_dir=tmp_path / "runs", n_bootstrap=200)
    assert again.results["rag@extract"].records == quoted


def test_advisor_prefers_the_grounded_strategy_within_noise() -> None:
    from phi3industry.evaluation.advisor import advise
    from phi3industry.evaluation.evaluate import _compare, _summarize

    def records(f1: list[float], grounded: list[float | None]) -> list[dict[str, Any]]:
        return [
            {"scores": {"token_f1": f, "rouge_l": f, "exact_match": 0.0, "groundedness": g}}
            for f, g in zip(f1, grounded, strict=True)
        ]

    results = {
        "finetuned": _summarize("finetuned", records([0.5, 0.2, 0.4, 0.3], [None] * 4), 200, 0),
        "rag@extract": _summarize("rag@extract", records([0.4, 0.3, 0.3, 0.3], [1.0] * 4), 200, 0),
    }
    report = Report(results, _compare(results, 200, 0), 4, 3)
    advice = advise(report=report)
    assert advice.measured is not None and advice.measured["best"] == "rag@extract"
    assert advice.strategy == "rag" and any("better grounded" in n for n in advice.notes)
    assert advice.measured["groundedness"] == {"finetuned": 0.0, "rag@extract": 1.0}


# -- the LLM judge, over a real OpenAI-compatible HTTP endpoint -----------------------------


class _ScriptedEndpoint:
    """A real HTTP server speaking the OpenAI chat API, replying from a script."""

    def __init__(self, replies: list[str]) -> None:
        import http.server
        import threading

        self.replies, self.requests = list(replies), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                text = outer.replies.pop(0) if outer.replies else "no"
                payload = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_parse_verdict_is_strict() -> None:
    from phi3industry.evaluation.judge import parse_verdict

    assert parse_verdict('{"verdict": "correct"}') == 1.0
    assert parse_verdict('```json\n{"verdict": "Partially correct"}\n```') == 0.5
    assert parse_verdict('{"score": 0.25}') == 0.25
    for bad, why in (
        ("correct", "no JSON object"),
        ('{"verdict": "maybe"}', "unknown verdict"),
        ('{"answer": 1}', 'no "verdict"'),
        ("{'verdict': 'correct'}", "invalid JSON"),
        ('{"score": 7}', 'no "verdict"'),
    ):
        with pytest.raises(ValueError, match=why):
            parse_verdict(bad)


def test_judge_retries_caches_and_never_returns_nan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phi3industry.evaluation.judge import Judge

    monkeypatch.setenv("OPENAI_API_KEY", "test")
    endpoint = _ScriptedEndpoint(
        [
            "The answer looks right to me.",  # no JSON: asked again with the error
            '{"verdict": "correct"}',
            "nope",
            "still nope",
            "never",  # three unreadable replies: no verdict (None), never NaN
        ]
    )
    try:
        judge = Judge(endpoint.base_url, "judge-model", cache_dir=tmp_path, retries=2)
        assert judge.score("What is the payload?", ["12 kg"], "It carries 12 kg.") == 1.0
        retry = endpoint.requests[1]["messages"]
        assert retry[-1]["role"] == "user" and "no JSON object" in retry[-1]["content"]
        assert judge.score("What is the speed?", "2 m/s", "Fast.") is None
        assert judge.failures == 1 and len(endpoint.requests) == 5
        # Cached on disk: a new judge does not ask again for a verdict it has.
        again = Judge(endpoint.base_url, "judge-model", cache_dir=tmp_path, retries=2)
        assert again.score("What is the payload?", ["12 kg"], "It carries 12 kg.") == 1.0
        assert len(endpoint.requests) == 5
    finally:
        endpoint.close()


def test_evaluate_with_a_judge_over_http(
    sample_index: Any, tiny_phi3_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phi3industry import Pipeline, PipelineConfig
    from phi3industry.evaluation.judge import Judge

    monkeypatch.setenv("OPENAI_API_KEY", "test")
    endpoint = _ScriptedEndpoint(['{"verdict": "incorrect"}', '{"verdict": "correct"}'])
    try:
        pipe = Pipeline(
            retriever=sample_index,
            model="tiny-phi3",
            config=PipelineConfig(max_new_tokens=4, k=2, min_score=None, context_tokens=256),
        )
        qa = load_qa(SAMPLE_KB / "questions.jsonl", limit=2)
        judge = Judge(endpoint.base_url, "judge-model")
        report = evaluate(pipe, qa, ["rag@extract"], n_bootstrap=100, judge=judge)
        scores = [r["scores"]["judge"] for r in report.results["rag@extract"].records]
        assert scores == [0.0, 1.0]
        assert report.metric("rag@extract", "judge").mean == 0.5
        asked = endpoint.requests[0]["messages"][0]["content"]
        assert qa[0].question in asked and qa[0].answers[0] in asked
    finally:
        endpoint.close()


def test_generate_qa_with_the_bundled_model(sample_index: Any, smollm2_dir: Path) -> None:
    from phi3industry.generation import LocalGenerator
    from phi3industry.qa import answer_recall

    writer = LocalGenerator.from_pretrained(str(smollm2_dir))
    items = generate_qa(sample_index, writer, n=2, seed=0, max_attempts=6, progress=False)
    assert items, "SmolLM2 wrote no grounded question from 6 chunks"
    chunks = {h.id: h for h in sample_index.iter_chunks()}
    for item in items:
        assert item.question.endswith("?") and item.answers[0]
        chunk = chunks[item.sources[0]]
        assert answer_recall(chunk.text, item.answers[0]) >= 0.6
