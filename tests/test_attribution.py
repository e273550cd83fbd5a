"""Attribution: claims, the spans that support them, calibrated on labelled pairs, in answers.

The labelled pairs (tests/data/attribution_pairs.jsonl, built by
bench/make_attribution_pairs.py from the sample knowledge base and the Django FAQ) hold a
held-out part that calibration never saw: the shipped weights are measured on it here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.demo import sample_kb_dir
from phi3industry.errors import ConfigError
from phi3industry.generation import Generation, GenerationChunk
from phi3industry.pipeline.attribution import (
    CALIBRATED,
    CALIBRATION_BATCHES,
    RULES_VERSION,
    Attributor,
    crossed,
    names,
    negated,
    negations,
    other_unit,
    passage_spans,
    quantities,
    split_claims,
)
from phi3industry.pipeline.config import resolve_answer_mode
from phi3industry.qa import content_words, key_terms
from phi3industry.retrieval.embeddings import load_embedder
from phi3industry.retrieval.search import Hit

PAIRS = Path(__file__).parent / "data" / "attribution_pairs.jsonl"
RULES = Path(__file__).parent / "data" / "attribution_rules.json"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def attributor(_session_env: None) -> Attributor:
    return Attributor(load_embedder(backend="onnx-int8").embed_documents)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, _session_env: None) -> Retriever:
    retriever = Retriever(
        RetrieverConfig(path=str(tmp_path_factory.mktemp("attr") / "index"), progress=False)
    )
    retriever.sync([sample_kb_dir() / "docs"])
    return retriever


@pytest.fixture(scope="module")
def pipe(kb: Retriever, tiny_phi3_dir: Path) -> Pipeline:
    return Pipeline(
        retriever=kb,
        model=str(tiny_phi3_dir),
        config=PipelineConfig(k=3, max_new_tokens=4, answer_mode="generate"),
    )


# -- text: claims, spans, key terms -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        (
            "The AR7 carries 450 kg [1]. It runs for 10 h; charging takes 75 min.",
            ["The AR7 carries 450 kg [1].", "It runs for 10 h", "charging takes 75 min."],
        ),
        ("Sure! Thanks.", []),
        ("The answer to your question is:\nRestart the robot.", ["Restart the robot."]),
        ("Answer: 450 kg [1]", ["450 kg [1]"]),
        ("1. Check the dock. 2. Clean the pads.", ["Check the dock.", "Clean the pads."]),
        (
            "E-214 means drive motor over-temperature, and the operator must stop the robot.",
            ["E-214 means drive motor over-temperature", "the operator must stop the robot."],
        ),
        ("Wipe both lidar windows with a dry, lint-free cloth and restart.", None),
    ],
)
def test_split_claims(text: str, claims: list[str] | None) -> None:
    got = [text[a:b] for a, b in split_claims(text)]
    assert got == (claims if claims is not None else [text])


def test_passage_spans_keep_table_rows_apart_and_records_whole() -> None:
    table = "| Item | Warranty |\n| Robot | 24 months |\n| Battery | 12 months |"
    spans = [table[a:b] for a, b in passage_spans(table)]
    assert "| Battery | 12 months |" in spans
    assert not any("Robot" in s and "Battery" in s for s in spans)  # never across rows
    record = "code: E-214\nmessage: Drive motor over-temperature\naction: Let it cool."
    assert record in [record[a:b] for a, b in passage_spans(record)]
    wrapped = "The jog\n   speed is limited to 0.3 m/s. Entering SERVICE mode needs a PIN."
    assert "The jog\n   speed is limited to 0.3 m/s." in [
        wrapped[a:b] for a, b in passage_spans(wrapped)
    ]
    # a sentence's last word wrapped onto a line of its own still ends that sentence; a
    # one-word line after a finished one is an item of its own (a heading, a label)
    tail = "Contact support and quote the policy number\nNR-POL-014.\nSPARE PARTS\nPendant"
    assert [tail[a:b] for a, b in passage_spans(tail)] == [
        "Contact support and quote the policy number\nNR-POL-014.",
        "SPARE PARTS",
        "Pendant",
    ]


def test_key_terms_and_content_words() -> None:
    assert key_terms("E-214 occurs three times; replace NW-SP-2210 (450 kg, 20-80 %).") == {
        "e-214",
        "3",
        "nw-sp-2210",
        "450",
        "20",
        "80",
    }
    assert key_terms("Set SESSION_COOKIE_DOMAIN, not ManyToManyField; press RESUME.") == {
        "session_cookie_domain",
        "manytomanyfield",
        "resume",
    }
    # a code with more after its number is whole, and also its head: AR7-spec is the AR7's
    assert key_terms("Document NW-DOC-AR7-PM; see ar7-spec.") == {
        "nw-doc-ar7-pm",
        "nw-doc-ar7",
        "ar7-spec",
        "ar7",
    }
    assert key_terms("about a dozen tickets") == {"12"}
    # settings keep their value: null=True is not null=False
    assert key_terms("A field set to null=True.") == {"null=true"}
    # forms of a word meet: plural, past tense, -ing, possessive, a final "e"
    assert content_words("The robots stopped at the docks.") == ["robot", "stop", "dock"]
    assert content_words("activate activated activating") == ["activat"] * 3
    assert content_words("the load's running runs run") == ["load", "run", "run", "run"]


def test_a_figure_bound_to_another_code_is_not_support(attributor: Attributor) -> None:
    passage = (
        "The robot weighs each load and refuses missions above 450 kg\n"
        "(error E-810) or with the center of gravity out of limits (error E-811)."
    )
    keys = key_terms("Loads above 450 kg are refused with error E-811.")
    assert crossed(keys, passage)
    assert not crossed(key_terms("Loads above 450 kg are refused with error E-810."), passage)
    right = attributor.score("Loads above 450 kg are refused with error E-810.", [passage])
    wrong = attributor.score("Loads above 450 kg are refused with error E-811.", [passage])
    assert right >= CALIBRATED.threshold > wrong


def test_a_section_number_is_not_a_fact_of_the_section(attributor: Attributor) -> None:
    passage = "Only Level 2 certified technicians may open the battery compartment."
    context = "Safety Policy > 3. Maintenance > 3.1 Battery work"
    claim = "Only Level 3 certified technicians may open the battery compartment."
    assert attributor.score(claim, [passage], [context]) < CALIBRATED.threshold
    same = "Only Level 2 certified technicians may open the battery compartment."
    assert attributor.score(same, [passage], [context]) >= CALIBRATED.threshold


def _supports_only(attributor: Attributor, passages: list[str], right: str, wrong: str) -> None:
    """``passages`` support the ``right`` claim and not the ``wrong`` one."""
    assert attributor.score(right, passages) >= CALIBRATED.threshold
    assert attributor.score(wrong, passages) < CALIBRATED.threshold


ROW_E340 = (
    "code: E-340\nsubsystem: Battery\nseverity: Info\nmessage: Battery below 15 %\n"
    "operator_action: No action needed: the robot drives to the nearest free dock by itself."
)


def test_a_bound_is_not_a_negation_and_a_negation_reaches_its_clause_only(
    attributor: Attributor,
) -> None:
    assert not negated("The breaker is no more than 2 m away.")
    assert negated("The breaker is not on this circuit.")
    assert negated("Explain why the patch doesn't.")  # "n't" before a full stop
    # "No action needed" denies the action, not what the robot does after the colon
    assert negations("No action needed: the robot drives to the nearest free dock.") == (
        frozenset({"action", "need"}),
    )
    # the row's "No action needed" does not make it deny the message two lines above
    assert attributor.score("E-340 means the battery is below 15 %.", [ROW_E340]) >= (
        CALIBRATED.threshold
    )
    assert (
        attributor.score(
            "The dock needs its own 16 A circuit, with the breaker no more than 2 m away.",
            ["- A dedicated 16 A circuit with its own breaker, within 2 m of the dock."],
        )
        >= CALIBRATED.threshold
    )
    # a negation about the claim's subject still counts against it
    claim = "Quiet mode switches the status ring off."
    denied = "Quiet mode mutes the beeper; the status ring is not switched off."
    said = "Quiet mode mutes the beeper; the status ring is switched off."
    # (it lowers the score; with every other word shared it does not refuse support alone:
    # docs/grounding.md, "What is still missed")
    assert attributor.score(claim, [denied]) < attributor.score(claim, [said]) - 0.1


def test_a_figure_with_another_unit_is_not_support(attributor: Attributor) -> None:
    assert quantities("A 4-hour course, renewed every 12 months; 24/7 support.") == {
        ("4", "h"),
        ("12", "month"),
    }
    assert other_unit(frozenset({("12", "h")}), {("12", "month")})
    assert not other_unit(frozenset({("12", "h")}), {("12", "h"), ("12", "month")})
    assert not other_unit(frozenset({("24", "h")}), set())  # a bare figure does not conflict
    _supports_only(
        attributor,
        ["The Northwind Safe Operator certificate must be renewed every 12 months."],
        right="The Safe Operator certificate is renewed every 12 months.",
        wrong="The Safe Operator certificate is renewed every 12 hours.",
    )


def test_a_name_the_source_does_not_hold_is_not_support(attributor: Attributor) -> None:
    assert names("Parts ship from Seattle, said Northwind.") == {"seattl", "northwind"}
    assert names("Seattle ships parts.") == set()  # the first word of a sentence is no name
    _supports_only(
        attributor,
        ["Stocked spare parts ship from Tacoma within 2 business days."],
        right="Spare parts ship from Tacoma within 2 business days.",
        wrong="Spare parts ship from Seattle within 2 business days.",
    )


def test_two_sources_do_not_lend_a_code_another_rows_words(attributor: Attributor) -> None:
    e230 = (
        "code: E-230\nsubsystem: Drive\nseverity: Critical\nmessage: Brake release failure\n"
        "operator_action: Apply lockout/tagout and call a Level 2 certified technician."
    )
    e214 = (
        "code: E-214\nsubsystem: Drive\nseverity: Warning\n"
        "message: Drive motor over-temperature\n"
        "operator_action: Let the robot cool for 15 minutes before resuming."
    )
    _supports_only(
        attributor,
        [e230, e214],
        right="E-214 means the drive motor is over temperature.",
        wrong="E-230 means the drive motor is over temperature.",
    )
    # two sources that together hold a claim still support it when neither is another row's
    merged = "E-230 calls for a Level 2 technician, and the AR7's rear panel has a key switch."
    panel = "The AR7 has a key switch and a power button on the rear panel."
    assert attributor.score(merged, [e230, panel]) >= CALIBRATED.threshold


def test_a_table_rows_columns_are_named_by_its_header(attributor: Attributor) -> None:
    table = (
        "| Product | Part number | What it does |\n|---|---|---|\n"
        "| AR7 robot | NW-AR7-0450 | Autonomous mobile robot |\n"
        "| CD-2 charging dock | NW-CD2-1000 | Automatic contact charging |"
    )
    claim = "The AR7's part number is NW-AR7-0450."
    assert attributor.score(claim, [table]) >= CALIBRATED.threshold
    # the header names the columns; it does not move a row's values to another row
    wrong = "The AR7's part number is NW-CD2-1000."
    assert attributor.score(wrong, [table]) < CALIBRATED.threshold


def test_a_figure_is_support_only_in_a_clause_about_the_same_thing(
    attributor: Attributor,
) -> None:
    spec = (
        "PERFORMANCE\n"
        "  Maximum speed ........... 2.0 m/s unloaded, 1.5 m/s at full payload\n"
        "  Acceleration ............ up to 0.8 m/s2; braking up to 1.2 m/s2"
    )
    _supports_only(
        attributor,
        [spec],
        right="It brakes at up to 1.2 m/s2.",
        wrong="It brakes at up to 0.8 m/s2.",
    )
    assert attributor.score("It accelerates at up to 0.8 m/s2.", [spec]) >= CALIBRATED.threshold
    about = (
        "Northwind employs about 240 people and has installed more than 3,100 robots "
        "at 180 customer sites."
    )
    _supports_only(
        attributor,
        [about],
        right="Northwind has about 240 employees.",
        wrong="Northwind employs about 3,100 people.",
    )
    # a table row binds its figures by its columns, whatever words its cells hold
    versions = "Django version | Python versions\n3.2 | 3.6, 3.7, 3.8, 3.9, 3.10 (added in 3.2.9)"
    assert attributor.score("Django 3.2 supports Python 3.10.", [versions]) >= CALIBRATED.threshold


# -- the labelled pairs ---------------------------------------------------------------------------


def _pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line]


def test_the_labelled_pairs_cover_the_hard_cases() -> None:
    pairs = _pairs()
    assert len(pairs) >= 150
    kinds = {p["kind"] for p in pairs}
    assert {
        "wrong-row",
        "paraphrase",
        "merged",
        "contradiction",
        "other-passage",
        "recombined",
    } <= kinds
    heldout = [p for p in pairs if p["split"] == "heldout"]
    assert len(heldout) >= 40
    assert {p["corpus"] for p in heldout} == {"sample-kb", "django", "sqlite", "debian"}
    # claims taken from real answers of the bundled model, labelled by hand
    model = [p for p in pairs if p["kind"] == "model-answer"]
    assert len(model) >= 100 and {p["supported"] for p in model} == {True, False}
    # held out by passage: calibration never sees a held-out passage
    held_ids = {p["passage_ids"][0] for p in heldout if len(p["passage_ids"]) == 1}
    train_ids = {i for p in pairs if p["split"] == "train" for i in p["passage_ids"]}
    assert held_ids and not held_ids & train_ids


def test_a_sentence_quoted_from_its_source_is_supported_by_it(attributor: Attributor) -> None:
    """Every rule that can refuse support (names, units, other rows, negations) lets the
    source's own words through: each sentence of every labelled passage, as a claim.

    Left out: a label ("D-04") and a sentence made of its topic's words alone (a FAQ's
    heading: its title's words count half, so that echoing the question is no answer).
    One known miss: the first clause of "Other 1000 software suites are available as Debian
    packages, but are not formally part of Debian ...", whose negated second clause shares
    the topic word "Debian" with it (ignoring the context's words there cost a train pair).
    """
    passages = {t: c for p in _pairs() for t, c in zip(p["passages"], p["contexts"], strict=True)}
    claims = [
        (text[a:b], text, context)
        for text, context in passages.items()
        for a, b in split_claims(text)
        if len(content_words(text[a:b])) >= 2
        and not set(content_words(text[a:b])) <= set(content_words(context))
    ]
    assert len(claims) > 500
    refused = [
        claim
        for claim, text, context in claims
        if attributor.score(claim, [text], [context]) < CALIBRATED.threshold
    ]
    assert refused == ["Other 1000 software suites are available as Debian packages"], refused


def _flat(texts: list[str]) -> np.ndarray:
    """One vector for every text: the rules' signals without the embedder's (cosine)."""
    return np.full((len(texts), 4), 0.5, dtype=np.float32)


def _rules_digest(attributor: Attributor, pair: dict[str, Any]) -> str:
    """What the rules make of a labelled pair: its claims, spans and rule signals."""
    claim, spans = attributor.prepare(pair["claim"], pair["passages"], pair["contexts"])
    seen = [
        split_claims(pair["claim"]),
        [(s.n, s.start, s.end, sorted(s.codes), sorted(s.context)) for s in spans],
        [[round(f, 6) for f in Attributor.features(claim, [s])[1:]] for s in spans],
        [round(f, 6) for f in Attributor.features(claim, spans)[1:]],
    ]
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]


def _pair_key(pair: dict[str, Any]) -> str:
    text = "\n".join([pair["claim"], *pair["passage_ids"]])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_a_change_in_the_rules_raises_rules_version() -> None:
    """An evaluation's cached answers are rescored only when RULES_VERSION changes, so a
    change in what the rules make of the labelled pairs must come with a new version.

    Refresh the record after raising it:
    ``PHI3I_REFRESH_RULES=1 pytest tests/test_attribution.py -k rules_version``.
    """
    attributor = Attributor(_flat)
    digests = {_pair_key(p): _rules_digest(attributor, p) for p in _pairs()}
    if os.environ.get("PHI3I_REFRESH_RULES"):
        record = {"rules": RULES_VERSION, "pairs": digests}
        RULES.write_text(json.dumps(record, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    stored = json.loads(RULES.read_text(encoding="utf-8"))
    common = digests.keys() & stored["pairs"].keys()
    assert len(common) >= 500, "the record lost its pairs: refresh it (see the docstring)"
    changed = [k for k in common if digests[k] != stored["pairs"][k]]
    if stored["rules"] != RULES_VERSION:
        pytest.fail(f"RULES_VERSION is {RULES_VERSION}: refresh the record (see the docstring)")
    assert not changed, (
        f"the rules changed for {len(changed)} labelled pairs: raise RULES_VERSION "
        "(phi3industry/pipeline/attribution.py), then refresh the record (see the docstring)"
    )


def test_calibrated_attribution_on_held_out_pairs(attributor: Attributor) -> None:
    heldout = [p for p in _pairs() if p["split"] == "heldout"]
    assert heldout
    scores = [attributor.score(p["claim"], p["passages"], p["contexts"]) for p in heldout]
    predicted = [s >= CALIBRATED.threshold for s in scores]
    truth = [p["supported"] for p in heldout]
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    precision, recall = tp / sum(predicted), tp / sum(truth)
    f1 = 2 * precision * recall / (precision + recall)
    # 0.851 on the 280 held-out pairs with the shipped weights (0.886 on the 204 of the
    # batches they were fitted on; docs/grounding.md); the misses are contradictions,
    # recombinations of the passage's own words, the model's own wrong answers, and (batch
    # 12) vague true sentences of the model's answers in other words than the passage's.
    assert f1 >= 0.845, (precision, recall, f1)
    wrong_row = [s for s, p in zip(scores, heldout, strict=True) if p["kind"] == "wrong-row"]
    assert wrong_row and all(s < CALIBRATED.threshold for s in wrong_row)


def test_calibrated_attribution_on_the_batches_written_after_the_fit(
    attributor: Attributor,
) -> None:
    """The pairs of batches the shipped weights were not fitted on, train and held-out:
    claims from the bundled model's real answers to the SQLite and Debian FAQs and about the
    sample knowledge base, mostly wrong (174 of 207).
    """
    later = [p for p in _pairs() if p["batch"] not in CALIBRATION_BATCHES]
    assert len(later) >= 50
    predicted = [
        attributor.score(p["claim"], p["passages"], p["contexts"]) >= CALIBRATED.threshold
        for p in later
    ]
    truth = [p["supported"] for p in later]
    right = sum(p == t for p, t in zip(predicted, truth, strict=True))
    wrongly_supported = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    # accuracy 0.884 (SQLite 0.806, sample knowledge base 0.938, Debian 0.908); 12 of the
    # 174 wrong claims pass, most of them the source's own words with the negation flipped
    # ("No, SQLite does not support foreign keys"):
    # docs/grounding.md, "What is still missed"
    assert right / len(later) >= 0.84, (right, len(later))
    assert wrongly_supported <= 0.15 * (len(truth) - sum(truth)), wrongly_supported


# -- in answers ---------------------------------------------------------------------------------


def _answer(pipe: Pipeline, question: str, text: str, **overrides: Any) -> Any:
    if overrides:
        import dataclasses

        pipe = Pipeline(
            retriever=pipe.retriever,
            model=pipe.generator,
            config=dataclasses.replace(pipe.config, **overrides),
        )
    state = pipe._prompt_chain.invoke({"question": question, "strategy": "rag"})
    return pipe.finish(state, Generation(text, "stop", 10, 5))


def test_the_unfinished_sentence_of_a_cut_answer_is_not_a_claim(pipe: Pipeline) -> None:
    state = pipe._prompt_chain.invoke({"question": "What does E-214 mean?", "strategy": "rag"})
    text = "E-214 means the drive motor is over temperature. The error code"
    cut = pipe.finish(state, Generation(text, "length", 10, 5))
    assert [c.text for c in cut.claims] == ["E-214 means the drive motor is over temperature."]
    assert cut.claims[0].supported and cut.grounded == 1.0
    assert "The error code [" not in cut.cited_text()
    # A finished answer keeps every sentence; so does a cut one whose last sentence ended.
    whole = pipe.finish(state, Generation(text, "stop", 10, 5))
    assert [c.text for c in whole.claims][-1] == "The error code"
    ended = pipe.finish(state, Generation(text + " is E-214.", "length", 10, 5))
    assert len(ended.claims) == 2


def test_a_claim_in_the_sources_is_cited_with_its_quote(pipe: Pipeline) -> None:
    answer = _answer(
        pipe,
        "What does error E-214 mean?",
        "E-214 means the drive motor is over temperature. Let it cool for 15 minutes.",
    )
    assert answer.claims and all(c.supported for c in answer.claims)
    assert answer.grounded == 1.0 and answer.citations
    rows = [h for h in answer.citations if h.source.endswith("error-codes.csv")]
    assert rows, [h.source for h in answer.citations]
    quote = answer.claims[0].quotes[0]
    document = (sample_kb_dir() / "docs/support/error-codes.csv").read_text()
    assert "E-214" in quote.text and quote.start < quote.end
    # the offsets are the document's: the loader's text of the CSV holds the quote there
    from phi3industry.retrieval.documents import load_document

    loaded = load_document(sample_kb_dir() / "docs/support/error-codes.csv").text
    assert loaded[quote.start : quote.end] == quote.text and "E-214" in document
    formatted = answer.format()
    assert "[1]" in formatted.splitlines()[0] or "[2]" in formatted.splitlines()[0]
    assert f'"{" ".join(quote.text.split())}"' in formatted


def test_the_wrong_rows_claim_is_flagged_not_cited(pipe: Pipeline) -> None:
    # E-214's code with E-102's meaning: the demo's failure of an earlier session
    answer = _answer(
        pipe,
        "What does error E-214 mean?",
        "E-214 means the safety lidar communication was lost [1].",
        min_support=0.5,
    )
    assert [c.supported for c in answer.claims] == [False]
    assert answer.citations == [] and answer.grounded == 0.0 and answer.flagged
    assert answer.unsupported_markers == [1]
    assert "low support: 0 of 1" in answer.format()
    abstained = _answer(
        pipe,
        "What does error E-214 mean?",
        "E-214 means the safety lidar communication was lost [1].",
        min_support=0.5,
        low_support="abstain",
    )
    assert abstained.abstained and abstained.text == pipe.config.abstain_message


def test_an_answer_below_min_support_can_be_replaced_by_a_quote(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    question, wrong = "What does error E-214 mean?", "E-214 means the safety lidar was lost."
    quoted = _answer(pipe, question, wrong, min_support=0.5, low_support="extract")
    assert quoted.quoted_instead and quoted.flagged and quoted.mode == "extract"
    assert quoted.text != wrong and "E-214" in quoted.text  # E-214's own row, quoted
    assert quoted.grounded == 1.0 and quoted.finish_reason == "stop"
    assert [c.source.rsplit("/", 1)[-1] for c in quoted.citations] == ["error-codes.csv"]
    assert "quoted from the sources instead" in quoted.format()
    assert quoted.to_dict()["quoted_instead"] is True
    # a supported answer is kept as the model wrote it
    right = "E-214 means the drive motor is over temperature."
    kept = _answer(pipe, question, right, min_support=0.5, low_support="extract")
    assert kept.text == right and kept.mode == "generate" and not kept.quoted_instead
    # an answer that asserts nothing has no support either
    empty = _answer(pipe, question, "The answer is:", min_support=0.5, low_support="extract")
    assert empty.quoted_instead and empty.grounded == 1.0 and empty.citations
    # streamed, the text may be replaced, so it comes whole: the deltas are the quote
    monkeypatch.setattr(
        pipe.generator,
        "stream",
        lambda messages, **kw: iter(
            [GenerationChunk("", generation=Generation(wrong, "stop", 9, 7))]
        ),
    )
    monkeypatch.setattr(
        pipe.generator, "generate", lambda messages, **kw: Generation(wrong, "stop", 9, 7)
    )
    import dataclasses

    policy = dataclasses.replace(pipe.config, min_support=0.5, low_support="extract")
    streaming = Pipeline(retriever=pipe.retriever, model=pipe.generator, config=policy)
    chunks = list(streaming.stream(question))
    assert "".join(c.text for c in chunks[:-1]) == quoted.text
    assert chunks[-1].last and chunks[-1].grounded == 1.0 and chunks[-1].citations


def test_a_model_marker_is_kept_only_when_its_source_supports_it(pipe: Pipeline) -> None:
    answer = _answer(
        pipe,
        "What is the maximum payload of the AR7?",
        "The maximum payload of the AR7 is 450 kg [3].",
    )
    claim = answer.claims[0]
    assert claim.supported and claim.markers == [3]
    assert [answer.sources[n - 1].source.rsplit("/", 1)[-1] for n in claim.sources] == [
        "ar7-spec.txt"
    ]
    assert not answer.sources[2].source.endswith("ar7-spec.txt")  # [3] named another one
    assert claim.unsupported_markers == [3] and answer.unsupported_markers == [3]
    assert answer.cited_text() == "The maximum payload of the AR7 is 450 kg [1]."


def test_an_extract_is_never_a_lead_in(attributor: Attributor) -> None:
    """A line that announces an answer ("use this command:") does not hold it: the quote is
    the line that does, though the lead-in shares more of the question's words."""
    text = (
        "To clear error E-214 on the AR7, use this command:\n\nfleetctl clear --code E-214 --robot"
    )
    hit = Hit(
        text=text, score=1.0, source="kb/e214.md", section=None, span=(100, 100 + len(text)), id="a"
    )
    quote = attributor.extract("How do I clear error E-214 on the AR7?", [hit])
    assert quote is not None and quote.text.startswith("fleetctl clear")
    assert (quote.start, quote.end) == (100 + text.index("fleetctl"), 100 + len(text))


def test_extractive_answers_quote_the_sources(kb: Retriever, tiny_phi3_dir: Path) -> None:
    pipe = Pipeline(
        retriever=kb,
        model=str(tiny_phi3_dir),
        config=PipelineConfig(k=3, answer_mode="extract"),
    )
    answer = pipe.invoke("What restocking fee applies when returning an unused product?")
    assert answer.mode == "extract" and answer.usage["completion_tokens"] == 0
    assert "15 %" in answer.text and answer.grounded == 1.0
    assert answer.citations and answer.citations[0].source.endswith("returns-policy.md")
    chunks = list(pipe.stream("What restocking fee applies when returning an unused product?"))
    total = functools.reduce(operator.add, chunks)
    assert total.text == answer.text and total.claims and total.citations
    assert pipe.invoke("Say hi.", strategy="base").mode == "generate"  # no sources: generate


def test_streaming_carries_claims_and_citations_in_the_last_chunk(
    pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = "What does error E-214 mean?"
    # tiny-phi3 (random weights) is cut at 4 tokens: an unfinished sentence, no claims; the
    # last chunk still says what invoke says.
    chunks = list(pipe.stream(question))
    invoked = pipe.invoke(question)
    assert chunks[-1].last and chunks[-1].finish_reason == invoked.finish_reason == "length"
    assert chunks[-1].claims == invoked.claims and chunks[-1].grounded == invoked.grounded
    # A finished answer, streamed in pieces: its claims, quotes and citations come last.
    text = "E-214 means the drive motor is over temperature. Let it cool for 15 minutes."

    def stream(messages: Any, **kwargs: Any) -> Any:
        pieces = text.split(" ")
        for i, word in enumerate(pieces):
            yield GenerationChunk(word + (" " if i + 1 < len(pieces) else ""))
        yield GenerationChunk("", generation=Generation(text, "stop", 10, len(pieces)))

    monkeypatch.setattr(pipe.generator, "stream", stream)
    chunks = list(pipe.stream(question))
    assert "".join(c.text for c in chunks[:-1]) == text
    closing = chunks[-1]
    assert closing.last and closing.grounded == 1.0 and len(closing.claims) == 2
    assert all(c.quotes for c in closing.claims) and closing.citations


def test_answer_modes_resolve_per_model() -> None:
    assert resolve_answer_mode("auto", "smollm2-135m-instruct") == "extract"
    assert resolve_answer_mode("auto", "/cache/models/SmolLM2-135M-Instruct.Q4_1-ffc4") == "extract"
    assert resolve_answer_mode("auto", "phi-3-mini-4k-instruct") == "generate"
    assert resolve_answer_mode("generate", "smollm2-135m-instruct") == "generate"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"answer_mode": "quote"}, "answer_mode must be one of auto, generate, extract"),
        ({"min_support": 1.5}, "min_support must be between 0 and 1"),
        ({"low_support": "drop"}, "low_support must be one of flag, abstain, extract"),
        ({"min_support": 0.5, "attribution": False}, "min_support needs attribution"),
    ],
)
def test_answer_policy_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PipelineConfig(**kwargs)
