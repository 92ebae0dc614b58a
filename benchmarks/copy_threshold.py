"""Choose the near-copy threshold of each evaluation space on the validation split.

    python benchmarks/copy_threshold.py --checkpoint saved/GenRec-....pth --spaces identity semantic \
        --out docs/copy_threshold_ml-100k.md

A generated image that does not repeat a catalog item's codes exactly can still be a copy: one code
off, or a reconstruction the tokenizer decodes slightly differently. The near-copy threshold is a cosine
to the closest catalog item in an evaluation space. It is set to the ``--quantile`` (default 5%) of that
cosine over the *reconstructions* of the validation users' next items (their own codes, decoded), so 95%
of catalog reconstructions count as copies; the table says how many of GenRec's own generations that
are not exact copies it catches too. Validation split only: the threshold is a choice.

A near-copy rule must also let new items through. Each catalog item is held out of the catalog, as a new
item would be, and compared with the others: its own poster, and its reconstruction (a new item as the
tokenizer draws it). A threshold that catches most of those cannot tell a copy from a new item of the same
kind. The second table checks the copy count by image codes (``near_copy_code_share``, no encoder) the
same way: the share of held-out items that share that many codes with another item, against the share of
the checkpoint's generations.
"""

import argparse
import json
import shlex
import sys

import torch
import torch.nn.functional as F

from eval_seeds import load_genrec  # this folder's seed-spread script
from recbole_gen.evaluator.metrics import ContentInputs, nearest_catalog_sim
from recbole_gen.model.sampling import split_seed
from run_benchmark import SEMANTIC_FIELDS, parse_spaces



def nearest_sims(trainer, model, data, reconstruct, seed):
    """Cosines to the closest catalog item of the shown images and the largest share of their codes equal to
    one catalog item's (1: an exact copy), over ``data``."""
    sims, shares = [], []
    for interaction, _, _, _ in data:
        interaction = interaction.to(trainer.device)
        generation = model.reconstruct_targets(interaction) if reconstruct else model.generate(interaction, trainer.config["eval_samples"], seed=seed)
        shown = trainer.catalog.encoder.encode_images(generation.images)
        inputs = ContentInputs.build(shown.unsqueeze(1), trainer.catalog.embeddings, trainer.catalog.content.has_image,
                                     torch.zeros(0, 2, dtype=torch.long))
        sims.append(nearest_catalog_sim(inputs).flatten())
        shares.append(model.closest_codes(generation.codes)[1].cpu())
    return torch.cat(sims), torch.cat(shares)


def held_out_sims(catalog, reconstructions):
    """``(posters, drawn)``: for each catalog item, held out of the catalog as a new item would be, the cosine of
    its own embedding (``catalog`` ``(n, d)``, unit rows) and of its reconstruction's (``reconstructions``, same
    rows) to the closest *other* catalog item."""
    itself = torch.eye(len(catalog), dtype=torch.bool)
    nearest = lambda sims: sims.masked_fill(itself, -torch.inf).max(dim=1).values
    return nearest(catalog @ catalog.T), nearest(reconstructions @ catalog.T)


def held_out_code_shares(item_codes):
    """``(n,)``: for each of the catalog items' codes ``(n, n_tokens)``, the largest share of them equal, position by
    position, to another item's (1: the same image codes as another item)."""
    agree = (item_codes[:, None] == item_codes[None]).sum(dim=-1).fill_diagonal_(-1)
    return agree.max(dim=1).values / item_codes.shape[1]


def catalog_reconstructions(trainer, model):
    """``(catalog, reconstructions, codes)`` of the catalog items with an image: their unit embeddings in the
    evaluation space, their reconstructions' and their image codes."""
    items = torch.nonzero(model.has_image).flatten()
    items = items[items > 0]
    codes = model.item_codes[items]
    drawn = torch.cat([trainer.catalog.encoder.encode_images(model.tokenizer.decode(part)).float().cpu()
                       for part in codes.split(256)])
    catalog = trainer.catalog.embeddings[items.cpu()].float()
    return F.normalize(catalog, dim=-1), F.normalize(drawn, dim=-1), codes.cpu()


