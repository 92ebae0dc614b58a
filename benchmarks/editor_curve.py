"""The AI editor's trade-off: how far an edited item moves from its source against what it gains for the user.

    python benchmarks/editor_curve.py --editors autoregressive=saved/GenRec-A.pth diffusion=saved/GenRec-B.pth \
        --recommender saved/SASRec-....pth --strengths 0 0.25 0.5 0.75 1 --seeds 3 --split test \
        --out docs/editor_ml-100k.md --plot docs/img/editor_ml-100k.png

The source of every user's edit is the recommender's top-1 catalog item (items already seen and items
without an image excluded, as in its evaluation). Each editor (a GenRec checkpoint) edits it for the user
at every ``--strengths`` value (0 keeps the item's codes, 1 creates anew). Per evaluation space: the
edited image's cosine to the source item (how much of the item is kept) and its TargetSim gain over
the source item's own image (what editing buys the user), mean (sd) over sampling seeds.
"""

import argparse

import torch

from eval_seeds import load_genrec, mean_sd, write_report  # this folder's seed-spread script
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.sampling import split_seed
from recbole_gen.quick_start import load_data_and_model
from run_benchmark import SEMANTIC_FIELDS, parse_spaces


def top1_sources(recommender, data, item_tokens):
    """``(N,)`` the recommender's top-1 item per row of ``data`` (seen items and items without content excluded)."""
    config, model, dataset, _, valid_data, test_data = load_data_and_model(recommender)
    if list(dataset.field2id_token[config["ITEM_ID_FIELD"]]) != list(item_tokens):
        raise SystemExit(f"--recommender {recommender}: its dataset numbers the items differently from the editors'")
    model.eval()
    sources = []
    with torch.no_grad():
        for interaction, history_index, _, _ in data:
            scores = model.full_sort_predict(interaction.to(model.device)).view(len(interaction), -1).float()
            scores[:, 0] = -torch.inf
            if history_index is not None:
                scores[history_index] = -torch.inf
            sources.append(scores.argmax(dim=1).cpu())
    return torch.cat(sources)


@torch.no_grad()
def edit_all(model, data, sources, strength, seed):
    """Every row's edited images (one per user)."""
    images, start = [], 0
    for interaction, _, _, _ in data:
        interaction = interaction.to(model.device)
        rows = sources[start : start + len(interaction)].to(model.device)
        start += len(interaction)
        codes = model.sample(model.condition_tokens(interaction), model.uniforms(interaction, 1, seed), start_codes=model.item_codes[rows],
                             strength=strength)
        images.append(model.tokenizer.decode(codes))
    return torch.cat(images)



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", nargs="+", required=True, metavar="NAME=PATH", help="GenRec checkpoints that edit")
    parser.add_argument("--recommender", required=True, help="the checkpoint whose top-1 item is edited (e.g. SASRec)")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--spaces", nargs="+", default=["identity", "semantic"])
    parser.add_argument("--semantic_fields", nargs="+", default=SEMANTIC_FIELDS)
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    lines, series = [], {}
    for space, overrides in parse_spaces(args.spaces, args.semantic_fields).items():
        lines += [f"\n### {space} space\n", "| editor | strength | cosine to the source | TargetSim mean (sd) | gain over the source |",
                  "|---|---|---|---|---|"]
        for spec in args.editors:
            name, _, path = spec.partition("=")
            config, model, _, valid_data, test_data = load_genrec(path, "--editors", overrides)
            data = valid_data if args.split == "valid" else test_data
            dataset = data._dataset
            _, encoder, embeddings = catalog_encoder(config, dataset)
            sources = top1_sources(args.recommender, data, dataset.field2id_token[config["ITEM_ID_FIELD"]])
            targets = torch.cat([batch[0][model.ITEM_ID] for batch in data])
            source_sim = (embeddings[sources] * embeddings[targets]).sum(dim=1).mean().item()
            lines.append(f"| (the source item's own image) | - | 1.0000 | {source_sim:.4f} | 0 |")
            xs, ys = [], []
            for strength in args.strengths:
                kept, target_sims = [], []
                for seed in range(config["seed"], config["seed"] + args.seeds):
                    shown = encoder.encode_images(edit_all(model, data, sources, strength, split_seed(seed, args.split)))
                    kept.append((shown * embeddings[sources]).sum(dim=1).mean().item())
                    target_sims.append((shown * embeddings[targets]).sum(dim=1).mean().item())
                (k, _), (t, t_sd) = mean_sd(kept), mean_sd(target_sims)
                lines.append(f"| {name} | {strength:g} | {k:.4f} | {t:.4f} ({t_sd:.4f}) | {t - source_sim:+.4f} |")
                print(lines[-1], flush=True)
                xs.append(k)
                ys.append(t - source_sim)
            series.setdefault(space, {})[name] = (xs, ys)

    command = "python benchmarks/editor_curve.py " + " ".join(
        [f"--editors {' '.join(args.editors)}", f"--recommender {args.recommender}", f"--strengths {' '.join(f'{s:g}' for s in args.strengths)}",
         f"--seeds {args.seeds}", f"--split {args.split}"])
    text = (f"{args.split} split, {args.seeds} sampling seeds, one edit per user; strengths {', '.join(f'{s:g}' for s in args.strengths)} "
            f"(0 = the item's codes, 1 = created anew).\n\n`{command}`\n" + "\n".join(lines) + "\n")
    if args.plot:
        from plots import line_panel, sheet

        panels = [line_panel(by_editor, f"{space}: TargetSim gain (up) vs cosine to source (right)", "cosine to the source item")
                  for space, by_editor in series.items()]
        sheet(panels).save(args.plot)
    write_report(text, args.out)


if __name__ == "__main__":
    main()
