"""Generate next-item images for chosen users with a trained GenRec checkpoint.

    python -m recbole_gen.generate --checkpoint saved/GenRec-....pth --users 1,2,3 --samples 4 --out generated/

Each user is conditioned on their history up to their held-out test item (as in the test split), so
the gallery can show the ground truth beside the samples. Writes ``OUT/user_<token>/sample_<k>.png``,
``OUT/gallery.png`` and ``OUT/manifest.json`` (history, ground truth and files per user).

The checkpoint is all it needs (with the dataset's files): the tokenizer and the catalog's codes come
from it, nothing is fitted, and where the item images are not on this machine the gallery shows the
catalog items decoded from their codes (captioned "decoded").
"""

import argparse
import json
import os

import torch

from recbole_gen.data.item_content import item_content, item_texts
from recbole_gen.evaluator.gallery import gallery_image, to_pil
from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole_gen.quick_start import load_data_and_model


def test_rows(dataset, test_dataset, user_field, user_tokens):
    """Row of each user in the test split, with a clear error for unknown users or users without one."""
    known = dataset.field2token_id[user_field]
    unknown = [token for token in user_tokens if token not in known]
    if unknown:
        examples = ", ".join(list(known)[1:6])
        raise SystemExit(f"--users: unknown user token(s) {', '.join(unknown)} (tokens as in the .inter file, e.g. {examples})")
    test_users = test_dataset.inter_feat[user_field].tolist()
    rows = []
    for token in user_tokens:
        user_id = known[token]
        if user_id not in test_users:
            raise SystemExit(f"--users: user {token} has no test interaction (too short a history to be split)")
        rows.append(test_users.index(user_id))
    return torch.tensor(rows)


def catalog_images(config, dataset, model):
    """``(item_images(ids), texts)`` for galleries: the item images if this machine has them, else the items'
    codes decoded by the checkpoint's tokenizer."""
    image_dir = config["image_dir"]
    if image_dir is None or os.path.isdir(image_dir):
        content = item_content(config, dataset)
        return (lambda ids: content.images[ids]), content.texts
    texts = [f"{text} (decoded)" if text else text for text in item_texts(config, dataset)]
    return (lambda ids: model.tokenizer.decode(model.item_codes[ids.to(model.item_codes.device)])), texts


def generate(checkpoint, users, samples=4, out="generated", seed=2020, guidance_scale=None, temperature=None, top_k=None):
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    if not isinstance(model, GenRec):
        raise SystemExit(f"--checkpoint {checkpoint} holds a {type(model).__name__}; recbole_gen.generate needs a GenRec")
    user_field, item_field = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    test_dataset = test_data._dataset
    interaction = test_dataset.inter_feat[test_rows(dataset, test_dataset, user_field, users)].to(model.device)
    generation_config = model.generation_config
    overrides = {"guidance_scale": guidance_scale, "temperature": temperature, "top_k": top_k}
    generation_config.update(**{key: value for key, value in overrides.items() if value is not None})
    model.eval()
    generation = model.generate(interaction, num_samples=samples, generation_config=generation_config, seed=seed)

    os.makedirs(out, exist_ok=True)
    manifest = []
    for row, token in enumerate(users):
        folder = os.path.join(out, f"user_{token}")
        os.makedirs(folder, exist_ok=True)
        files = []
        for k in range(samples):
            path = os.path.join(folder, f"sample_{k + 1}.png")
            image = generation.images[row * samples + k]
            to_pil(image).save(path)
            files.append(path)
        length = int(interaction[model.ITEM_SEQ_LEN][row])
        history = interaction[model.ITEM_SEQ][row, :length].cpu()
        manifest.append({
            "user": token,
            "history": [str(t) for t in dataset.id2token(item_field, history)],
            "ground_truth": str(dataset.id2token(item_field, interaction[item_field][row].cpu().item())),
            "samples": files,
        })
    images, texts = catalog_images(config, dataset, model)
    gallery = gallery_image(model, interaction, generation.images, images, texts, users, config["gallery_history"])
    gallery.save(os.path.join(out, "gallery.png"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"checkpoint": checkpoint, "seed": seed, "generation_config": generation_config.to_dict(), "users": manifest}, f, indent=2)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint written by run_recbole_gen")
    parser.add_argument("--users", required=True, help="comma-separated user tokens, e.g. 1,2,3")
    parser.add_argument("--samples", type=int, default=4, help="images per user")
    parser.add_argument("--out", default="generated", help="output folder")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--guidance_scale", type=float, default=None, help="default: the checkpoint's config")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top_k", type=int, default=None)
    args = parser.parse_args(argv)
    users = [token.strip() for token in args.users.split(",") if token.strip()]
    generate(args.checkpoint, users, args.samples, args.out, args.seed, args.guidance_scale, args.temperature, args.top_k)
    print(f"Wrote {args.samples} images for each of {len(users)} users, gallery.png and manifest.json to {args.out}")


if __name__ == "__main__":
    main()
