"""What the instructor's show / edit / create thresholds trade, on the validation split.

    python benchmarks/instructor_thresholds.py --checkpoint saved/GenRec-....pth --seeds 2 --out docs/instructor_rule_ml-100k.md

For every validation user: the user encoder's top-1 softmax probability (what the rule reads), and the
TargetSim (identity space) of the three actions: showing the top catalog item's own image, editing it at
``editor_strength``, creating anew. Users are grouped by quartile of that probability; the table says which
action serves each group best and how the configured thresholds split the users.
"""

import argparse

import torch

from eval_seeds import load_genrec, write_report  # this folder's seed-spread script
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.sampling import split_seed


@torch.no_grad()
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config, model, _, valid_data, _ = load_genrec(args.checkpoint)
    _, encoder, embeddings = catalog_encoder(config, valid_data._dataset)
    probability, show, edit, create = [], [], [], []
    for interaction, _, _, _ in valid_data:
        interaction = interaction.to(model.device)
        top_probability, top = model.user_encoder_scores(interaction).softmax(dim=1).max(dim=1)
        target = embeddings[interaction[model.ITEM_ID].cpu()]
        condition = model.condition_tokens(interaction)
        edits, creations = [], []
        for seed in range(config["seed"], config["seed"] + args.seeds):
            uniforms = model.uniforms(interaction, 1, split_seed(seed, "valid"))
            for out, kwargs in ((edits, {"start_codes": model.item_codes[top], "strength": config["editor_strength"]}), (creations, {})):
                images = model.tokenizer.decode(model.sample(condition, uniforms, **kwargs))
                out.append((encoder.encode_images(images) * target).sum(dim=1))
        probability.append(top_probability.cpu())
        show.append((embeddings[top.cpu()] * target).sum(dim=1))
        edit.append(torch.stack(edits).mean(dim=0))
        create.append(torch.stack(creations).mean(dim=0))
    probability, show, edit, create = (torch.cat(x) for x in (probability, show, edit, create))
    edges = probability.quantile(torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    rows = []
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist()):
        users = (probability >= low) & (probability <= high)
        means = {name: values[users].mean().item() for name, values in (("show", show), ("edit", edit), ("create", create))}
        best = max(means, key=means.get)
        rows.append(f"| {low:.4f} - {high:.4f} | {int(users.sum())} | {means['show']:.4f} | {means['edit']:.4f} | {means['create']:.4f} | {best} |")
    rule = {"show": probability >= config["instructor_show_threshold"],
            "edit": (probability >= config["instructor_edit_threshold"]) & (probability < config["instructor_show_threshold"])}
    rule["create"] = ~(rule["show"] | rule["edit"])
    split = ", ".join(f"{name} {mask.float().mean():.3f}" for name, mask in rule.items())
    command = f"python benchmarks/instructor_thresholds.py --checkpoint {args.checkpoint} --seeds {args.seeds}"
    text = (f"Validation split, {len(probability)} users, edits and creations averaged over {args.seeds} sampling seeds; "
            f"editor_strength {config['editor_strength']}.\n\n`{command}`\n\n"
            "| top-1 probability (quartile) | users | TargetSim show | TargetSim edit | TargetSim create | best |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows)
            + f"\n\nThe configured thresholds (show >= {config['instructor_show_threshold']}, edit >= "
            f"{config['instructor_edit_threshold']}) send these shares of the users to each action: {split}.\n")
    write_report(text, args.out)


if __name__ == "__main__":
    main()
