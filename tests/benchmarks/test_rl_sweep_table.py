"""benchmarks/rl_sweep_table.py: labels and validation paths of RL runs' logs."""

import json
import os
import sys

import torch
import yaml
from PIL import Image

from recbole_gen.compat import CONFIG_KEY
from recbole_gen.config import PROPERTIES_DIR

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import rl_sweep_table  # noqa: E402


def write_run(folder, name, final, fds):
    """A run's checkpoint (its final config only) and ``-rl.json`` log with one validation per FD."""
    torch.save({CONFIG_KEY: json.dumps({"model": "GenRec", "dataset": "tiny", "external": {}, "final": final})}, folder / f"{name}.pth")
    validations = [{"step": 200 * i, "fd": fd, "targetsim": 0.01 * i} for i, fd in enumerate(fds)]
    log = folder / f"{name}-rl.json"
    log.write_text(json.dumps({"steps": [], "validations": validations}))
    return str(log)


def test_runs_are_labelled_by_what_they_changed_and_plotted_along_their_validations(tmp_path, monkeypatch):
    with open(os.path.join(PROPERTIES_DIR, "model", "GenRec.yaml")) as f:
        defaults = {k: v for k, v in yaml.safe_load(f).items() if k.startswith("rl_")}
    # an old run: no rl_advantage_scale (it scaled by groups, the default) and no ensemble (one fit, now not the default)
    old = write_run(tmp_path, "old", {k: v for k, v in defaults.items() if k not in ("rl_advantage_scale", "rl_reward_ensemble")}, [0.03, 0.1])
    batch = write_run(tmp_path, "batch", {**defaults, "rl_advantage_scale": "batch"}, [0.03, 0.2, 0.5])
    assert rl_sweep_table.run_label(rl_sweep_table.changed_settings(old, defaults)) == "reward_ensemble=off"
    assert rl_sweep_table.run_label(rl_sweep_table.changed_settings(batch, defaults)) == "advantage_scale=batch"
    assert rl_sweep_table.validation_path(batch) == ([0.03, 0.2, 0.5], [0.0, 0.01, 0.02])

    plot = tmp_path / "paths.png"
    monkeypatch.setattr(sys, "argv", ["rl_sweep_table.py", old, batch, "--plot_paths", str(plot)])
    rl_sweep_table.main()
    assert Image.open(plot).size == (640, 400)
