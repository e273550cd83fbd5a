"""Generators on real models: tiny-phi3 (the Phi-3 path), SmolLM2 (a real instruct model),
LoRA adapters made with peft, and an OpenAI-compatible endpoint that is down or failing."""

from __future__ import annotations

import http.server
import itertools
import socket
import threading
import time
from pathlib import Path

import pytest

from phi3industry.errors import ConfigError, GenerationError, GenerationTimeoutError
from phi3industry.generation import LocalGenerator, OpenAIGenerator, parse_adapter_spec
from phi3industry.generation.base import held_back

PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


def make_adapter(base_dir: Path, out: Path, seed: int = 1, scale: float = 0.5) -> Path:
    """Save a LoRA adapter for ``base_dir`` with non-zero lora_B weights (it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=PHI3_TARGETS))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_phi3_dir: Path) -> LocalGenerator:
    return LocalGenerator.from_pretrained(tiny_phi3_dir)


@pytest.fixture(scope="module")
def adapters(tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "kb": make_adapter(tiny_phi3_dir, root / "kb", seed=1),
        "other": make_adapter(tiny_phi3_dir, root / "other", seed=2),
    }


def test_greedy_is_deterministic_and_counts_tokens(tiny: LocalGenerator) -> None:
    a = tiny.generate(MSGS, max_new_tokens=6)
    b = tiny.generate(MSGS, max_new_tokens=6)
    assert a.text == b.text and a.text
    assert a.completion_tokens <= 6 and a.prompt_tokens == tiny.prompt_tokens(MSGS)
    assert a.finish_reason in ("stop", "length")
    assert a.usage["total_tokens"] == a.prompt_tokens + a.completion_tokens
    assert a.first_token_s is not None and 0 < a.first_token_s <= a.total_s


def test_phi3_template_and_stop_tokens(tiny: LocalGenerator) -> None:
    prompt = tiny.render(MSGS)
    assert "<|user|>" in prompt and prompt.rstrip().endswith("<|assistant|>")
    assert "You are terse." in prompt
    end = tiny.tokenizer.convert_tokens_to_ids("<|end|>")
    assert end in tiny.stop_ids
    a, b = tiny.tokenizer("red blue", add_special_tokens=False)["input_ids"][:2]
    text, reason, n = tiny._finish([a, b, end, a], [], max_new_tokens=10)
    assert (reason, n) == ("stop", 2) and "blue" in text


def test_system_role_kept_when_template_drops_it(tiny_phi3_dir: Path) -> None:
    from phi3industry.models import load_tokenizer

    tok = load_tokenizer(tiny_phi3_dir, padding_side="left")
    # The original Phi-3 template silently drops system messages.
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}"
        "{{ '<|user|>\n' + m['content'] + '<|end|>\n<|assistant|>\n' }}"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] + '<|end|>\n' }}{% endif %}{% endfor %}"
    )
    gen = LocalGenerator(LocalGenerator.from_pretrained(tiny_phi3_dir).model, tok)
    prompt = gen.render(MSGS)
    assert "You are terse.\n\nName a colour." in prompt


def test_stream_matches_generate(tiny: LocalGenerator) -> None:
    full = tiny.generate(MSGS, max_new_tokens=8)
    chunks = list(tiny.stream(MSGS, max_new_tokens=8))
    assert "".join(c.text for c in chunks) == full.text
    final = chunks[-1].generation
    assert final is not None and final.text == full.text
    assert final.completion_tokens == full.completion_tokens
    assert all(c.generation is None for c in chunks[:-1])


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_seeded_sampling_streams_what_generate_samples(tiny: LocalGenerator, top_p: float) -> None:
    kwargs = {"max_new_tokens": 12, "temperature": 0.9, "top_p": top_p, "seed": 7}
    full = tiny.generate(MSGS, **kwargs)
    streamed = "".join(c.text for c in tiny.stream(MSGS, **kwargs))
    assert streamed == full.text
    assert streamed != "".join(c.text for c in tiny.stream(MSGS, **{**kwargs, "seed": 8}))


def test_closing_a_stream_early_frees_the_model(tiny: LocalGenerator) -> None:
    stream = tiny.stream(MSGS, max_new_tokens=50)
    next(stream)
    stream.close()
    assert tiny.generate(MSGS, max_new_tokens=4, deadline=time.monotonic() + 30).completion_tokens


def test_user_stop_strings_cut_generate_and_stream(tiny: LocalGenerator) -> None:
    free = tiny.generate(MSGS, max_new_tokens=12).text
    assert len(free) > 8
    stop = free[4:7]
    idx = free.find(stop)
    cut = tiny.generate(MSGS, max_new_tokens=12, stop=[stop])
    assert cut.text == free[:idx] and cut.finish_reason == "stop"
    pieces = [c.text for c in tiny.stream(MSGS, max_new_tokens=12, stop=[stop])]
    assert "".join(pieces) == free[:idx]


def test_held_back_stop_prefix() -> None:
    assert held_back("hello wor", ["world"]) == 3
    assert held_back("hello", ["xyz"]) == 0


def test_left_padded_batch_matches_single(tiny: LocalGenerator) -> None:
    short = [{"role": "user", "content": "Hi"}]
    long = [{"role": "user", "content": "Describe the warehouse robot battery in detail."}]
    batch = tiny.generate_batch([short, long], max_new_tokens=6)
    assert [g.text for g in batch] == [
        tiny.generate(short, max_new_tokens=6).text,
        tiny.generate(long, max_new_tokens=6).text,
    ]
    assert batch[0].prompt_tokens < batch[1].prompt_tokens
    assert tiny.tokenizer.padding_side == "left"


def test_sampling_is_seeded(tiny: LocalGenerator) -> None:
    a = tiny.generate(MSGS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    b = tiny.generate(MSGS, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert a.text == b.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive"),
        ({"temperature": 3.0}, "temperature must be between 0 and 2"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ],
)
def test_bad_generation_params(tiny: LocalGenerator, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tiny.generate(MSGS, **kwargs)


def test_bad_messages(tiny: LocalGenerator) -> None:
    with pytest.raises(GenerationError, match="non-empty list"):
        tiny.generate([])
    with pytest.raises(GenerationError, match=r"messages\[0\] must have role"):
        tiny.generate([{"role": "robot", "content": "hi"}])


def test_deadline_stops_generation(tiny: LocalGenerator) -> None:
    with pytest.raises(GenerationTimeoutError, match="deadline"):
        tiny.generate(MSGS, max_new_tokens=50, deadline=time.monotonic() - 1)
    # the lock was released: the next call works
    assert tiny.generate(MSGS, max_new_tokens=2).completion_tokens >= 1


def test_adapters_switch_by_name(tiny_phi3_dir: Path, adapters: dict[str, Path]) -> None:
    plain = LocalGenerator.from_pretrained(tiny_phi3_dir)
    base_text = plain.generate(MSGS, max_new_tokens=8).text
    gen = LocalGenerator.from_pretrained(tiny_phi3_dir, adapters={"kb": adapters["kb"]})
    gen.load_adapter(adapters["other"], "other")
    assert gen.adapter_names == ["kb", "other"]
    kb = gen.generate(MSGS, max_new_tokens=8, adapter="kb").text
    other = gen.generate(MSGS, max_new_tokens=8, adapter="other").text
    assert len({base_text, kb, other}) == 3
    # "base" (or None) disables every adapter; switching back and forth is stable.
    assert gen.generate(MSGS, max_new_tokens=8, adapter="base").text == base_text
    assert gen.generate(MSGS, max_new_tokens=8, adapter="kb").text == kb
    assert "".join(c.text for c in gen.stream(MSGS, max_new_tokens=8, adapter="other")) == other
    assert gen.generate(MSGS, max_new_tokens=8).text == base_text
    with pytest.raises(ConfigError, match="Unknown adapter 'nope'; loaded: base, kb, other"):
        gen.generate(MSGS, adapter="nope")
    with pytest.raises(ConfigError, match="'kb' is taken"):
        gen.load_adapter(adapters["kb"], "kb")


def test_adapter_for_another_base_is_refused(
    tiny_phi3_dir: Path, tmp_path: Path, tiny: LocalGenerator
) -> None:
    from phi3industry.models import build_tiny_phi3

    other_base = build_tiny_phi3(tmp_path / "wide-phi3", hidden_size=96, intermediate_size=192)
    adapter = make_adapter(other_base, tmp_path / "wide-adapter")
    gen = LocalGenerator.from_pretrained(tiny_phi3_dir)
    with pytest.raises(
        ConfigError,
        match=r"made for base model .*wide-phi3.*hidden_size=96.*"
        r"but the base model loaded is .*hidden_size=64",
    ):
        gen.load_adapter(adapter, "wide")
    # Even when the recorded base model is gone, the LoRA shapes give it away.
    import shutil

    shutil.rmtree(other_base)
    with pytest.raises(
        ConfigError, match=r"made for base model .*wide-phi3.*LoRA weight has shape"
    ):
        gen.load_adapter(adapter, "wide")
    with pytest.raises(ConfigError, match=r"no adapter_config\.json"):
        gen.load_adapter(tmp_path, "empty")


def test_parse_adapter_spec() -> None:
    assert parse_adapter_spec("kb=/x/out") == ("kb", "/x/out")
    assert parse_adapter_spec("/x/out/") == ("out", "/x/out/")
    with pytest.raises(ConfigError, match="reserved"):
        parse_adapter_spec("base=/x")


def test_langchain_chat_model(tiny: LocalGenerator) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from phi3industry.generation import ChatPhi3Industry

    chat = ChatPhi3Industry.from_generator(tiny, max_tokens=6)
    msgs = [SystemMessage("You are terse."), HumanMessage("Name a colour.")]
    out = chat.invoke(msgs)
    assert isinstance(out, AIMessage)
    assert out.content == tiny.generate(MSGS, max_new_tokens=6).text
    assert out.usage_metadata is not None and out.usage_metadata["output_tokens"] <= 6
    assert out.response_metadata["finish_reason"] in ("stop", "length")
    chunks = list(chat.stream(msgs))
    assert "".join(str(c.content) for c in chunks) == out.content
    assert any(c.usage_metadata for c in chunks)
    stop = str(out.content)[3:5]
    cut = chat.invoke(msgs, stop=[stop])
    assert cut.content == str(out.content)[: str(out.content).find(stop)]
    # Runtime settings override the defaults, as in other LangChain chat models.
    assert chat.invoke(msgs, max_tokens=2).usage_metadata["output_tokens"] <= 2


def test_smollm2_answers_and_stops_at_end_of_turn(smollm2_dir: Path) -> None:
    gen = LocalGenerator.from_pretrained(smollm2_dir)
    out = gen.generate(
        [{"role": "user", "content": "What is the capital of France? One word."}],
        max_new_tokens=24,
    )
    assert "paris" in out.text.lower()
    assert out.finish_reason == "stop" and out.completion_tokens < 24
    assert "<|im_end|>" not in out.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoint_unreachable_names_url_after_retries() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    gen = OpenAIGenerator(url, "phi-3", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(GenerationError, match=rf"{url} after 3 attempt\(s\).*running"):
        gen.generate(MSGS)


def test_endpoint_retries_with_backoff_on_503() -> None:
    calls: list[float] = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(time.monotonic())
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        gen = OpenAIGenerator(url, "m", retries=2, backoff=0.1, timeout=5)
        with pytest.raises(GenerationError, match=rf"endpoint at {url} after 3 attempt"):
            gen.generate(MSGS)
    finally:
        server.shutdown()
    assert len(calls) == 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # 0.1 s then 0.2 s, with +-50% jitter


def test_endpoint_config_errors() -> None:
    with pytest.raises(ConfigError, match="base_url must start with http"):
        OpenAIGenerator("localhost:8000", "m")
