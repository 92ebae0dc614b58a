"""Mix a supervised GenRec's weights with its RL fine-tune's and score each mix: the path between the two.

    python benchmarks/weight_interpolation.py --supervised saved/GenRec-A.pth --rl saved/GenRec-B.pth \
        --weights 0 0.25 0.5 0.75 1 --seeds 2 --out table.md --plot path.png --compare saved/GenRec-B-rl.json

The mix at weight w has the parameters (1 - w) * supervised + w * RL (WiSE-FT, Wortsman et al. 2022;
"rewarded soups", Rame et al. 2023): fine-tuning moves a policy along a path in weight space, and a point
part-way back along it can keep much of the reward at a fraction of the drift away from the data. Every
mix is scored like the RL checkpoint (its config: sampling, evaluation encoder, near-copy threshold) on
``--split`` with ``--seeds`` sampling seeds (``--best_of`` N: each shown image the best of N samples, as
GenRec's best-of-N row). The validation split is the default: choose the weight there, and score the
chosen mix on the test split once. ``--plot`` draws the mixes' TargetSim against FD, with the validation
paths of the RL runs whose logs ``--compare`` names (``rl_sweep_table.py --plot_paths``). ``--save``
writes the mix of the one weight given as a GenRec checkpoint, which loads, evaluates and generates like
any (for the benchmark's paired comparisons, ``sampling_frontier.py --genrec``).
"""

import argparse
import sys

import torch

from eval_seeds import load_genrec, mean_sd, score_seeds, write_report
from recbole_gen.compat import load_checkpoint, save_checkpoint
from run_benchmark import SEMANTIC_FIELDS, parse_spaces

SHOWN = ["targetsim", "personallift", "fd", "copyshare", "codecopyshare", "nearcopyshare", "novelusers", "noveltargetsim"]


def interpolate(supervised, tuned, weight):
    """The state dict ``(1 - weight) * supervised + weight * tuned`` over floating tensors (others, integer
    buffers, are ``tuned``'s); refuses state dicts of different models, naming the first key that differs."""
    if supervised.keys() != tuned.keys():
        key = sorted(supervised.keys() ^ tuned.keys())[0]
        raise ValueError(f"the checkpoints hold different models: '{key}' is in only {'--supervised' if key in supervised else '--rl'}")
    mixed = {}
    for key, value in tuned.items():
        if supervised[key].shape != value.shape:
            raise ValueError(f"the checkpoints hold different models: '{key}' has shape {tuple(supervised[key].shape)} "
                             f"in --supervised and {tuple(value.shape)} in --rl")
        mixed[key] = torch.lerp(supervised[key].to(value), value, weight) if value.is_floating_point() else value
    return mixed


def save_mix(supervised_file, rl_file, weight, path):
    """Write the mix at ``weight`` to ``path`` (atomically): the RL checkpoint with the mixed weights."""
    checkpoint = load_checkpoint(rl_file)
    checkpoint["state_dict"] = interpolate(load_checkpoint(supervised_file)["state_dict"], checkpoint["state_dict"], weight)
    save_checkpoint(path, checkpoint)


def interpolation_rows(supervised_file, rl_file, weights, split, seeds, overrides=None):
    """``[(weight, {metric: [value per seed]})]``: each mix scored on ``split`` under each sampling seed offset
    in ``range(seeds)`` from the RL checkpoint's seed, with the evaluation ``overrides`` of its config
    (``eval_best_of``, ``near_copy_threshold``)."""
    config, model, trainer, valid_data, test_data = load_genrec(rl_file, "--rl", overrides=overrides)
    supervised = load_checkpoint(supervised_file)
    if supervised["config"]["model"] != "GenRec":
        raise SystemExit(f"--supervised {supervised_file} holds a {supervised['config']['model']} model; this script mixes GenRec")
    tuned = {key: value.clone() for key, value in model.state_dict().items()}
    data = valid_data if split == "valid" else test_data
    rows = []
    for weight in weights:
        model.load_state_dict(interpolate(supervised["state_dict"], tuned, weight))
        results = score_seeds(trainer, data, split, range(config["seed"], config["seed"] + seeds))
        rows.append((weight, {key: [float(result[key]) for result in results] for key in SHOWN if all(key in result for result in results)}))
        print(f"weight {weight:g} ({len(rows)} of {len(weights)}): TargetSim {mean_sd(rows[-1][1]['targetsim'])[0]:.4f}, "
              f"FD {mean_sd(rows[-1][1]['fd'])[0]:.4f}", file=sys.stderr, flush=True)
    return rows


