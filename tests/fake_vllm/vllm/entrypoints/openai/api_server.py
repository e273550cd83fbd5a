"""A stand-in for ``python -m vllm.entrypoints.openai.api_server`` in the launcher tests.

It parses the flags phi3industry passes, writes them to ``$FAKE_VLLM_ARGS`` (JSON), and serves
the served model name and each LoRA module with tests/_fake_engine.py until it is stopped.
``--dtype bad`` exits at once, as vLLM does on a bad flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5]))  # the repository root

from tests._fake_engine import FakeEngine

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--served-model-name")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--dtype")
parser.add_argument("--enable-lora", action="store_true")
parser.add_argument("--max-lora-rank", type=int)
parser.add_argument("--max-loras", type=int)
parser.add_argument("--max-model-len", type=int)
parser.add_argument("--lora-modules", nargs="*", default=[])
args, extra = parser.parse_known_args()
if os.environ.get("FAKE_VLLM_ARGS"):
    Path(os.environ["FAKE_VLLM_ARGS"]).write_text(json.dumps({**vars(args), "extra": extra}))
if args.dtype == "bad":
    sys.exit("error: argument --dtype: invalid choice: 'bad'")
time.sleep(float(os.environ.get("FAKE_VLLM_STARTUP", "0.5")))  # vLLM takes a while
models = [args.served_model_name, *(m.split("=", 1)[0] for m in args.lora_modules)]
with FakeEngine(models, reply="Fake vLLM answer.", port=args.port):
    while True:
        time.sleep(1)
