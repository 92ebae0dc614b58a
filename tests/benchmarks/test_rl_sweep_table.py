"""benchmarks/rl_sweep_table.py: labels and validation paths of RL runs' logs."""

import json
import os
import sys

import pytest
import torch
from PIL import Image

from recbole_gen.compat import CONFIG_KEY

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import plots  # noqa: E402  (benchmarks/plots.py)
import rl_sweep_table  # noqa: E402


def write_run(folder, name, final, fds):
    """A run's checkpoint (its final config only) and ``-rl.json`` log with one validation per FD."""
    torch.save({CONFIG_KEY: json.dumps({"model": "GenRec", "dataset": "tiny", "external": {}, "final": final})}, folder / f"{name}.pth")
    validations = [{"step": 200 * i, "fd": fd, "targetsim": 0.01 * i} for i, fd in enumerate(fds)]
    log = folder / f"{name}-rl.json"
    log.write_text(json.dumps({"steps": [], "validations": validations}))
    return str(log)


def test_runs_are_labelled_by_what_they_changed_and_plotted_along_their_validations(tmp_path, monkeypatch):
    defaults = rl_sweep_table.rl_defaults()
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


def test_paths_take_a_name_per_log_and_draw_the_region_bounds(tmp_path, monkeypatch, capsys):
    defaults = rl_sweep_table.rl_defaults()
    first = write_run(tmp_path, "first", defaults, [0.03, 0.05])
    second = write_run(tmp_path, "second", defaults, [0.03, 0.2])
    drawn = {}
    real_panel = plots.line_panel

    def spy(series, *args, **kwargs):
        drawn.update(series=series, guides=kwargs.get("guides"))
        return real_panel(series, *args, **kwargs)

    monkeypatch.setattr(plots, "line_panel", spy)  # main imports it when it plots
    plot = tmp_path / "paths.png"
    table = tmp_path / "table.md"
    monkeypatch.setattr(sys, "argv", ["rl_sweep_table.py", first, second, "--plot_paths", str(plot), "--labels", "a", "b",
                                      "--fd_max", "0.1", "--targetsim_min", "0.005", "--out", str(table)])
    rl_sweep_table.main()
    assert table.read_text().startswith(f"Command: `python benchmarks/rl_sweep_table.py {first} {second} --plot_paths")
    assert drawn["series"] == {"a": ([0.03, 0.05], [0.0, 0.01]), "b": ([0.03, 0.2], [0.0, 0.01])}
    assert drawn["guides"] == {"FD cap 0.1": ("x", 0.1), "TargetSim bar 0.005": ("y", 0.005)}
    image = Image.open(plot).convert("RGB")
    assert image.size == (640, 400) and plots.GUIDE in {colour for _, colour in image.getcolors(640 * 400)}  # drawn, in their grey

    # both runs changed nothing: alike by default, so the plot asks for names instead of drawing one line for two runs
    monkeypatch.setattr(sys, "argv", ["rl_sweep_table.py", first, second, "--plot_paths", str(plot)])
    with pytest.raises(SystemExit):
        rl_sweep_table.main()
    assert "runs named alike (defaults)" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["rl_sweep_table.py", first, second, "--plot_paths", str(plot), "--labels", "a"])
    with pytest.raises(SystemExit):
        rl_sweep_table.main()
    assert "1 names for 2 logs" in capsys.readouterr().err
