"""Summarise RL runs (their ``<checkpoint>-rl.json`` logs) as a markdown table of validation results.

    python benchmarks/rl_sweep_table.py saved/GenRec-*-rl.json --out docs/rl_sweep_ml-100k.md

For each run: the settings it changed from GenRec.yaml's RL defaults, the supervised policy's validation
(step 0, logged before the first update) and the last validation, in the evaluation space (TargetSim,
PersonalLift, FD, copy share) and the reward space, the last steps' KL and copy share, and the seconds
per step. One sampling seed per validation: differences below the seed spread (TargetSim sd about 0.004
at 8 images per user, docs/genrec.md) are noise.
"""

import argparse
import json
import os
import statistics

import yaml

from recbole_gen.compat import load_checkpoint
from recbole_gen.config import PROPERTIES_DIR


def rl_defaults():
    with open(os.path.join(PROPERTIES_DIR, "model", "GenRec.yaml")) as f:
        return {key: value for key, value in yaml.safe_load(f).items() if key.startswith("rl_")}


def changed_settings(log_file, defaults):
    checkpoint = load_checkpoint(log_file[: -len("-rl.json")] + ".pth")
    final = checkpoint["config"]["final"]
    return {key: final.get(key, defaults[key]) for key in defaults
            if key != "rl_init_checkpoint" and final.get(key, defaults[key]) != defaults[key]}


def row(log_file, defaults):
    """The table row of one run's log, or None for a run without a step-0 validation or without steps."""
    with open(log_file) as f:
        log = json.load(f)
    if not log["steps"] or not log["validations"] or log["validations"][0]["step"] != 0:
        return None
    first, last = log["validations"][0], log["validations"][-1]
    tail = log["steps"][-20:]
    seconds = statistics.mean(s["seconds_sampling"] + s["seconds_reward"] + s["seconds_update"] for s in log["steps"])
    settings = ", ".join(f"{k.removeprefix('rl_')}={v}" for k, v in changed_settings(log_file, defaults).items()) or "defaults"
    cell = lambda key: f"{first.get(key, float('nan')):.4f} → {last.get(key, float('nan')):.4f}"
    return (f"| {settings} | {last['step']} | {cell('targetsim')} | {cell('targetsim_reward_space')} | {cell('personallift')} | "
            f"{cell('fd')} | {cell('copyshare')} | {statistics.mean(s['kl'] for s in tail):.4f} | {seconds:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    defaults = rl_defaults()
    lines = ["| run (changed from the defaults) | steps | TargetSim | TargetSim, reward space | PersonalLift | FD | copy share | KL (last 20 steps) | s/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [line for line in (row(log, defaults) for log in args.logs) if line]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
