"""Pictures of an RL run: reward, KL, copies and entropy per step, validation TargetSim in both spaces, and
the same users' generated images before and after RL.

    python benchmarks/rl_report.py --log saved/GenRec-....-rl.json --plot docs/img/rl_curves_ml-100k.png \
        --before saved/GenRec-SFT.pth --after saved/GenRec-RL.pth --users 1,2,3,4 --gallery saved/gallery/rl_before_after.png

The log is the ``<checkpoint>-rl.json`` the RL trainer writes. Curves are moving averages over
``--smooth`` steps (the raw values are in the log and in tensorboard). The validation panel shows TargetSim
in the evaluation space (which selects the checkpoint) and in the reward space: a gap that widens over the
steps is the policy learning the reward encoder rather than the users (reward hacking).
"""

import argparse
import json
import os
import tempfile

from PIL import Image, ImageDraw, ImageFont

from plots import line_panel as panel, sheet  # this folder's charts
from recbole_gen.generate import generate



def moving_average(values, window):
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def curves(log, smooth):
    steps = log["steps"]
    x = [step["step"] for step in steps]
    series = lambda key: (x, moving_average([step[key] for step in steps], smooth))
    optional = {"contrastive term": "reward_contrastive", "spread of the ensemble's fits": "reward_member_sd"}
    panels = [
        panel({"reward (total)": series("reward_mean"), **{name: series(key) for name, key in optional.items() if key in steps[0]}},
              "reward per sample, mean", "RL step"),
        panel({"KL to the supervised policy": series("kl")}, "KL per code (nats)", "RL step"),
        panel({"exact copies": series("copy_share"), "zero-spread groups": series("zero_spread_share")}, "share of samples / groups", "RL step"),
        panel({"entropy": series("entropy")}, "policy entropy per code (nats)", "RL step"),
    ]
    validations = log["validations"]
    if validations:
        vx = [v["step"] for v in validations]
        panels.append(panel({"evaluation space": (vx, [v["targetsim"] for v in validations]),
                             "reward space": (vx, [v["targetsim_reward_space"] for v in validations])},
                            "validation TargetSim", "RL step"))
    return sheet(panels)


def before_after(before, after, users, samples, seed):
    """The galleries of two checkpoints for the same users and sampling seed, one above the other."""
    images = []
    with tempfile.TemporaryDirectory() as folder:
        for label, checkpoint in (("before RL (supervised)", before), ("after RL", after)):
            out = os.path.join(folder, label.split()[0])
            generate(checkpoint, users, samples=samples, out=out, seed=seed, create=True)  # candidates for every user, also those the instructor would show an item
            gallery = Image.open(os.path.join(out, "gallery.png")).convert("RGB")
            titled = Image.new("RGB", (gallery.width, gallery.height + 18), (255, 255, 255))
            ImageDraw.Draw(titled).text((4, 3), f"{label}: {checkpoint}", fill=(0, 0, 0), font=ImageFont.load_default())
            titled.paste(gallery, (0, 18))
            images.append(titled)
    stacked = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), (255, 255, 255))
    stacked.paste(images[0], (0, 0))
    stacked.paste(images[1], (0, images[0].height))
    return stacked


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="the RL trainer's <checkpoint>-rl.json")
    parser.add_argument("--plot", help="PNG of the curves")
    parser.add_argument("--smooth", type=int, default=10, help="moving-average window, in steps")
    parser.add_argument("--before", help="the supervised checkpoint")
    parser.add_argument("--after", help="the checkpoint after RL")
    parser.add_argument("--users", default="1,2,3,4", help="comma-separated user tokens")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--gallery", help="PNG of the before/after gallery")
    args = parser.parse_args()
    if args.log and args.plot:
        with open(args.log) as f:
            curves(json.load(f), args.smooth).save(args.plot)
        print(f"wrote {args.plot}")
    if args.before and args.after and args.gallery:
        before_after(args.before, args.after, args.users.split(","), args.samples, args.seed).save(args.gallery)
        print(f"wrote {args.gallery}")


if __name__ == "__main__":
    main()