def report(rows, args):
    """The markdown table of ``rows`` (``interpolation_rows``) and the command that made it."""
    shown = list(rows[0][1])
    lines = [f"{args.split} split, {args.space} space, {args.seeds} sampling seeds per mix, best of {args.best_of}; weight 0 = `{args.supervised}`, 1 = `{args.rl}`",
             "", "```bash", "python " + " ".join(sys.argv), "```", "",
             "| weight of the RL fine-tune | " + " | ".join(f"{key} mean (sd)" for key in shown) + " |",
             "|---|" + "---|" * len(shown)]
    for weight, values in rows:
        lines.append(f"| {weight:g} | " + " | ".join("%.4f (%.4f)" % mean_sd(values[key]) for key in shown) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supervised", required=True, help="the supervised GenRec checkpoint the RL stage started from")
    parser.add_argument("--rl", required=True, help="the GenRec checkpoint after RL (its config scores every mix)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--best_of", type=int, default=1, help="samples per shown image, the one nearest the user's expectation kept")
    parser.add_argument("--near_copy_threshold", type=float, default=None,
                        help="count near copies at this similarity (chosen on validation; default: the checkpoint's)")
    parser.add_argument("--space", default="identity",
                        help="the evaluation space: 'identity', 'semantic' (genres and decades) or NAME=JSON, as run_benchmark.py's --spaces")
    parser.add_argument("--save", default=None, help="write the mix of the one --weights value as a GenRec checkpoint here")
    parser.add_argument("--out", default=None, help="markdown file for the table")
    parser.add_argument("--plot", default=None, help="PNG of each mix's TargetSim against its FD")
    parser.add_argument("--compare", nargs="*", default=[], help="RL runs' -rl.json logs whose validation paths --plot also draws")
    args = parser.parse_args()

    if args.save:
        if len(args.weights) != 1:
            raise SystemExit(f"--save writes one mix: give one --weights value, not {len(args.weights)}")
        save_mix(args.supervised, args.rl, args.weights[0], args.save)
    if args.best_of < 1:
        raise SystemExit(f"--best_of {args.best_of}: expected a positive number of samples per shown image")
    overrides = {"eval_best_of": args.best_of}
    if args.near_copy_threshold is not None:
        overrides["near_copy_threshold"] = args.near_copy_threshold
    overrides.update(next(iter(parse_spaces([args.space], SEMANTIC_FIELDS).values())))
    rows = interpolation_rows(args.supervised, args.rl, args.weights, args.split, args.seeds, overrides)
    write_report(report(rows, args), args.out)
    if args.plot:
        from plots import line_panel  # this folder's charts
        from rl_sweep_table import changed_settings, rl_defaults, run_label, validation_path

        mixes = f"weights {args.weights[0]:g} to {args.weights[-1]:g}" + (f", best of {args.best_of}" if args.best_of > 1 else "")
        series = {mixes: ([mean_sd(values["fd"])[0] for _, values in rows], [mean_sd(values["targetsim"])[0] for _, values in rows])}
        defaults = rl_defaults()
        series.update({"RL, " + run_label(changed_settings(log, defaults)): validation_path(log) for log in args.compare})
        line_panel(series, f"{args.split} TargetSim (up) against FD (right): weight mixes and RL runs' validations",
                   "FD to the next items", size=(640, 400)).save(args.plot)


if __name__ == "__main__":
    main()
