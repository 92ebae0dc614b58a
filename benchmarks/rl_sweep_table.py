"""Summarise RL runs (their ``<checkpoint>-rl.json`` logs) as a markdown table of validation results.

    python benchmarks/rl_sweep_table.py saved/GenRec-*-rl.json --out table.md --plot copies.png --plot_fd fd.png

For each run: the settings it changed from GenRec.yaml's RL defaults, the supervised policy's validation
(step 0, logged before the first update) and the last validation, in the evaluation space (TargetSim,
PersonalLift, FD, copy share) and the reward space, the last steps' KL and copy share, and the seconds
per step. ``--plot``: each run's last validation TargetSim against its copy share, labelled by its copy
penalty (and "+exp" where the expectation term was on); ``--plot_fd``: against FD to the next items,
labelled by the KL weight (GRPO) or by ``dpo_label`` (DPO: its beta, candidates and steps); ``--plot_paths``:
each run's validations in step order, TargetSim against FD, one line per run (where a run goes, not only
where it ends), named by ``--labels`` (one per log; by default the settings it changed), with the region's
bounds ``--fd_max`` (the trainer's ``valid_fd_max``) and ``--targetsim_min`` drawn across. One sampling
seed per validation: differences below the seed spread (TargetSim sd about 0.004 at 8 images per user,
docs/genrec.md) are noise.
"""

import argparse
import functools
import json
import os
import shlex
import statistics
import sys

import yaml

from recbole_gen.compat import load_checkpoint
from recbole_gen.config import PROPERTIES_DIR


# added with its default = the behaviour before it (the top 10; advantages scaled by each group's spread)
SAME_BEFORE = {"rl_expectation_top_items", "rl_advantage_scale"}


def rl_defaults():
    with open(os.path.join(PROPERTIES_DIR, "model", "GenRec.yaml")) as f:
        return {key: value for key, value in yaml.safe_load(f).items() if key.startswith("rl_")}


@functools.lru_cache(maxsize=None)
def final_config(checkpoint_file):
    """A checkpoint's final config, read once per file however many tables and plots ask (read-only)."""
    return load_checkpoint(checkpoint_file)["config"]["final"]


def changed_settings(log_file, defaults):
    final = final_config(log_file[: -len("-rl.json")] + ".pth")
    # A key the run's code did not have yet was off (its term or feature did not exist): unchanged where the default is
    # off; a key whose default is what runs did before it existed (SAME_BEFORE) is unchanged.
    values = {key: final.get(key, defaults[key] if key in SAME_BEFORE else "off") for key in defaults if key != "rl_init_checkpoint"}
    return {key: value for key, value in values.items() if value != defaults[key] and not (value == "off" and not defaults[key])}


def run_label(changed):
    """The settings a run changed from the defaults (``changed_settings``), as ``key=value, ...`` without the ``rl_`` prefix."""
    return ", ".join(f"{k.removeprefix('rl_')}={v}" for k, v in changed.items()) or "defaults"


def validation_path(log_file):
    """``(FDs, TargetSims)`` of a run's validations in step order (step 0: the supervised policy)."""
    with open(log_file) as f:
        validations = json.load(f)["validations"]
    return [v["fd"] for v in validations], [v["targetsim"] for v in validations]


def dpo_label(setting, defaults, steps):
    """'dpo', '-iter' with a refreshed reference, the beta and candidates where not the defaults, '@' the steps."""
    label = "dpo" + ("-iter" if setting("rl_reference_refresh") is True else "")
    for key, short in (("rl_dpo_beta", "b"), ("rl_group_size", "n")):
        if setting(key) != defaults[key]:
            label += f",{short}={setting(key)}"
    return f"{label}@{steps}"


