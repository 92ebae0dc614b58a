"""Generate next-item images for chosen users with a trained GenRec checkpoint: one request per user.

    python -m recbole_gen.generate --checkpoint saved/GenRec-....pth --users 1,2,3 --samples 4 --out generated/ \
        [--instruction "a 1990s comedy"] [--like 50,181] [--dislike 1] [--edit 100 --strength 0.5 | --edit 100 --crops]

Each user is conditioned on their history up to their held-out test item (as in the test split), so
the gallery can show the ground truth beside the samples. The request goes through
:class:`~recbole_gen.pipeline.GenRecPipeline`: the instructor chooses to show, edit or create (``--edit``
forces editing that item; ``--crops`` makes its candidates crops of it, GeneRec's selection mode), ``--samples``
candidates are made for each request not answered with a catalog item, the fidelity checks judge them and the
best that passes is shown, else the catalog item. Writes ``OUT/user_<token>/sample_<k>.png`` (every candidate),
``OUT/user_<token>/shown.png`` (what the user is shown), each PNG carrying its provenance (model,
checkpoint, seed, user, sample, request; :func:`recbole_gen.fidelity.provenance.read_provenance`),
``OUT/gallery.png`` and ``OUT/manifest.json`` (history, ground truth, action, files and every check's
verdict per candidate).

The checkpoint is all it needs (with the dataset's files): the tokenizer and the catalog's codes come
from it, nothing is fitted, and where the item images are not on this machine the gallery shows the
catalog items decoded from their codes (captioned "decoded").
"""

import argparse
import json
import os

import torch

from recbole_gen.data.item_content import item_content, item_texts
from recbole_gen.evaluator.gallery import gallery_image
from recbole_gen.fidelity.provenance import save_image
from recbole_gen.fitting import atomic_file
from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole_gen.pipeline import CROP_SCALE, GenRecPipeline, request_guard
from recbole_gen.quick_start import load_data_and_model
from recbole_gen.rl.reward import RewardModel


def token_ids(dataset, field, tokens, flag, kind, source):
    """Internal ids of ``field``'s ``tokens``, with a clear error naming ``flag`` for unknown ones."""
    known = dataset.field2token_id[field]
    unknown = [token for token in tokens if token not in known]
    if unknown:
        examples = ", ".join(list(known)[1:6])
        raise SystemExit(f"{flag}: unknown {kind} token(s) {', '.join(unknown)} (tokens as in the {source} file, e.g. {examples})")
    return [known[token] for token in tokens]


def test_rows(dataset, test_dataset, user_field, user_tokens):
    """Row of each user in the test split, with a clear error for unknown users or users without one."""
    user_ids = token_ids(dataset, user_field, user_tokens, "--users", "user", ".inter")
    test_users = test_dataset.inter_feat[user_field].tolist()
    rows = []
    for token, user_id in zip(user_tokens, user_ids):
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


def _verdicts(output, first, sample):
    return {name: vars(verdicts[first + sample]) for name, verdicts in output.verdicts.items()}


