"""GeneRec's selection mode: among crops of an item, show the one closest to the user. Does it help the user?

    python benchmarks/selection_mode.py --checkpoint saved/GenRec-....pth --recommender saved/SASRec-....pth \
        --crop_scales 0.6 0.75 0.9 --split valid --out docs/selection_mode_valid_ml-100k.md

The item to repurpose for each user is the recommender's top-1 catalog item (as in editor_curve.py).
:class:`~recbole_gen.pipeline.GenRecPipeline` with ``crops=True`` cuts ``--k`` crops of it (the centre, the
corners, the edges' middles; :func:`~recbole_gen.pipeline.item_crops`) and picks the one closest, in the
reward space (never an evaluation space), to what the GenRec checkpoint's user encoder expects. Per
evaluation space, TargetSim (cosine to the user's next item) of: the item's own image; its reconstruction
by the checkpoint's tokenizer (what the crops are cut from); the centre crop (no selection); a crop at
random (the mean over the k crops); the selected crop; and the crop closest to the target (it cheats: it
reads the next item), which bounds what any selection could gain. Crops are deterministic: no seeds.
"""

import argparse

import torch

from editor_curve import top1_sources
from eval_seeds import load_genrec, write_report  # this folder's seed-spread script
from recbole_gen.data.item_content import item_texts
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.pipeline import GenRecPipeline
from recbole_gen.rl.reward import RewardModel
from run_benchmark import SEMANTIC_FIELDS, parse_spaces

ROWS = ["the item's own image", "its reconstruction (scale 1)", "centre crop", "a crop at random (mean over k)",
        "selected crop (closest to the user, reward space)", "crop closest to the target (cheats)",
        "selected minus the item's image [95% CI]"]


def paired_interval(differences, resamples=2000, seed=0):
    """Mean of per-user ``differences`` and its 95% bootstrap interval over users."""
    generator = torch.Generator().manual_seed(seed)
    means = differences[torch.randint(0, len(differences), (resamples, len(differences)), generator=generator)].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975])).tolist()
    return differences.mean().item(), low, high


@torch.no_grad()
def crop_target_sims(pipeline, data, sources, k, scale, encoder, embeddings):
    """``(N, k)`` each row's crops' cosine to its next item, and ``(N,)`` the index (within k) the pipeline picks."""
    sims, picked, start = [], [], 0
    for interaction, _, _, _ in data:
        interaction = interaction.to(pipeline.model.device)
        rows = sources[start : start + len(interaction)]
        start += len(interaction)
        output = pipeline(interaction, edit_items=rows, num_candidates=k, crops=True, crop_scale=scale)
        shown = encoder.encode_images(output.candidates.images).view(len(interaction), k, -1)
        target = embeddings[interaction[pipeline.model.ITEM_ID].cpu()]
        sims.append((shown * target[:, None]).sum(dim=-1))
        picked.append(output.chosen - torch.arange(len(interaction)) * k)
    return torch.cat(sims), torch.cat(picked)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint (its user encoder, tokenizer and reward encoder)")
    parser.add_argument("--recommender", required=True, help="the checkpoint whose top-1 item is cropped (e.g. SASRec)")
    parser.add_argument("--crop_scales", type=float, nargs="+", default=[0.6, 0.75, 0.9])
    parser.add_argument("--k", type=int, default=9, help="crops per item (at most 9)")
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--spaces", nargs="+", default=["identity", "semantic"])
    parser.add_argument("--semantic_fields", nargs="+", default=SEMANTIC_FIELDS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    lines = []
    for space, overrides in parse_spaces(args.spaces, args.semantic_fields).items():
        config, model, _, valid_data, test_data = load_genrec(args.checkpoint, "--checkpoint", overrides)
        data = valid_data if args.split == "valid" else test_data
        dataset = data._dataset
        pipeline = GenRecPipeline(model, config, item_texts(config, dataset), RewardModel.from_config(config, dataset))
        _, encoder, embeddings = catalog_encoder(config, dataset)
        sources = top1_sources(args.recommender, data, dataset.field2id_token[config["ITEM_ID_FIELD"]])
        targets = torch.cat([batch[0][model.ITEM_ID] for batch in data])
        own = (embeddings[sources] * embeddings[targets]).sum(dim=1)
        reconstructed, _ = crop_target_sims(pipeline, data, sources, 1, 1.0, encoder, embeddings)
        lines += [f"\n### {space} space\n", "| crop scale | " + " | ".join(ROWS) + " |", "|---" * (len(ROWS) + 1) + "|"]
        for scale in args.crop_scales:
            sims, picked = crop_target_sims(pipeline, data, sources, args.k, scale, encoder, embeddings)
            selected = sims.gather(1, picked[:, None]).flatten()
            values = [own.mean().item(), reconstructed.mean().item(), sims[:, 0].mean().item(), sims.mean().item(),
                      selected.mean().item(), sims.max(dim=1).values.mean().item()]
            gain, low, high = paired_interval(selected - own)
            lines.append(f"| {scale:g} | " + " | ".join(f"{value:.4f}" for value in values) + f" | {gain:+.4f} [{low:+.4f}, {high:+.4f}] |")
            print(lines[-1], flush=True)

    command = (f"python benchmarks/selection_mode.py --checkpoint {args.checkpoint} --recommender {args.recommender} "
               f"--crop_scales {' '.join(f'{s:g}' for s in args.crop_scales)} --k {args.k} --split {args.split}")
    text = (f"{args.split} split, {args.k} crops per item (deterministic: no sampling seeds); TargetSim, the mean over "
            f"users of the shown image's cosine to their next item.\n\n`{command}`\n" + "\n".join(lines) + "\n")
    write_report(text, args.out)


if __name__ == "__main__":
    main()
