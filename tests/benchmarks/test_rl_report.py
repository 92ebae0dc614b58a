"""benchmarks/rl_report.py: the curves of an RL run's log."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import rl_report  # noqa: E402


def test_moving_average_over_the_last_window_steps():
    assert rl_report.moving_average([1.0, 2.0, 3.0, 4.0], 2) == pytest.approx([1.0, 1.5, 2.5, 3.5])


@pytest.mark.parametrize("ensemble", [False, True])
def test_the_reward_panel_draws_the_logged_terms_and_an_ensembles_spread(monkeypatch, ensemble):
    step = {"reward_mean": 0.1, "kl": 0.0, "copy_share": 0.5, "zero_spread_share": 0.0, "entropy": 1.0, "reward_contrastive": 0.2}
    if ensemble:
        step["reward_member_sd"] = 0.05
    log = {"steps": [{**step, "step": i} for i in range(3)],
           "validations": [{"step": 0, "targetsim": 0.01, "targetsim_reward_space": 0.02}]}
    drawn = []
    real_panel = rl_report.panel
    monkeypatch.setattr(rl_report, "panel", lambda series, *args: drawn.append(sorted(series)) or real_panel(series, *args))
    image = rl_report.curves(log, smooth=2)
    expected = ["contrastive term", "reward (total)"] + (["spread of the ensemble's fits"] if ensemble else [])
    assert drawn[0] == expected and drawn[-1] == ["evaluation space", "reward space"]
    assert image.size[0] > 0
