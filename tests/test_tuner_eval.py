"""Evaluation during training: held-out loss every ``eval_steps``, early stopping, best adapter.

On tiny-phi3 with a learning rate that overshoots (seeded, so the run is the same every
time), the held-out loss falls at step 2 and rises after it: training stops two evaluations
later and the adapter saved is step 2's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phi3industry.errors import ConfigError
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.training import loss_curve_figure
from phi3industry.tuning.tuner import CHECKPOINT_DIR, TrainResult, Tuner

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is the torque for Zorblax valve V{i}?"},
            {"role": "assistant", "content": f"Valve V{i} takes {i + 10} Nm on the cryo manifold."},
        ]
    }
    for i in range(24)
]


def _cfg(model: Path, out: Path, **kw: Any) -> TunerConfig:
    settings: dict[str, Any] = {
        "model": str(model),
        "output_dir": str(out),
        "max_steps": 12,
        "batch_size": 4,
        "max_length": 64,
        "learning_rate": 5e-2,
        "logging_steps": 1,
        "save_steps": 1,
        "eval_steps": 1,
        "early_stopping_patience": 2,
        "progress": False,
        "eval_fraction": 0.25,
    }
    settings.update(kw)
    return TunerConfig(**settings)


@pytest.fixture(scope="module")
def stopped(tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path_factory.mktemp("es") / "adapter"))
    return tuner.train(ROWS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eval_steps": -1}, "eval_steps must be 0 .off. or a positive integer"),
        ({"early_stopping_patience": -2}, "early_stopping_patience must be 0 .off. or a positive"),
        (
            {"early_stopping_patience": 3},
            r"early_stopping_patience=3 needs evaluations.*eval_steps",
        ),
        (
            {"eval_steps": 20, "save_steps": 50},
            r"save_steps \(50\) must be a multiple of eval_steps \(20\).*save_steps=20, or "
            r"load_best_model_at_end=False",
        ),
    ],
)
def test_eval_settings_are_checked(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TunerConfig(model="tiny-phi3", **kwargs)


def test_eval_steps_without_save_multiple_is_fine_when_not_restoring() -> None:
    cfg = TunerConfig(model="tiny-phi3", eval_steps=20, save_steps=50, load_best_model_at_end=False)
    assert cfg.eval_steps == 20


def test_eval_steps_without_held_out_data_is_refused(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    tuner = Tuner(_cfg(tiny_phi3_dir, tmp_path / "a", eval_fraction=0.0))
    with pytest.raises(ConfigError, match=r"eval_steps=1 needs held-out data.*eval_fraction > 0"):
        tuner.train(ROWS)
    assert not (tmp_path / "a").exists()


def test_held_out_loss_is_logged_and_training_stops_early(stopped: TrainResult) -> None:
    held = [(e["step"], e["eval_loss"]) for e in stopped.log_history if "eval_loss" in e]
    assert [s for s, _ in held] == list(range(1, stopped.global_step + 1))
    losses = dict(held)
    assert stopped.best_step == min(losses, key=losses.__getitem__)
    assert stopped.best_eval_loss == pytest.approx(losses[stopped.best_step])
    # patience 2: the two evaluations after the best did not improve, and then it stopped
    assert stopped.global_step == stopped.best_step + 2 < 12
    assert stopped.stopped_early
    assert "stopped early" in stopped.summary()
    logged = (stopped.output_dir / "training_log.jsonl").read_text().splitlines()
    assert sum('"eval_loss"' in line for line in logged) == len(held)
    metrics = json.loads((stopped.output_dir / "metrics.json").read_text())
    assert metrics["best_step"] == stopped.best_step


def test_the_best_adapter_is_the_one_saved(stopped: TrainResult) -> None:
    import torch
    from safetensors.torch import load_file

    out = stopped.output_dir
    best = out / CHECKPOINT_DIR / f"checkpoint-{stopped.best_step}"
    last = out / CHECKPOINT_DIR / f"checkpoint-{stopped.global_step}"
    assert best.is_dir() and last.is_dir()  # the best one survives checkpoint rotation
    saved = load_file(str(out / "adapter_model.safetensors"))
    at_best = load_file(str(best / "adapter_model.safetensors"))
    at_last = load_file(str(last / "adapter_model.safetensors"))
    assert saved.keys() == at_best.keys()
    assert all(torch.equal(saved[k], at_best[k]) for k in saved)
    assert not all(torch.equal(saved[k], at_last[k]) for k in saved)


def test_held_out_tokens_are_not_training_tokens(stopped: TrainResult) -> None:
    counted = stopped.tokens_per_second * stopped.train_runtime
    # less than one epoch was trained; the evaluation batches would add ~4 epochs' worth
    assert 0 < counted <= stopped.train_tokens + 1


def test_loss_curve_shows_train_and_held_out_loss(stopped: TrainResult) -> None:
    fig = loss_curve_figure(stopped.log_history)
    assert fig is not None
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train loss", "held-out loss"}
    held = [(e["step"], e["eval_loss"]) for e in stopped.log_history if "eval_loss" in e]
    assert list(lines["held-out loss"].get_xdata()) == [s for s, _ in held]
    assert list(lines["held-out loss"].get_ydata()) == [v for _, v in held]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train loss", "held-out loss"]
    assert fig.axes[1].get_lines()[0].get_label() == "lr"
    assert (stopped.output_dir / "loss_curve.png").stat().st_size > 1000


def test_loss_curve_without_evaluation_has_one_loss_line() -> None:
    fig = loss_curve_figure([{"step": 1, "loss": 2.0, "learning_rate": 1e-3}])
    assert fig is not None
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train loss"]
    assert loss_curve_figure([{"step": 1, "learning_rate": 1e-3}]) is None
