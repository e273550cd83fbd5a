"""The Tuner's own training code under `torchrun --nproc_per_node 2` (DDP, gloo, on CPU).

`phi3industry tune` runs unchanged in both processes; the Tuner picks the gloo backend on CPU
from ``WORLD_SIZE``. Checked: both ranks trained as one job of world size 2 (each optimizer
step covers twice the rows, so the epoch advances twice as fast; one RNG state per rank in
the checkpoint), only rank 0 measured and wrote the adapter and logs, and the adapter loads
with plain peft. About 30 s here (two processes on 2 busy cores).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from phi3industry.tuning.tuner import ADAPTER_FILES, CHECKPOINT_DIR

MAX_STEPS = 4
BATCH = 2
ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"Which torque does Zorblax valve V{i} take?"},
            {"role": "assistant", "content": f"Valve V{i} takes {i + 10} Nm."},
        ]
    }
    for i in range(32)
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_stdout(log_dir: Path, rank: int) -> str:
    files = list(log_dir.rglob(f"attempt_*/{rank}/stdout.log"))
    assert len(files) == 1, list(log_dir.rglob("*"))
    return files[0].read_text()


def _json_result(text: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(text[text.index("{\n") :])
    return result


def test_torchrun_two_cpu_processes(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out, logs = tmp_path / "adapter", tmp_path / "logs"
    port = _free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        "--log-dir",
        str(logs),
        "--redirects",
        "3",
        "-m",
        "phi3industry",
        "tune",
        str(data),
        "--model",
        str(tiny_phi3_dir),
        "--output-dir",
        str(out),
        "--max-steps",
        str(MAX_STEPS),
        "--save-steps",
        "2",
        "--logging-steps",
        "1",
        "--batch-size",
        str(BATCH),
        "--no-packing",  # one example per row: rows per step are countable
        "--max-length",
        "64",
        "--eval-fraction",
        "0",
        "--learning-rate",
        "1e-2",
        "--no-progress",
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    rank0 = _json_result(_rank_stdout(logs, 0))
    rank1 = _json_result(_rank_stdout(logs, 1))
    # Both ranks ran all the steps; only rank 0 evaluated and saved.
    assert rank0["global_step"] == rank1["global_step"] == MAX_STEPS
    assert rank0["metrics_after"] and rank0["metrics_before"]
    assert rank1["metrics_after"] == {} and rank1["metrics_before"] == {}

    # World size 2 in the metrics: an epoch is ceil(32 / (2 ranks x 2 rows)) = 8 steps
    # (it would be 16 in one process).
    log = json.loads((out / "training_log.json").read_text())
    losses = [e for e in log if "loss" in e]
    assert [e["step"] for e in losses] == list(range(1, MAX_STEPS + 1))  # written once
    steps_per_epoch = math.ceil(len(ROWS) / (2 * BATCH))
    assert losses[-1]["epoch"] == pytest.approx(MAX_STEPS / steps_per_epoch)
    checkpoint = out / CHECKPOINT_DIR / f"checkpoint-{MAX_STEPS}"
    assert sorted(p.name for p in checkpoint.glob("rng_state*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    lines = (out / "training_log.jsonl").read_text().splitlines()
    assert len([json.loads(x) for x in lines if '"loss"' in x]) == MAX_STEPS

    # The adapter, written once by rank 0, loads with plain peft and is trained.
    assert (out / ADAPTER_FILES[0]).is_file() and (out / ADAPTER_FILES[1]).is_file()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_phi3_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)
    ids = torch.tensor([[1, 32010, 450, 3974, 32007, 32001]])
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
