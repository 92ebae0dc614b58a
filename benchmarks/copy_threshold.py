"""Choose the near-copy threshold of each evaluation space on the validation split.

    python benchmarks/copy_threshold.py --checkpoint saved/GenRec-....pth --spaces identity semantic \
        --out docs/copy_threshold_ml-100k.md

A generated image that does not repeat a catalog item's codes exactly can still be a copy: one code
off, or a reconstruction the tokenizer decodes slightly differently. The near-copy threshold is a cosine
to the closest catalog item in an evaluation space. It is set to the ``--quantile`` (default 5%) of that
cosine over the *reconstructions* of the validation users' next items (their own codes, decoded), so 95%
of catalog reconstructions count as copies; the table says how many of GenRec's own generations that
are not exact copies it catches too. Validation split only: the threshold is a choice.
"""

import argparse
import json
import shlex
import sys

import torch

from eval_seeds import load_genrec  # this folder's seed-spread script
from recbole_gen.evaluator.metrics import ContentInputs, nearest_catalog_sim
from recbole_gen.model.sampling import split_seed
from run_benchmark import parse_spaces



def nearest_sims(trainer, model, data, reconstruct, seed):
    """Cosines to the closest catalog item of the shown images and which are exact copies, over ``data``."""
    sims, copied = [], []
    for interaction, _, _, _ in data:
        interaction = interaction.to(trainer.device)
        generation = model.reconstruct_targets(interaction) if reconstruct else model.generate(interaction, trainer.config["eval_samples"], seed=seed)
        shown = trainer.catalog.encoder.encode_images(generation.images)
        inputs = ContentInputs.build(shown.unsqueeze(1), trainer.catalog.embeddings, trainer.catalog.content.has_image,
                                     torch.zeros(0, 2, dtype=torch.long))
        sims.append(nearest_catalog_sim(inputs).flatten())
        copied.append((model.copied_items(generation.codes) > 0).cpu())
    return torch.cat(sims), torch.cat(copied)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a supervised GenRec checkpoint")
    parser.add_argument("--spaces", nargs="+", default=["identity", "semantic"])
    parser.add_argument("--semantic_fields", nargs="+", default=["class", "release_year"])
    parser.add_argument("--quantile", type=float, default=0.05)
    parser.add_argument("--out", default=None, help="markdown file for the table")
    args = parser.parse_args()

    rows, thresholds = [], {}
    for name, overrides in parse_spaces(args.spaces, args.semantic_fields).items():
        config, model, trainer, valid_data, _ = load_genrec(args.checkpoint, overrides=overrides)
        trainer.prepare_catalog(valid_data._dataset)
        seed = split_seed(config["eval_seed"], "valid")  # the validation split's own sampling stream
        reconstructions, _ = nearest_sims(trainer, model, valid_data, True, seed)
        generated, copied = nearest_sims(trainer, model, valid_data, False, seed)
        threshold = round(reconstructions.quantile(args.quantile).item(), 4)
        thresholds[name] = threshold
        novel = generated[~copied]
        rows.append(f"| {name} | {threshold:.4f} | {(reconstructions >= threshold).float().mean():.3f} | {copied.float().mean():.3f} | "
                    f"{(novel >= threshold).float().mean():.3f} | {reconstructions.median():.4f} | {novel.median():.4f} |")
    table = "\n".join([
        f"Validation split, {args.checkpoint}; threshold = {args.quantile:g} quantile of the reconstructions' cosine to their closest catalog item.",
        "",
        "| space | near_copy_threshold | reconstructions caught | generations: exact copies | generations that are not exact copies: caught | reconstructions: median cosine | non-copies: median cosine |",
        "|---|---|---|---|---|---|---|",
        *rows, "", f"near_copy_threshold per space: `{json.dumps(thresholds)}`",
    ])
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# Near-copy thresholds\n\n`python {shlex.join(sys.argv)}`\n\n{table}\n")


if __name__ == "__main__":
    main()
