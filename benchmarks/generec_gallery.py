"""Galleries of GeneRec's editor and instructor: the same users, one row each.

    python benchmarks/generec_gallery.py --checkpoint saved/GenRec-....pth --users 1,2,3,4 \
        --strengths 0 0.25 0.5 0.75 1 --instructions "a comedy" "a horror" "a drama from the 1950s" \
        --editor_out docs/img/editor_cards.png --instructor_out docs/img/instructor_cards.png

Editor: the source (the user encoder's top catalog item), then that item edited for the user at every
strength (0 keeps its codes, 1 creates anew). Instructor (a checkpoint with ``n_instruction_tokens`` > 0):
the user's next item, the image created without an instruction, then one per instruction; same sampling
noise in every column, so a column differs from the first only by the instruction. Make the repository's
pictures from a checkpoint trained on rendered cards; pictures of real posters belong under ``saved/``.
"""

import argparse

import torch

from recbole_gen.evaluator.gallery import grid_image
from recbole_gen.generate import catalog_images, test_rows
from recbole_gen.quick_start import load_data_and_model


@torch.no_grad()
def editor_rows(model, interaction, users, item_images, texts, strengths, seed):
    sources = model.user_encoder_scores(interaction).argmax(dim=1)
    condition, uniforms = model.condition_tokens(interaction), model.uniforms(interaction, 1, seed)
    columns = [model.tokenizer.decode(model.sample(condition, uniforms, start_codes=model.item_codes[sources], strength=s)) for s in strengths]
    source_images = item_images(sources.cpu())
    return [(f"user {user}", [(source_images[row], texts[int(sources[row])])] + [(column[row], "") for column in columns])
            for row, user in enumerate(users)]


@torch.no_grad()
def instructor_rows(model, interaction, users, item_images, texts, instructions, seed):
    uniforms = model.uniforms(interaction, 1, seed)
    columns = []
    for text in [None] + list(instructions):
        instruction = model.instructor.embed([text] * len(interaction)) if text else None
        columns.append(model.tokenizer.decode(model.sample(model.condition_tokens(interaction, instruction=instruction), uniforms)))
    targets = interaction[model.ITEM_ID].cpu()
    truth = item_images(targets)
    return [(f"user {user}", [(truth[row], texts[int(targets[row])])] + [(column[row], "") for column in columns])
            for row, user in enumerate(users)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--users", required=True, help="comma-separated user tokens")
    parser.add_argument("--strengths", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    parser.add_argument("--instructions", nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--editor_out", default=None)
    parser.add_argument("--instructor_out", default=None)
    args = parser.parse_args()

    config, model, dataset, _, _, test_data = load_data_and_model(args.checkpoint)
    model.eval()
    users = [token.strip() for token in args.users.split(",") if token.strip()]
    test_dataset = test_data._dataset
    interaction = test_dataset.inter_feat[test_rows(dataset, test_dataset, config["USER_ID_FIELD"], users)].to(model.device)
    item_images, texts = catalog_images(config, dataset, model)
    if args.editor_out:
        rows = editor_rows(model, interaction, users, item_images, texts, args.strengths, args.seed)
        grid_image(["source (top-1)"] + [f"strength {s:g}" for s in args.strengths], rows, highlight=0).save(args.editor_out)
        print(f"wrote {args.editor_out}")
    if args.instructor_out:
        if model.instructor is None:
            raise SystemExit(f"--checkpoint {args.checkpoint} has no instructor (n_instruction_tokens: 0)")
        rows = instructor_rows(model, interaction, users, item_images, texts, args.instructions, args.seed)
        grid_image(["next item", "no instruction"] + [f'"{text}"' for text in args.instructions], rows, highlight=0).save(args.instructor_out)
        print(f"wrote {args.instructor_out}")


if __name__ == "__main__":
    main()
