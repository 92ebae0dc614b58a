"""GeneRec's fidelity checks on each generator, and how often a planted near-copy is caught.

    python benchmarks/fidelity_rates.py --checkpoints autoregressive=saved/GenRec-A.pth diffusion=saved/GenRec-B.pth \
        --split test --out docs/fidelity_ml-100k.md

For every GenRec checkpoint: ``eval_samples`` images per user of the split, from the split's sampling
stream, judged by the checks of ``fidelity_checks`` (recbole_gen.fidelity, in the reward encoder's space,
thresholds calibrated on the catalog alone): the share passing each check and all of them. Then planted
images, the same for every checkpoint that shares a tokenizer: the users' next items reconstructed by the
tokenizer (a copy the generator could make), the catalog images themselves at the tokenizer's size
(a copy passed off as new), and uniform noise (far off the catalog). A near-copy check should catch the
first two and pass the third; the realism check should pass the first two and reject the third.
"""

import argparse

import torch

from eval_seeds import load_genrec, write_report  # this folder's seed-spread script
from recbole_gen.data.item_content import item_content
from recbole_gen.fidelity.guard import GuardResult, pass_rates
from recbole_gen.model.sampling import split_seed
from recbole_gen.pipeline import request_guard

CHECKS = ("near_copy", "realism", "all")


def judge(guard, batches):
    """Pass rates of ``guard`` over the images of ``batches`` (an iterable of uint8 tensors)."""
    return pass_rates(GuardResult.concatenate([guard(images) for images in batches]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="NAME=PATH", help="GenRec checkpoints to judge")
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--out", default=None, help="markdown file for the table")
    args = parser.parse_args()

    rows, planted_rows, tokenizers = [], [], set()
    for spec in args.checkpoints:
        name, _, path = spec.partition("=")
        config, model, trainer, valid_data, test_data = load_genrec(path, "--checkpoints")
        data = valid_data if args.split == "valid" else test_data
        dataset = data._dataset
        guard = request_guard(config, model, dataset, trainer.reward_model(dataset))
        seed = split_seed(config["eval_seed"], args.split)
        samples = config["eval_samples"]
        rates = judge(guard, (model.generate(batch[0].to(model.device), samples, seed=seed).images for batch in data))
        rows.append(f"| {name} | {config['generator']} | {rates['n_images']} | " + " | ".join(f"{rates[c]:.3f}" for c in CHECKS) + " |")
        print(rows[-1], flush=True)
        key = tuple(model.item_codes.flatten()[:64].tolist())  # same tokenizer, same catalog codes: same planted images
        if key in tokenizers:
            continue
        tokenizers.add(key)
        targets = torch.cat([batch[0][model.ITEM_ID] for batch in data])
        targets = targets[model.has_image[targets].cpu()]
        size = model.tokenizer.image_size
        catalog = item_content(config, dataset).images[targets].float()
        planted = {"reconstructions of the next items": model.tokenizer.decode(model.item_codes[targets]),
                   "the next items' own images": torch.nn.functional.interpolate(catalog, size=(size, size), mode="area").round().to(torch.uint8)}
        generator = torch.Generator().manual_seed(0)
        planted["uniform noise"] = torch.randint(0, 256, (len(targets), 3, size, size), generator=generator, dtype=torch.uint8)
        for what, images in planted.items():
            rates = judge(guard, images.split(512))
            planted_rows.append(f"| {name} | {what} | {rates['n_images']} | " + " | ".join(f"{rates[c]:.3f}" for c in CHECKS) + " |")
            print(planted_rows[-1], flush=True)

    header = "| {} | {} | images | near_copy passed | realism passed | all passed |\n|---|---|---|---|---|---|"
    text = (f"{args.split} split; `python benchmarks/fidelity_rates.py --checkpoints {' '.join(args.checkpoints)} --split {args.split}`\n\n"
            "Generated images (eval_samples per user, the split's sampling stream):\n\n" + header.format("checkpoint", "generator") + "\n"
            + "\n".join(rows) + "\n\nPlanted images (a near-copy check should fail the first two, pass the noise; realism the reverse):\n\n"
            + header.format("tokenizer of", "planted") + "\n" + "\n".join(planted_rows) + "\n")
    write_report(text, args.out)


if __name__ == "__main__":
    main()