def generate(checkpoint, users, samples=4, out="generated", seed=2020, guidance_scale=None, temperature=None, top_k=None,
             instruction=None, like=(), dislike=(), edit=None, strength=None, checks=True, crops=False, crop_scale=CROP_SCALE,
             create=False):
    """Serve each user one request through :class:`~recbole_gen.pipeline.GenRecPipeline` and write what it made;
    returns the manifest's per-user entries."""
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    if not isinstance(model, GenRec):
        raise SystemExit(f"--checkpoint {checkpoint} holds a {type(model).__name__}; recbole_gen.generate needs a GenRec")
    user_field, item_field = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    test_dataset = test_data._dataset
    interaction = test_dataset.inter_feat[test_rows(dataset, test_dataset, user_field, users)].to(model.device)
    generation_config = model.generation_config
    overrides = {"guidance_scale": guidance_scale, "temperature": temperature, "top_k": top_k}
    generation_config.update(**{key: value for key, value in overrides.items() if value is not None})
    liked = token_ids(dataset, item_field, like, "--like", "item", ".item")
    disliked = token_ids(dataset, item_field, dislike, "--dislike", "item", ".item")
    edit_items = None
    if edit is not None:
        edit_items = torch.tensor(token_ids(dataset, item_field, [edit], "--edit", "item", ".item") * len(users))
    skipped = None
    if checks and config["image_dir"] is not None and not os.path.isdir(config["image_dir"]):
        # The checks embed the catalog in the reward encoder's space, which needs the catalog's images.
        skipped = f"the catalog images (image_dir {config['image_dir']}) are not on this machine"
        print(f"Fidelity checks skipped: {skipped}; the manifest records it (--no_checks silences this)")
        checks = False
    reward_model = RewardModel.from_config(config, dataset) if checks else None
    guard = request_guard(config, model, dataset, reward_model) if checks else None
    pipeline = GenRecPipeline(model, config, item_texts(config, dataset), reward_model, guard)
    output = pipeline(interaction, instructions=[instruction] * len(users) if instruction else None,
                      like=[liked] * len(users) if liked else None, dislike=[disliked] * len(users) if disliked else None,
                      edit_items=edit_items, strength=strength, num_candidates=samples, seed=seed, generation_config=generation_config,
                      crops=crops, crop_scale=crop_scale, create=create)

    os.makedirs(out, exist_ok=True)
    request = {"instruction": instruction, "like": list(like), "dislike": list(dislike), "edit": edit,
               "strength": config["editor_strength"] if strength is None else strength, "crops": crop_scale if crops else None,
               "create": create}
    # index of each request's first candidate; requests shown a catalog item have none
    first_candidate = (torch.cumsum(output.has_candidates.long(), dim=0) - 1) * samples
    images, texts = catalog_images(config, dataset, model)
    manifest, gallery_rows = [], []
    for row, token in enumerate(users):
        folder = os.path.join(out, f"user_{token}")
        os.makedirs(folder, exist_ok=True)
        provenance = {"model": "GenRec", "checkpoint": os.path.abspath(checkpoint), "seed": seed, "user": token,
                      "generation_config": generation_config.to_dict(), **request}
        first, n_candidates = int(first_candidate[row]), samples if output.has_candidates[row] else 0
        files = []
        for k in range(n_candidates):
            path = os.path.join(folder, f"sample_{k + 1}.png")
            save_image(output.candidates.images[first + k], path, {**provenance, "sample": k + 1, "action": output.actions[row]})
            files.append(path)
        source = int(output.source_items[row])
        edited = source if source and output.has_candidates[row] else 0  # the item the editor started from
        gallery_rows.append([(images(torch.tensor([edited]))[0], texts[edited]) if edited else None,
                             (output.images[row], f"shown: {output.actions[row]}")] +
                            [(image, "") for image in output.candidates.images[first:first + n_candidates]])
        shown = os.path.join(folder, "shown.png")
        shown_item = int(output.shown_items[row])
        save_image(output.images[row], shown, {**provenance, "action": output.actions[row],
                                               "sample": None if shown_item else int(output.chosen[row]) - first + 1,
                                               "catalog_item": str(dataset.id2token(item_field, shown_item)) if shown_item else None})
        length = int(interaction[model.ITEM_SEQ_LEN][row])
        history = interaction[model.ITEM_SEQ][row, :length].cpu()
        manifest.append({
            "user": token,
            "history": [str(t) for t in dataset.id2token(item_field, history)],
            "ground_truth": str(dataset.id2token(item_field, interaction[item_field][row].cpu().item())),
            "action": output.actions[row],
            "source_item": str(dataset.id2token(item_field, source)) if source else None,
            "fallback_to_catalog": bool(output.fallback[row]),
            "shown": shown,
            "samples": files,
            "verdicts": [_verdicts(output, first, k) for k in range(n_candidates)],
        })
    gallery = gallery_image(model, interaction, gallery_rows, images, texts, users, config["gallery_history"],
                            sample_titles=["edited item", "shown"] + [f"candidate {k + 1}" for k in range(samples)])
    gallery.save(os.path.join(out, "gallery.png"))
    with atomic_file(os.path.join(out, "manifest.json")) as path, open(path, "w") as f:
        json.dump({"checkpoint": checkpoint, "seed": seed, "request": request, "fidelity_checks": [check.name for check in guard.checks] if guard else [], "checks_skipped": skipped,
                   "generation_config": generation_config.to_dict(), "users": manifest}, f, indent=2)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a GenRec checkpoint written by run_recbole_gen")
    parser.add_argument("--users", required=True, help="comma-separated user tokens, e.g. 1,2,3")
    parser.add_argument("--samples", type=int, default=4, help="candidate images per user (the best that passes the checks is shown)")
    parser.add_argument("--out", default="generated", help="output folder")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--guidance_scale", type=float, default=None, help="default: the checkpoint's config")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top_k", type=int, default=None)
    parser.add_argument("--instruction", default=None, help='free text, e.g. "a 1990s comedy" (needs n_instruction_tokens > 0)')
    parser.add_argument("--like", default="", help="comma-separated item tokens the users liked")
    parser.add_argument("--dislike", default="", help="comma-separated item tokens the users disliked")
    parser.add_argument("--edit", default=None, help="an item token to edit for every user (the AI editor)")
    parser.add_argument("--strength", type=float, default=None, help="editing strength, 0 (unchanged) to 1 (new); default editor_strength")
    parser.add_argument("--crops", action="store_true",
                        help="with --edit: the candidates are crops of the item (GeneRec's selection mode), not sampled variants")
    parser.add_argument("--crop_scale", type=float, default=CROP_SCALE,
                        help=f"a crop's side as a share of the image's (--crops; {CROP_SCALE} chosen on validation among 0.4 to 0.9)")
    parser.add_argument("--no_checks", action="store_true", help="skip the fidelity checks (and the reward encoder they use)")
    parser.add_argument("--create", action="store_true",
                        help="every request creates a new item (the AI creator), even where the instructor would show one")
    args = parser.parse_args(argv)
    users = _tokens(args.users)
    if args.strength is not None and not 0 <= args.strength <= 1:
        parser.error(f"--strength must be in [0, 1], got {args.strength}")
    if args.crops and args.edit is None:
        parser.error("--crops picks among crops of the item given by --edit; add --edit ITEM")
    if args.crops and not 0 < args.crop_scale <= 1:
        parser.error(f"--crop_scale must be in (0, 1], got {args.crop_scale}")
    generate(args.checkpoint, users, args.samples, args.out, args.seed, args.guidance_scale, args.temperature, args.top_k,
             args.instruction, _tokens(args.like), _tokens(args.dislike), args.edit, args.strength, not args.no_checks,
             args.crops, args.crop_scale, args.create)
    print(f"Wrote up to {args.samples} candidates for each of {len(users)} users, the one shown (shown.png), gallery.png and "
          f"manifest.json to {args.out}")


def _tokens(text):
    return [token.strip() for token in text.split(",") if token.strip()]


if __name__ == "__main__":
    main()
