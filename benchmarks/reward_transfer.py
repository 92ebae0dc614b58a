"""Does what RL learnt transfer to reward encoders it never saw? TargetSim of GenRec runs in held-out reward fits.

    python benchmarks/reward_transfer.py --genrec supervised=saved/GenRec-....pth GRPO=saved/GenRec-....pth \
        --seeds 3 --out docs/reward_transfer_ml-100k.md

The RL stage is rewarded in reward encoders fitted with the seeds ``rl_reward_fit_seed`` to
``rl_reward_fit_seed + rl_reward_ensemble - 1`` (:mod:`recbole_gen.rl.reward`). A policy can raise its reward
by what those fits learnt and another seed of the same fit did not: reward hacking of the fit, not a better
image for the user. This script shows each checkpoint's samples to the users of a split (``--seeds``
sampling seeds, the checkpoint's own sampling settings) and reports their mean cosine to the users' next
items (TargetSim) in the evaluation encoder, in each reward fit the run was rewarded in, and in held-out fits
of the same settings with seeds no run here was rewarded in (``--held_out_seeds``). A gain in the rewarded
fits that the held-out fits do not share is hacking; one they share is what a different fit of the same
data would also call an improvement. Gains are read against the first ``--genrec`` checkpoint (the
supervised start): fits differ in how they score even a policy that was never rewarded. Validation split
by default (``--split test`` for final figures).
"""

import argparse
import collections
import shlex
import sys

import torch

from eval_seeds import load_genrec, mean_sd, write_report  # this folder's seed-spread script
from sampling_frontier import labelled

from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.sampling import split_seed
from recbole_gen.rl.reward import RewardModel


def rewarded_seeds(config):
    """The reward-fit seeds a run with ``config`` was rewarded in (one, or an ensemble's)."""
    return [config["rl_reward_fit_seed"] + member for member in range(config["rl_reward_ensemble"])]


def space(config, dataset, seed):
    """The reward model of the fit with seed ``seed`` and ``config``'s other reward-fit settings."""
    return RewardModel.from_config(collections.ChainMap({"rl_reward_fit_seed": seed}, config), dataset)


@torch.no_grad()
def shown(model, data, seed):
    """``(images, targets)``: one sample per row of ``data`` under sampling seed ``seed``, and the rows' next items."""
    images, targets = [], []
    for interaction, *_ in data:
        interaction = interaction.to(model.device)
        images.append(model.generate(interaction, 1, seed=seed).images)
        targets.append(interaction[model.ITEM_ID].cpu())
    return torch.cat(images), torch.cat(targets)


def transfer_row(label, checkpoint, seeds, split, held_out):
    """A row: TargetSim (mean, sd over sampling ``seeds``) in the evaluation space, the run's rewarded fits and
    the ``held_out`` fits, for the GenRec ``checkpoint``."""
    config, model, _, valid_data, test_data = load_genrec(checkpoint, flag="--genrec")
    rewarded = rewarded_seeds(config)
    if set(rewarded) & set(held_out):
        raise SystemExit(f"--held_out_seeds {sorted(set(rewarded) & set(held_out))}: --genrec {checkpoint} was rewarded "
                         "in those fits; choose others")
    data = valid_data if split == "valid" else test_data
    dataset = data._dataset
    content, encoder, catalog = catalog_encoder(config, dataset)
    evaluation = RewardModel(encoder, catalog, content.has_image & (torch.arange(len(catalog)) > 0), {})
    fits = {seed: space(config, dataset, seed) for seed in rewarded + list(held_out)}
    sims = collections.defaultdict(list)
    for seed in seeds:
        images, targets = shown(model, data, split_seed(seed, split))
        for name, reward_model in {"evaluation": evaluation, **fits}.items():
            sims[name].append(reward_model.target_sim(reward_model.embed(images), targets).mean().item())
    return {"label": label, "checkpoint": checkpoint, "rewarded": rewarded, "evaluation": mean_sd(sims["evaluation"]),
            "rewarded_sims": mean_sd([sum(sims[s][i] for s in rewarded) / len(rewarded) for i in range(len(seeds))]),
            "held_out_sims": mean_sd([sum(sims[s][i] for s in held_out) / len(held_out) for i in range(len(seeds))]),
            "per_fit": {seed: mean_sd(sims[seed])[0] for seed in fits}}


def report(rows, args, command):
    cell = lambda pair: f"{pair[0]:.4f} ({pair[1]:.4f})"
    lines = [f"# Reward transfer ({args.split} split, {args.seeds} sampling seeds, 1 image per user)", "",
             f"Command: `{command}`", "",
             "TargetSim, mean (sd over sampling seeds), of each checkpoint's samples in the evaluation encoder, in the "
             "reward fits its run was rewarded in (mean over them) and in held-out fits of the same settings "
             f"(seeds {', '.join(map(str, args.held_out_seeds))}, mean over them). Rewarded minus held-out: how much more "
             "the fits a run was rewarded in credit it than other seeds of the same fit do (fits differ even for a run "
             f"never rewarded, so compare it with the first row's); the last column: each space's change from {rows[0]['label']} "
             "(the first --genrec, e.g. the RL runs' supervised start).", "",
             f"| checkpoint | rewarded fit seeds | evaluation encoder | rewarded fits | held-out fits | rewarded minus held-out | "
             f"change from {rows[0]['label']}: evaluation / rewarded / held-out |",
             "|---|---|---|---|---|---|---|"]
    first = rows[0]
    for row in rows:
        gap = row["rewarded_sims"][0] - row["held_out_sims"][0]
        change = " / ".join(f"{row[key][0] - first[key][0]:+.4f}" for key in ("evaluation", "rewarded_sims", "held_out_sims"))
        lines.append(f"| {row['label']} | {', '.join(map(str, row['rewarded']))} | {cell(row['evaluation'])} | "
                     f"{cell(row['rewarded_sims'])} | {cell(row['held_out_sims'])} | {gap:+.4f} | {change} |")
    fit_seeds = sorted({seed for row in rows for seed in row["per_fit"]})
    lines += ["", "Per reward fit (mean over sampling seeds; - where a run's row did not score that fit):", "",
              "| checkpoint | " + " | ".join(f"seed {seed}" for seed in fit_seeds) + " |", "|---|" + "---|" * len(fit_seeds)]
    for row in rows:
        lines.append(f"| {row['label']} | " + " | ".join(
            f"{row['per_fit'][seed]:.4f}" if seed in row["per_fit"] else "-" for seed in fit_seeds) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genrec", required=True, nargs="+", metavar="[LABEL=]PATH",
                        help="GenRec checkpoints of one dataset (a supervised run and RL runs from it)")
    parser.add_argument("--held_out_seeds", type=int, nargs="+", default=[101, 102, 103],
                        help="reward-fit seeds no compared run was rewarded in")
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds per checkpoint")
    parser.add_argument("--split", choices=["valid", "test"], default="valid", help="test only for final figures")
    parser.add_argument("--out", default=None, help="markdown file to write (default: print)")
    args = parser.parse_args()
    rows = []
    for label, checkpoint in labelled(args.genrec):
        rows.append(transfer_row(label, checkpoint, range(args.seeds), args.split, args.held_out_seeds))
    write_report(report(rows, args, "python " + shlex.join(["benchmarks/reward_transfer.py", *sys.argv[1:]])), args.out)


if __name__ == "__main__":
    main()
