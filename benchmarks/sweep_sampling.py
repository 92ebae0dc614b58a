"""Score one trained GenRec under several sampling settings (temperature, top-k, guidance), on the validation split.

    python benchmarks/sweep_sampling.py --checkpoint saved/GenRec-....pth --seeds 3 --out docs/sampling_sweep_ml-100k.md

Each setting is scored with ``--seeds`` sampling seeds (``eval_samples`` images per user each) and
reported as mean (sd), to choose GenRec.yaml's sampling defaults. Choices are made on the validation
split; ``--split test`` exists only to report a chosen setting's final figures.
"""

import argparse
import itertools
import sys
import time

from eval_seeds import load_genrec, mean_sd, score_seeds  # this folder's seed-spread script

SHOWN = ["ndcg@10", "targetsim", "personallift", "fd", "catalogfd", "diversity", "novelty"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint written by run_recbole_gen")
    parser.add_argument("--split", choices=["valid", "test"], default="valid", help="test only for final figures")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.5])
    parser.add_argument("--top_ks", type=int, nargs="+", default=[100, 20])
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--out", default=None, help="markdown file to write (default: print only)")
    args = parser.parse_args()

    config, model, trainer, valid_data, test_data = load_genrec(args.checkpoint)
    data = valid_data if args.split == "valid" else test_data
    seeds = range(config["seed"], config["seed"] + args.seeds)
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             f"Date: {time.strftime('%Y-%m-%d')}. {'Validation' if args.split == 'valid' else 'Test'} split; {args.seeds} sampling seeds "
             f"({seeds[0]}..{seeds[-1]}), {config['eval_samples']} images per user each; mean (sd over seeds).", "",
             "| temperature | top-k | guidance | " + " | ".join(SHOWN) + " |", "|---" * (len(SHOWN) + 3) + "|"]
    print("\n".join(lines), flush=True)
    for temperature, top_k, scale in itertools.product(args.temperatures, args.top_ks, args.guidance_scales):
        model.generation_config.update(temperature=temperature, top_k=top_k, guidance_scale=scale)
        results = score_seeds(trainer, data, args.split, seeds)
        cells = ["%.4f (%.4f)" % mean_sd([float(result[key]) for result in results]) for key in SHOWN]
        lines.append(f"| {temperature:g} | {top_k} | {scale:g} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
