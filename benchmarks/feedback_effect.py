"""Does feedback move what GenRec creates? Cosine of the created images to a liked or a disliked item.

    python benchmarks/feedback_effect.py --checkpoint saved/GenRec-....pth --seeds 2 --split test --out docs/feedback_ml-100k.md

Every user of the split gets three requests through GenRecPipeline (the creator only: no catalog item
shown, no checks): no feedback; one liked item; one disliked item. The item is drawn at random per user
(items with an image, seeded), the same item for the like and the dislike request. Reported: the mean cosine,
in the identity evaluation space, of the created images to that item, mean (sd) over sampling seeds.
Liking should raise it, disliking lower it.
"""

import argparse

import torch

from eval_seeds import load_genrec, mean_sd, write_report  # this folder's seed-spread script
from recbole_gen.data.item_content import item_texts
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.sampling import split_seed
from recbole_gen.pipeline import GenRecPipeline

CREATE_ONLY = {"instructor_show_threshold": 2.0, "instructor_edit_threshold": 2.0}



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config, model, _, valid_data, test_data = load_genrec(args.checkpoint)
    data = valid_data if args.split == "valid" else test_data
    dataset = data._dataset
    _, encoder, embeddings = catalog_encoder(config, dataset)
    pipeline = GenRecPipeline(model, {**config.final_config_dict, **CREATE_ONLY}, item_texts(config, dataset))
    candidates = torch.nonzero(model.has_image.cpu()).flatten()
    candidates = candidates[candidates > 0]
    generator = torch.Generator().manual_seed(config["seed"])
    sims = {"no feedback": [], "liked": [], "disliked": []}
    for seed in range(config["seed"], config["seed"] + args.seeds):
        per_request = {name: [] for name in sims}
        for interaction, _, _, _ in data:
            interaction = interaction.to(model.device)
            items = candidates[torch.randint(0, len(candidates), (len(interaction),), generator=generator)]
            feedback = [[item] for item in items.tolist()]
            for name, kwargs in (("no feedback", {}), ("liked", {"like": feedback}), ("disliked", {"dislike": feedback})):
                output = pipeline(interaction, num_candidates=1, seed=split_seed(seed, args.split), **kwargs)
                shown = encoder.encode_images(output.images)
                per_request[name].append((shown * embeddings[items]).sum(dim=1))
        for name in sims:
            sims[name].append(torch.cat(per_request[name]).mean().item())
    rows = [f"| {name} | {m:.4f} ({sd:.4f}) |" for name, (m, sd) in ((name, mean_sd(values)) for name, values in sims.items())]
    command = f"python benchmarks/feedback_effect.py --checkpoint {args.checkpoint} --seeds {args.seeds} --split {args.split}"
    text = (f"{args.split} split, {args.seeds} sampling seeds, one created image per user and request; feedback_weight "
            f"{config['feedback_weight']}, feedback_guidance_scale {config['feedback_guidance_scale']}.\n\n`{command}`\n\n"
            "| request | cosine of the created image to the item (identity space) |\n|---|---|\n" + "\n".join(rows) + "\n")
    write_report(text, args.out)


if __name__ == "__main__":
    main()
