"""Does GenRec follow an instruction? The share of generated images a genre classifier assigns to the asked genre.

    python benchmarks/instruction_following.py --checkpoint saved/GenRec-....pth --genres Drama Comedy Action Thriller Romance \
        --seeds 3 --split test --out docs/instructor_ml-100k.md

The checkpoint must have an instructor (``n_instruction_tokens`` > 0). The judge is a genre classifier fitted
on the catalog in the *semantic* evaluation space (one-vs-rest logistic regressions on the catalog images'
embeddings against their genres), never the reward encoder whose text tower reads the instructions. For
every genre, each user of the split is asked "a <genre>" (as the synthesised training instructions say it)
and shown one image per sampling seed; the same users without an instruction are the control, and the
genre's base rate among the users' real next items (by the same classifier, on their images) is what a
generator that ignores instructions but matches the users would reach. TargetSim and PersonalLift in the
identity space say what following the instruction costs the personalisation.
"""

import argparse

import torch
import torch.nn.functional as F
from transformers import GenerationConfig

from eval_seeds import load_genrec, mean_sd, write_report  # this folder's seed-spread script
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.sampling import split_seed
from run_benchmark import SEMANTIC_FIELDS, parse_spaces

PERSONAL_LIFT_OTHERS = 100


def fit_genre_classifier(embeddings, labels, steps=300):
    """One-vs-rest logistic regressions ``(d, G)`` of ``labels`` ``(N, G)`` on ``embeddings`` ``(N, d)``."""
    weight = torch.zeros(embeddings.shape[1], labels.shape[1], requires_grad=True)
    bias = torch.zeros(labels.shape[1], requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.binary_cross_entropy_with_logits(embeddings @ weight + bias, labels) + 1e-4 * weight.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return lambda x: torch.sigmoid(x @ weight.detach() + bias.detach())


def genre_labels(content, genres, field):
    labels = torch.zeros(len(content.tokens), len(genres))
    for row, token in enumerate(content.tokens):
        if row and content.table is not None and token in content.table.index:
            item_genres = str(content.table.loc[token][field]).split()
            labels[row] = torch.tensor([genre in item_genres for genre in genres], dtype=torch.float)
    return labels


@torch.no_grad()
def generate_all(model, data, text, seed, guidance=1.0):
    """One image per row of ``data`` asked ``text`` (None: no instruction); ``guidance`` != 1 steers from the same
    request without the instruction toward it (classifier-free guidance on the instruction)."""
    config = GenerationConfig(**{**model.generation_config.to_dict(), "guidance_scale": guidance})
    images = []
    for interaction, _, _, _ in data:
        interaction = interaction.to(model.device)
        instruction = model.instructor.embed([text] * len(interaction)) if text else None
        negative = model.condition_tokens(interaction) if text and guidance != 1 else None
        codes = model.sample(model.condition_tokens(interaction, instruction=instruction), model.uniforms(interaction, 1, seed),
                             config if negative is not None else None, negative=negative)
        images.append(model.tokenizer.decode(codes))
    return torch.cat(images)


def personal_lift(shown, target_embeddings, generator):
    own = (shown * target_embeddings).sum(dim=1)
    others = torch.randint(0, len(shown), (len(shown), PERSONAL_LIFT_OTHERS), generator=generator)
    return (own - (shown.unsqueeze(1) * target_embeddings[others]).sum(dim=2).mean(dim=1)).mean().item()



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint trained with n_instruction_tokens > 0")
    parser.add_argument("--genres", nargs="+", default=["Drama", "Comedy", "Action", "Thriller", "Romance"])
    parser.add_argument("--genre_field", default="class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--semantic_fields", nargs="+", default=SEMANTIC_FIELDS)
    parser.add_argument("--guidance", type=float, default=1.0,
                        help="classifier-free guidance from the uninstructed request toward the instructed one (1 = none)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    spaces = parse_spaces(["identity", "semantic"], args.semantic_fields)
    config, model, _, valid_data, test_data = load_genrec(args.checkpoint, overrides=spaces["semantic"])
    if model.instructor is None:
        raise SystemExit(f"--checkpoint {args.checkpoint} has no instructor (n_instruction_tokens: 0)")
    data = valid_data if args.split == "valid" else test_data
    dataset = data._dataset
    content, judge, semantic = catalog_encoder(config, dataset)
    identity_config = load_genrec(args.checkpoint, overrides=spaces["identity"])[0]
    _, identity, identity_embeddings = catalog_encoder(identity_config, dataset)
    labels = genre_labels(content, list(args.genres), args.genre_field)
    items = torch.nonzero(content.has_image).flatten()
    items = items[items > 0]
    classify = fit_genre_classifier(semantic[items], labels[items])
    catalog_precision = ((classify(semantic[items]) > 0.5).float() == labels[items]).float().mean().item()
    targets = torch.cat([batch[0][model.ITEM_ID] for batch in data])
    target_identity = identity_embeddings[targets]

    seeds = [split_seed(seed, args.split) for seed in range(config["seed"], config["seed"] + args.seeds)]
    plain = [generate_all(model, data, None, seed) for seed in seeds]
    plain_semantic = [judge.encode_images(images) for images in plain]
    generator = torch.Generator().manual_seed(0)
    rows = []

    def personalisation(images_per_seed):
        shown = [identity.encode_images(images) for images in images_per_seed]
        return (mean_sd([(s * target_identity).sum(dim=1).mean().item() for s in shown]),
                mean_sd([personal_lift(s, target_identity, generator) for s in shown]))

    (plain_ts, _), (plain_pl, _) = personalisation(plain)
    for index, genre in enumerate(args.genres):
        text = f"a {genre.lower()}"
        asked = [generate_all(model, data, text, seed, args.guidance) for seed in seeds]
        follow = [(classify(judge.encode_images(images))[:, index] > 0.5).float().mean().item() for images in asked]
        control = [(classify(embedded)[:, index] > 0.5).float().mean().item() for embedded in plain_semantic]
        base = (classify(semantic[targets[content.has_image[targets]]])[:, index] > 0.5).float().mean().item()
        (ts, ts_sd), (pl, pl_sd) = personalisation(asked)
        (f, f_sd), (c, c_sd) = mean_sd(follow), mean_sd(control)
        rows.append(f'| "{text}" | {f:.3f} ({f_sd:.3f}) | {c:.3f} ({c_sd:.3f}) | {base:.3f} | {ts:.4f} ({ts_sd:.4f}) | {pl:.4f} ({pl_sd:.4f}) |')
        print(rows[-1], flush=True)

    command = (f"python benchmarks/instruction_following.py --checkpoint {args.checkpoint} --genres {' '.join(args.genres)} "
               f"--seeds {args.seeds} --split {args.split}" + (f" --guidance {args.guidance:g}" if args.guidance != 1 else ""))
    text = (f"{args.split} split, {len(targets)} users, {args.seeds} sampling seeds, one image per user and seed. Judge: one-vs-rest "
            f"logistic regressions on the semantic space's catalog embeddings (catalog label accuracy {catalog_precision:.3f}).\n\n`{command}`\n\n"
            "| instruction | assigned to the genre, instructed | same users, no instruction | the users' next items | "
            "TargetSim (identity) | PersonalLift (identity) |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
            + f"\n| (no instruction) | - | - | - | {plain_ts:.4f} | {plain_pl:.4f} |\n")
    write_report(text, args.out)


if __name__ == "__main__":
    main()