def row(log_file, defaults):
    """``(table row, [plot point of its last validation, of its step 0])`` of one run's log, or None for a run without a step-0 validation or steps."""
    with open(log_file) as f:
        log = json.load(f)
    if not log["steps"] or not log["validations"] or log["validations"][0]["step"] != 0:
        return None
    first, last = log["validations"][0], log["validations"][-1]
    tail = log["steps"][-20:]
    seconds = statistics.mean(s["seconds_sampling"] + s["seconds_reward"] + s["seconds_update"] for s in log["steps"])
    changed = changed_settings(log_file, defaults)
    settings = run_label(changed)
    cell = lambda key: f"{first.get(key, float('nan')):.4f} → {last.get(key, float('nan')):.4f}"
    expectation = changed.get("rl_expectation_weight", defaults["rl_expectation_weight"]) not in (0, 0.0, "off")
    setting = lambda key: changed.get(key, defaults[key])
    suffix = "+exp" if expectation else ""
    colour = 2 if expectation else 0
    fd_label = dpo_label(setting, defaults, last["step"]) if setting("rl_algorithm") == "dpo" else f"kl={setting('rl_kl_weight')}"
    points = {"copies": [(f"cp={setting('rl_copy_penalty')}{suffix}", last["copyshare"], last["targetsim"], colour),
                         ("supervised", first["copyshare"], first["targetsim"], 4)],
              "fd": [(fd_label + suffix, last["fd"], last["targetsim"], colour),
                     ("supervised", first["fd"], first["targetsim"], 4)]}
    return (f"| {settings} | {last['step']} | {cell('targetsim')} | {cell('targetsim_reward_space')} | {cell('personallift')} | "
            f"{cell('fd')} | {cell('copyshare')} | {statistics.mean(s['kl'] for s in tail):.4f} | {seconds:.2f} |"), points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None, help="PNG of TargetSim against copy share")
    parser.add_argument("--plot_fd", default=None, help="PNG of TargetSim against FD to the next items, labelled by KL weight")
    parser.add_argument("--plot_paths", default=None, help="PNG of each run's validations, TargetSim against FD, in step order")
    parser.add_argument("--labels", nargs="+", default=None, help="--plot_paths: a name for each log, in order")
    parser.add_argument("--fd_max", type=float, default=None, help="--plot_paths: an FD cap to draw (valid_fd_max)")
    parser.add_argument("--targetsim_min", type=float, default=None, help="--plot_paths: a TargetSim bar to draw")
    args = parser.parse_args()
    if args.labels is not None and len(args.labels) != len(args.logs):
        parser.error(f"--labels: {len(args.labels)} names for {len(args.logs)} logs; give one name per log, in order")
    defaults = rl_defaults()
    lines = ["| run (changed from the defaults) | steps | TargetSim | TargetSim, reward space | PersonalLift | FD | copy share | KL (last 20 steps) | s/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [r for r in (row(log, defaults) for log in args.logs) if r]
    lines += [line for line, _ in rows]
    text = "\n".join(lines)
    print(text)
    plots = [(args.plot, "copies", "validation TargetSim (up) against exact-copy share (right)", "share of exact catalog copies"),
             (args.plot_fd, "fd", "validation TargetSim (up) against FD to the next items (right)", "FD to the next items")]
    for path, kind, title, x_label in plots:
        if path:
            from plots import scatter_panel  # this folder's charts

            points = [points[kind][0] for _, points in rows] + [rows[0][1][kind][1]]  # each run's last validation; the supervised policy once
            scatter_panel(points, title, x_label).save(path)
    if args.plot_paths:
        from plots import line_panel

        labels = args.labels or [run_label(changed_settings(log, defaults)) for log in args.logs]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:  # one line per name: a repeated name would draw only its last run
            parser.error(f"--plot_paths: runs named alike ({', '.join(repeated)}); give each log a name with --labels")
        series = {label: validation_path(log) for label, log in zip(labels, args.logs)}
        guides = {**({f"FD cap {args.fd_max:g}": ("x", args.fd_max)} if args.fd_max is not None else {}),
                  **({f"TargetSim bar {args.targetsim_min:g}": ("y", args.targetsim_min)} if args.targetsim_min is not None else {})}
        line_panel(series, "validation TargetSim (up) against FD (right), over the RL steps", "FD to the next items",
                   size=(640, 400), guides=guides).save(args.plot_paths)
    if args.out:
        command = "python " + shlex.join(["benchmarks/rl_sweep_table.py", *sys.argv[1:]])
        with open(args.out, "w") as f:
            f.write(f"Command: `{command}`\n\nValidation split, one sampling seed per validation: each run's step 0 (the "
                    f"supervised policy) and last validation.\n\n{text}\n")


if __name__ == "__main__":
    main()