def share(mask):
    return f"{mask.float().mean():.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint (its generations are counted)")
    parser.add_argument("--spaces", nargs="+", default=["identity", "semantic"])
    parser.add_argument("--semantic_fields", nargs="+", default=SEMANTIC_FIELDS)
    parser.add_argument("--quantile", type=float, default=0.05)
    parser.add_argument("--code_share", type=float, default=None,
                        help="the code share to check (default: the checkpoint's near_copy_code_share)")
    parser.add_argument("--out", default=None, help="markdown file for the table")
    args = parser.parse_args()

    rows, thresholds = [], {}
    for name, overrides in parse_spaces(args.spaces, args.semantic_fields).items():
        config, model, trainer, valid_data, _ = load_genrec(args.checkpoint, overrides=overrides)
        trainer.prepare_catalog(valid_data._dataset)
        seed = split_seed(config["eval_seed"], "valid")  # the validation split's own sampling stream
        reconstructions, _ = nearest_sims(trainer, model, valid_data, True, seed)
        generated, shares = nearest_sims(trainer, model, valid_data, False, seed)
        catalog, drawn, item_codes = catalog_reconstructions(trainer, model)
        posters, drawn_new = held_out_sims(catalog, drawn)
        threshold = round(reconstructions.quantile(args.quantile).item(), 4)
        thresholds[name] = threshold
        novel = generated[shares < 1]
        rows.append(f"| {name} | {threshold:.4f} | {share(reconstructions >= threshold)} | {share(shares >= 1)} | "
                    f"{share(novel >= threshold)} | {share(posters >= threshold)} | {share(drawn_new >= threshold)} | "
                    f"{reconstructions.median():.4f} | {novel.median():.4f} | {drawn_new.median():.4f} |")
    code_share = config["near_copy_code_share"] if args.code_share is None else args.code_share
    held_out = held_out_code_shares(item_codes)
    n_tokens = item_codes.shape[1]
    counts = torch.bincount((held_out * n_tokens).round().long(), minlength=n_tokens + 1).tolist()
    generated_counts = torch.bincount((shares * n_tokens).round().long(), minlength=n_tokens + 1).tolist()
    table = "\n".join([
        f"Validation split, {args.checkpoint}; threshold = {args.quantile:g} quantile of the reconstructions' cosine to their closest catalog item.",
        "Held out: each catalog item taken out of the catalog, as a new item would be, and compared with the others (its own poster, and its reconstruction: a new item as the tokenizer draws it).",
        "",
        "| space | near_copy_threshold | reconstructions caught | generations: exact copies | generations that are not exact copies: caught "
        "| held-out posters caught | held-out reconstructions caught | reconstructions: median cosine | non-copies: median cosine | held-out reconstructions: median cosine |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows, "", f"near_copy_threshold per space: `{json.dumps(thresholds)}`",
        "",
        f"By image codes (no encoder), near_copy_code_share = {code_share:g}: a shown image sharing at least that share of its "
        f"{n_tokens} codes, position by position, with one catalog item is a copy.",
        "",
        "| | caught by codes | exact copies (all codes) |",
        "|---|---|---|",
        f"| held-out catalog items (their largest share with another item) | {share(held_out >= code_share)} | {share(held_out >= 1)} |",
        f"| generations | {share(shares >= code_share)} | {share(shares >= 1)} |",
        f"| generations that are not exact copies | {share(shares[shares < 1] >= code_share)} | - |",
        "",
        f"Codes shared with the closest catalog item (0 to {n_tokens}), count of held-out catalog items: `{counts}`",
        "",
        f"The same for the generations: `{generated_counts}`",
    ])
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# Near-copy thresholds\n\n`python {shlex.join(sys.argv)}`\n\n{table}\n")


if __name__ == "__main__":
    main()
