"""Training data: formats, validation with row numbers, chat template masking, packing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phi3industry.errors import DataFormatError
from phi3industry.tuning.data import (
    IGNORE_INDEX,
    Example,
    PackedCollator,
    build_rows,
    detect_format,
    load_examples,
    pack_examples,
    split_examples,
    tokenize_example,
)

CHAT = {
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the Zorblax flux valve?"},
        {"role": "assistant", "content": "A pressure valve for cryo lines."},
        {"role": "user", "content": "Torque?"},
        {"role": "assistant", "content": "Twelve newton metres."},
    ]
}


@pytest.fixture(scope="module")
def phi3_tok(session_cache: Path) -> Any:
    from phi3industry.models import phi3_tokenizer

    with pytest.MonkeyPatch.context() as mp:  # module scope: before the autouse env fixture
        mp.setenv("PHI3INDUSTRY_CACHE", str(session_cache))
        return phi3_tokenizer()


@pytest.mark.parametrize(
    ("row", "fmt"),
    [
        (CHAT, "messages"),
        ({"prompt": "p", "completion": "c"}, "prompt_completion"),
        ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
        (
            {"conversations": [{"from": "human", "value": "h"}, {"from": "gpt", "value": "g"}]},
            "sharegpt",
        ),
        ({"text": "raw"}, "text"),
        ({"question": "q"}, None),
    ],
)
def test_detect_format(row: dict[str, Any], fmt: str | None) -> None:
    assert detect_format(row) == fmt


def test_every_format_becomes_chat_messages() -> None:
    rows = [
        {"prompt": "Q1", "completion": "A1"},
        {"instruction": "Translate", "input": "hallo", "output": "hello"},
        {
            "conversations": [
                {"from": "system", "value": "S"},
                {"from": "human", "value": "Q"},
                {"from": "gpt", "value": "A"},
            ]
        },
        {"text": "Raw domain text."},
    ]
    ex = load_examples(rows)
    assert ex[0].messages == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
    ]
    assert ex[1].messages[0]["content"] == "Translate\n\nhallo"
    assert [m["role"] for m in ex[2].messages] == ["system", "user", "assistant"]
    assert not ex[3].is_chat and ex[3].text == "Raw domain text."


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"messages": []}', r"qa\.jsonl line 2: field 'messages' must be a non-empty list"),
        ('{"messages": [{"role": "user"}]}', r"line 2: messages\[0\] has no 'content'"),
        ('{"messages": [{"content": "x"}]}', r"line 2: messages\[0\] has no 'role'"),
        (
            '{"messages": [{"role": "bot", "content": "x"}]}',
            r"line 2: messages\[0\] has role 'bot'",
        ),
        ('{"messages": [{"role": "user", "content": "x"}]}', r"line 2: .*no non-empty 'assistant'"),
        (
            '{"messages": [{"role": "assistant", "content": "x"}]}',
            r"line 2: .*starts with an 'assistant'",
        ),
        (
            '{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}',
            r"line 2: field 'messages\[0\]\.content' must be a string",
        ),
        ('{"prompt": "", "completion": "c"}', r"line 2: field 'prompt' is empty"),
        ('{"prompt": "p", "completion": 5}', r"line 2: field 'completion' must be a string"),
        ('{"instruction": "i", "output": ""}', r"line 2: field 'output' is empty"),
        (
            '{"instruction": "i", "input": 3, "output": "o"}',
            r"line 2: field 'input' must be a string",
        ),
        (
            '{"conversations": [{"from": "alien", "value": "x"}]}',
            r"line 2: conversations\[0\] has 'from' 'alien'",
        ),
        (
            '{"conversations": [{"value": "x"}]}',
            r"line 2: conversations\[0\] must have 'from' and 'value'",
        ),
        ('{"conversations": "nope"}', r"line 2: field 'conversations' must be a non-empty list"),
        ('{"text": ""}', r"line 2: field 'text' is empty"),
        (
            '{"question": "q", "answer": "a"}',
            r"line 2: unknown row format with fields \['answer', 'question'\]",
        ),
        ("[1, 2]", r"line 2: expected an object"),
        ("{not json", r"qa\.jsonl line 2: not valid JSON"),
    ],
)
def test_bad_jsonl_row_names_line_and_field(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "completion": "fine"}) + "\n" + line + "\n")
    with pytest.raises(DataFormatError, match=match):
        load_examples(path)


def test_bad_csv_row_and_sources(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("instruction,input,output\nDo x,,done\nDo y,,\n")
    with pytest.raises(DataFormatError, match=r"a\.csv row 2: field 'output' is empty"):
        load_examples(tmp_path / "a.csv")
    with pytest.raises(DataFormatError, match="Training data not found"):
        load_examples(tmp_path / "missing.jsonl")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(DataFormatError, match=r"Cannot parse PDF .*x\.pdf"):
        load_examples(tmp_path / "x.pdf")
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(DataFormatError, match=r"unsupported file type '\.docx'; use .*\.pdf"):
        load_examples(tmp_path / "x.docx")
    with pytest.raises(DataFormatError, match="empty list"):
        load_examples([])
    with pytest.raises(DataFormatError, match="Cannot read training data of type int"):
        load_examples(3)
    (tmp_path / "d.json").write_text('{"rows": 1}')
    with pytest.raises(DataFormatError, match="must hold a list of rows"):
        load_examples(tmp_path / "d.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="no training data found"):
        load_examples(empty)


def test_directory_mixes_rows_and_documents(tmp_path: Path) -> None:
    (tmp_path / "qa.jsonl").write_text(json.dumps(CHAT) + "\n")
    (tmp_path / "guide.md").write_text("# Guide\n\nThe flux valve is torqued to 12 Nm.\n")
    (tmp_path / "page.html").write_text("<html><script>x=1</script><p>Cryo line SOP.</p></html>")
    (tmp_path / "parts.csv").write_text("part,price\nvalve,12\n")  # a KB table, not training rows
    ex = load_examples(tmp_path)
    texts = sorted(e.text for e in ex if not e.is_chat)
    assert texts == [
        "# Guide\n\nThe flux valve is torqued to 12 Nm.",
        "Cryo line SOP.",
        "part: valve\nprice: 12",  # rendered as ingest renders a CSV record
    ]
    assert sum(e.is_chat for e in ex) == 1


def test_dataset_rows_are_validated() -> None:
    import datasets

    ds = datasets.Dataset.from_list(
        [{"prompt": "p", "completion": "c"}, {"prompt": "p", "completion": ""}]
    )
    with pytest.raises(DataFormatError, match="dataset row 1: field 'completion' is empty"):
        load_examples(ds)


def test_split_is_seeded_and_disjoint() -> None:
    ex = [Example(text=f"t{i}") for i in range(20)]
    train, held = split_examples(ex, 0.1, seed=3)
    assert len(held) == 2 and len(train) == 18
    assert {e.text for e in train}.isdisjoint(e.text for e in held)
    assert split_examples(ex, 0.1, seed=3)[1] == held


def test_prompt_tokens_are_masked_and_end_token_learned(phi3_tok: Any) -> None:
    (ex,) = load_examples([CHAT])
    (tok,) = tokenize_example(ex, phi3_tok, max_length=512)
    learned = [i for i, lab in zip(tok.input_ids, tok.labels, strict=True) if lab != IGNORE_INDEX]
    end_id = phi3_tok.convert_tokens_to_ids("<|end|>")
    text = phi3_tok.decode(learned)
    assert "pressure valve for cryo lines" in text and "Twelve newton metres" in text
    assert "Zorblax" not in text and "Torque" not in text and "Answer briefly" not in text
    assert phi3_tok.convert_tokens_to_ids("<|user|>") not in learned
    assert phi3_tok.convert_tokens_to_ids("<|assistant|>") not in learned
    assert learned.count(end_id) == 2  # each answer ends with <|end|>, which the model must learn
    # completion_only_loss=False: everything is learned.
    (full,) = tokenize_example(ex, phi3_tok, max_length=512, completion_only_loss=False)
    assert full.labels == full.input_ids


def test_raw_text_is_split_and_ends_with_eos(phi3_tok: Any) -> None:
    text = " ".join(["word"] * 100)
    pieces = tokenize_example(Example(text=text), phi3_tok, max_length=32)
    assert all(len(p.input_ids) <= 32 for p in pieces)
    assert pieces[-1].input_ids[-1] == phi3_tok.eos_token_id
    assert sum(len(p.input_ids) for p in pieces) == len(phi3_tok(text)["input_ids"]) + 1


def test_long_prompt_is_dropped_with_warning(phi3_tok: Any) -> None:
    ex = load_examples([{"prompt": "word " * 200, "completion": "ok"}])
    with (
        pytest.warns(UserWarning, match="no answer tokens within max_length=32"),
        pytest.raises(DataFormatError, match="No trainable tokens left"),
    ):
        build_rows(ex, phi3_tok, max_length=32, packing=True, completion_only_loss=True)


def test_packing_fills_rows_and_keeps_every_token(phi3_tok: Any) -> None:
    ex = load_examples(
        [{"prompt": f"Question {i} " * (i % 5 + 1), "completion": "Answer."} for i in range(30)]
    )
    rows, collator = build_rows(
        ex, phi3_tok, max_length=128, packing=True, completion_only_loss=True
    )
    unpacked, _ = build_rows(ex, phi3_tok, max_length=128, packing=False, completion_only_loss=True)
    assert isinstance(collator, PackedCollator)
    assert len(rows) < len(unpacked)
    assert all(len(r["input_ids"]) <= 128 for r in rows)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(r["input_ids"]) for r in unpacked)
    starts = sum(r["position_ids"].count(0) for r in rows)
    assert starts == len(unpacked)


def test_packed_logits_equal_separate_logits(phi3_tok: Any) -> None:
    """No attention across packed examples: same logits and same loss as one at a time."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    cfg = Phi3Config(
        vocab_size=32064,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        pad_token_id=0,
    )
    model = Phi3ForCausalLM(cfg).eval()
    ex = load_examples(
        [
            {"prompt": "What is a flux valve?", "completion": "A valve."},
            {"prompt": "Torque of the cryo line?", "completion": "Twelve newton metres."},
            {"text": "The Zorblax plant runs three shifts."},
        ]
    )
    tokenized = [t for e in ex for t in tokenize_example(e, phi3_tok, max_length=64)]
    rows = pack_examples(tokenized, 200)
    assert len(rows) == 1
    batch = PackedCollator(pad_token_id=0)(
        [
            rows[0],
            {
                **rows[0],
                "input_ids": rows[0]["input_ids"][:5],
                "labels": rows[0]["labels"][:5],
                "position_ids": rows[0]["position_ids"][:5],
            },
        ]
    )
    with torch.no_grad():
        packed = model(**batch).logits[0]
        offset = 0
        for j, start in enumerate(rows[0]["position_ids"]):
            if start != 0 or (j == 0 and offset):
                continue
            n = (
                next(
                    (
                        k
                        for k in range(j + 1, len(rows[0]["position_ids"]))
                        if rows[0]["position_ids"][k] == 0
                    ),
                    len(rows[0]["position_ids"]),
                )
                - j
            )
            alone = model(torch.tensor([rows[0]["input_ids"][j : j + n]])).logits[0]
            assert torch.allclose(packed[j : j + n], alone, atol=1e-5)
            offset += n
        assert offset == len(rows[0]["input_ids"])
