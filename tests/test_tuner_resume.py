"""A `phi3industry tune` run killed mid-training resumes and ends where an unbroken run ends.

Both runs are real CLI subprocesses on tiny-phi3 with the same YAML config and seed. The
interrupted one gets SIGKILL (no chance to clean up) as soon as a complete checkpoint exists;
`--resume` then finishes it. Measured here: the resumed adapter equals the unbroken one
exactly (max |diff| 0.0); the test allows atol=1e-5 for reduction-order noise, against a
training update of ~1e-2 per adapter tensor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from phi3industry.demo import sample_kb_dir
from phi3industry.tuning.tuner import ADAPTER_FILES, CHECKPOINT_DIR

ATOL = 1e-5
MAX_STEPS = 24
SAVE_STEPS = 6


def _config(tiny_phi3_dir: Path, out: Path) -> dict[str, Any]:
    return {
        "model": str(tiny_phi3_dir),
        "output_dir": str(out),
        "max_steps": MAX_STEPS,
        "save_steps": SAVE_STEPS,
        "logging_steps": 1,
        "batch_size": 4,
        "max_length": 64,
        "learning_rate": 1e-2,
        "lora_dropout": 0.1,  # exercises the restored RNG state
        "eval_fraction": 0.0,
        "seed": 7,
        "progress": False,
    }


def _tune(config: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phi3industry",
            "tune",
            str(sample_kb_dir() / "qa_train.jsonl"),
            "--config",
            str(config),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _complete_checkpoints(out: Path) -> list[int]:
    ckpt = out / CHECKPOINT_DIR
    if not ckpt.is_dir():
        return []
    return sorted(
        int(d.name.split("-")[1])
        for d in ckpt.glob("checkpoint-*")
        if (d / "trainer_state.json").is_file()
    )


def _write_config(path: Path, settings: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(settings))
    return path


def _adapter(out: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(out / ADAPTER_FILES[1]))


@pytest.mark.slow  # 60-75 s here: four CLI processes on 2 busy cores
def test_killed_run_resumes_to_the_same_adapter(tiny_phi3_dir: Path, tmp_path: Path) -> None:

    broken, whole = tmp_path / "broken", tmp_path / "whole"
    cfg_broken = _write_config(tmp_path / "broken.yaml", _config(tiny_phi3_dir, broken))
    cfg_whole = _write_config(tmp_path / "whole.yaml", _config(tiny_phi3_dir, whole))

    # The unbroken reference runs alongside the run that gets killed.
    reference = _tune(cfg_whole)
    victim = _tune(cfg_broken)
    deadline = time.monotonic() + 240
    while not _complete_checkpoints(broken):
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (broken / ADAPTER_FILES[0]).exists(), "the run finished before the kill"
    last = max(_complete_checkpoints(broken))
    assert last < MAX_STEPS

    reference_out = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, reference_out[-3000:]
    before = (whole / ADAPTER_FILES[1]).read_bytes()
    resumed = _tune(cfg_broken, "--resume")
    again = _tune(cfg_whole)  # neither --resume nor --overwrite-output-dir
    resumed_out = resumed.communicate(timeout=300)[0]
    again_out = again.communicate(timeout=300)[0]
    assert resumed.returncode == 0, resumed_out[-3000:]

    # A rerun into a finished output_dir fails with one clear line and leaves it alone.
    assert again.returncode == 1, again_out[-3000:]
    assert "already holds an adapter" in again_out and "--overwrite-output-dir" in again_out
    assert (whole / ADAPTER_FILES[1]).read_bytes() == before

    # The second run continued at the checkpoint's step instead of starting over.
    log = [json.loads(line) for line in (broken / "training_log.jsonl").open()]
    steps = [entry["step"] for entry in log if "loss" in entry]
    assert steps.count(1) == 1
    assert steps[-(MAX_STEPS - last) :] == list(range(last + 1, MAX_STEPS + 1))
    metrics = json.loads((broken / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS

    got, want = _adapter(broken), _adapter(whole)
    assert got.keys() == want.keys() and any("lora_B" in k for k in got)
    for key, value in want.items():
        diff = (got[key] - value).abs().max().item()
        assert diff <= ATOL, (key, diff)
    # The runs really trained (lora_B starts at zero), so equality is not trivial.
    assert all(v.abs().max() > 100 * ATOL for k, v in want.items() if "lora_B" in k)


def test_resume_skips_a_checkpoint_cut_off_while_saving(
    tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    """A kill during a save leaves a checkpoint dir without trainer_state.json: not resumable."""
    from phi3industry.tuning.config import TunerConfig
    from phi3industry.tuning.tuner import Tuner

    out = tmp_path / "run"
    tuner = Tuner(TunerConfig(**_config(tiny_phi3_dir, out)))
    ckpt = out / CHECKPOINT_DIR
    (ckpt / "checkpoint-10").mkdir(parents=True)
    (ckpt / "checkpoint-10" / "trainer_state.json").write_text("{}")
    (ckpt / "checkpoint-20").mkdir()  # cut off: model written, state not yet
    (ckpt / "checkpoint-20" / "adapter_config.json").write_text("{}")
    assert tuner._last_checkpoint(out) == str(ckpt / "checkpoint-10")
    (ckpt / "checkpoint-10" / "trainer_state.json").unlink()
    assert tuner._last_checkpoint(out) is None
