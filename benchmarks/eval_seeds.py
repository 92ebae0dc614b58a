"""Score one trained GenRec under several sampling seeds: how much of a metric is the sampling noise.

    python benchmarks/eval_seeds.py --checkpoint saved/GenRec-....pth --split valid --seeds 10 --guidance_scales 1 0 --eval_samples 1

GenRec shows each user sampled images (``eval_samples`` per user), so its generative metrics depend on
the sampling seed. This script re-scores the same checkpoint with ``--seeds`` different seeds per
guidance scale (0 is unconditional sampling: the user is ignored) and prints the mean and standard
deviation over seeds. The validation split is the default; use the test split only for final rows.
"""

import argparse
import statistics

from recbole_gen.quick_start import load_data_and_model
from recbole_gen.trainer import get_trainer

SHOWN = ["targetsim", "personallift", "fd", "fd_mean", "ndcg@10"]


def load_genrec(checkpoint, flag="--checkpoint", overrides=None):
    """``(config, model, trainer, valid_data, test_data)`` of a GenRec checkpoint, ready to re-score (no gallery)."""
    config, model, _, _, valid_data, test_data = load_data_and_model(checkpoint, overrides)
    if config["model"] != "GenRec":
        raise SystemExit(f"{flag} {checkpoint} holds a {config['model']} model; this script scores GenRec")
    config["gallery_users"] = 0
    trainer = get_trainer(config["MODEL_TYPE"], "GenRec")(config, model)
    model.eval()
    return config, model, trainer, valid_data, test_data


def score_seeds(trainer, data, split, seeds):
    """The trainer's evaluation of ``data`` (the ``split`` split) once per sampling seed (``eval_seed``) in ``seeds``."""
    results = []
    for seed in seeds:
        trainer.config["eval_seed"] = seed
        results.append(trainer.evaluate(data, load_best_model=False, split=split))
    return results


def mean_sd(values):
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def write_report(text, out):
    """Print a benchmark script's markdown ``text`` and write it to ``out`` (a path, or None for print only)."""
    if out:
        with open(out, "w") as f:
            f.write(text)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint written by run_recbole_gen")
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.0, 0.0])
    parser.add_argument("--eval_samples", type=int, default=None, help="images per user (default: the checkpoint's)")
    args = parser.parse_args()

    overrides = {"eval_samples": args.eval_samples} if args.eval_samples else None
    config, model, trainer, valid_data, test_data = load_genrec(args.checkpoint, overrides=overrides)
    data = valid_data if args.split == "valid" else test_data
    seeds = range(config["seed"], config["seed"] + args.seeds)
    print(f"{args.split} split, {args.seeds} sampling seeds ({seeds[0]}..{seeds[-1]}), {config['eval_samples']} images per user, "
          f"temperature {model.generation_config.temperature}, top-k {model.generation_config.top_k}")
    print("| guidance | " + " | ".join(f"{key} mean (sd)" for key in SHOWN) + " | per seed targetsim |")
    print("|---|" + "---|" * (len(SHOWN) + 1))
    for scale in args.guidance_scales:
        model.generation_config.update(guidance_scale=scale)
        results = score_seeds(trainer, data, args.split, seeds)
        cells = ["%.4f (%.4f)" % mean_sd([float(result[key]) for result in results]) for key in SHOWN]
        per_seed = ", ".join(f"{float(result['targetsim']):.4f}" for result in results)
        print(f"| {scale:g} | " + " | ".join(cells) + f" | {per_seed} |", flush=True)


if __name__ == "__main__":
    main()
