"""The item encoder: the frozen open_clip embedding space in which generated items are scored.

``eval_encoder`` selects it:

- ``fit`` (default): a small open_clip model (``encoder_fit_model``) trained contrastively, with
  open_clip's ``ClipLoss``, on the catalog's own images paired with a text per item. Only catalog
  content is used, never interactions, so the space favours no recommender. The text is chosen by
  ``encoder_fit_text_fields``: ``~`` pairs each image with its item text (title, year, genres), so the
  space learns to tell items apart (the *identity* space); a list of fields that many items share
  (e.g. ``[class, release_year]``, years as decades) gives a space that cannot memorise identity and
  rewards showing the right kind of item (the *semantic* space). The fitted model is saved in
  open_clip's ``local-dir`` format under ``encoder_cache_dir``, keyed by the catalog content, the fit
  texts, the fit settings and ``encoder_fit_seed`` (not the run's seed), so every model compared on a
  dataset is scored in the same space whatever seed it trained with.
- an open_clip model name (``ViT-B-32``) with ``eval_encoder_pretrained`` set to a tag
  (``laion2b_s34b_b79k``) or a local weights file;
- a folder holding ``open_clip_config.json`` and weights (or ``local-dir:PATH``).
"""

import json
import logging
import os

import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from recbole_gen.data.item_content import YEAR_FIELDS, item_content
from recbole_gen.fitting import cache_folder, cached_fit, fit_minibatches, isolated_rng

logger = logging.getLogger(__name__)

FIT = "fit"
MODEL_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_configs")
open_clip.add_model_config(MODEL_CONFIG_DIR)

# Bump when the fitting code changes what a fit produces: cached fits of older code are then not reused.
FIT_VERSION = 2
_FIT_KEYS = ("encoder_fit_model", "encoder_fit_epochs", "encoder_fit_batch_size", "encoder_fit_learning_rate",
             "encoder_fit_seed", "encoder_fit_text_fields")


class ItemEncoder:
    """Embeds uint8 item images (N, 3, H, W) into L2-normalised vectors with an open_clip model."""

    def __init__(self, model, device="cpu"):
        self.model = model.to(device).eval()
        self.device = device
        self.image_size = model.visual.image_size
        self.mean = torch.tensor(model.visual.image_mean or open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(model.visual.image_std or open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)

    def preprocess(self, images):
        pixels = images.float().div(255)
        if tuple(pixels.shape[-2:]) != tuple(self.image_size):
            pixels = F.interpolate(pixels, size=self.image_size, mode="bicubic", antialias=True, align_corners=False)
        return ((pixels - self.mean) / self.std).to(self.device)

    @torch.no_grad()
    def encode_images(self, images, batch_size=256):
        chunks = [
            self.model.encode_image(self.preprocess(images[start : start + batch_size]), normalize=True).float().cpu()
            for start in range(0, len(images), batch_size)
        ]
        return torch.cat(chunks)


def _fit_settings(config):
    return {key: config[key] for key in _FIT_KEYS}


def fit_texts(config, content):
    """The text each catalog image is contrasted with: the item text, or ``encoder_fit_text_fields``
    (year fields as decades, so the text is shared by many items)."""
    fields = config["encoder_fit_text_fields"]
    if fields is None:
        return content.texts
    columns = [] if content.table is None else list(content.table.columns)
    unknown = [field for field in fields if field not in columns]
    if unknown:
        raise ValueError(f"config key 'encoder_fit_text_fields' names columns not in the .item file: {unknown}; available: {columns}")
    texts = [""]
    for token in content.tokens[1:]:
        row = content.table.loc[token] if token in content.table.index else None
        parts = []
        for field in fields:
            value = "" if row is None else str(row[field])
            if field in YEAR_FIELDS and value.isdigit():
                value = f"{value[:3]}0s"
            if value:
                parts.append(f"{field}: {value}")
        texts.append(" | ".join(parts) or "unknown")
    return texts


def _fit_key(config, content, texts):
    return {"version": FIT_VERSION, "content": content.fingerprint, "texts": texts, "fit": _fit_settings(config),
            "model": open_clip.get_model_config(config["encoder_fit_model"]), "open_clip": open_clip.__version__}


def fitted_encoder_dir(config, content):
    """Where the encoder fitted on ``content`` with ``config``'s fit settings is (or will be) cached."""
    return cache_folder(config["encoder_cache_dir"], config["encoder_fit_model"], _fit_key(config, content, fit_texts(config, content)))


@torch.enable_grad()  # the catalog is first embedded inside RecBole's no_grad evaluation
def fit_encoder(config, content, texts, out_dir):
    """Train ``encoder_fit_model`` from scratch with ClipLoss on the catalog's (image, text) pairs; save to ``out_dir``."""
    name = config["encoder_fit_model"]
    device = config["device"]
    generator = torch.Generator().manual_seed(config["encoder_fit_seed"])
    model = open_clip.create_model(name, pretrained=None, device=device)
    encoder = ItemEncoder(model, device=device)
    tokens = open_clip.get_tokenizer(name)(texts)
    items = torch.nonzero(content.has_image).flatten()
    if len(items) < 2:
        raise ValueError("eval_encoder: fit needs at least two catalog items with an image to train on")
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["encoder_fit_learning_rate"], weight_decay=0.1)
    model.train()

    def step(batch):
        if len(batch) < 2:  # ClipLoss needs negatives
            return None
        image_features, text_features, logit_scale = model(encoder.preprocess(content.images[batch]), tokens[batch].to(device))
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    losses = fit_minibatches(items, config["encoder_fit_batch_size"], config["encoder_fit_epochs"], generator, step,
                             "Fit item encoder", config["show_progress"])
    retrieval = image_to_text_retrieval(model.eval(), encoder, content.images[items], [texts[i] for i in items.tolist()], tokens[items])
    logger.info(
        f"Fitted item encoder {name} on {len(items)} items and {retrieval['texts']} distinct texts: ClipLoss "
        f"{losses[0]:.3f} -> {losses[-1]:.3f}; catalog image->text retrieval top-1 {retrieval['top1']:.3f}, "
        f"top-10 {retrieval['top10']:.3f} (chance {1 / retrieval['texts']:.4f})"
    )
    fit_log = {"fit": _fit_settings(config), "loss_per_epoch": losses, "image_to_text_retrieval": retrieval}
    _save_local_dir(model.cpu(), name, out_dir, fit_log)


@torch.no_grad()
def image_to_text_retrieval(model, encoder, images, texts, tokens):
    """How often an item's image is closest to its own text among the catalog's distinct texts (top-1, top-10)."""
    first = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    distinct = list(first)
    position = {text: i for i, text in enumerate(distinct)}
    device = encoder.device
    image_features = encoder.encode_images(images)
    text_features = torch.cat([model.encode_text(chunk.to(device), normalize=True).float().cpu() for chunk in tokens[list(first.values())].split(256)])
    ranks = (image_features @ text_features.T).argsort(dim=1, descending=True)
    hits = ranks == torch.tensor([position[text] for text in texts]).unsqueeze(1)
    return {"top1": hits[:, :1].any(dim=1).float().mean().item(), "top10": hits[:, :10].any(dim=1).float().mean().item(),
            "texts": len(distinct)}


def _save_local_dir(model, name, out_dir, fit_log):
    """Save in open_clip's ``local-dir`` layout (config, weights) with the fit's log."""
    preprocess_cfg = {"mean": list(model.visual.image_mean), "std": list(model.visual.image_std)}
    with open(os.path.join(out_dir, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": open_clip.get_model_config(name), "preprocess_cfg": preprocess_cfg}, f, indent=2)
    with open(os.path.join(out_dir, "fit_log.json"), "w") as f:
        json.dump(fit_log, f, indent=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "open_clip_model.safetensors"))


def _create_pretrained(name, pretrained, device):
    try:
        return open_clip.create_model(name, pretrained=pretrained, device=device)
    except Exception as err:
        where = f"open_clip model '{name}'" + (f" with pretrained '{pretrained}'" if pretrained else "")
        raise RuntimeError(
            f"could not load the item encoder ({where}; config keys 'eval_encoder', 'eval_encoder_pretrained'): {err}\n"
            "Without network access, point at local weights: set eval_encoder_pretrained to a weights file "
            "(e.g. open_clip_pytorch_model.bin or .safetensors for that model), or eval_encoder to a folder holding "
            "open_clip_config.json and its weights; or use eval_encoder: fit to train one on the catalog."
        ) from err


def load_item_encoder(config, content):
    """The :class:`ItemEncoder` that ``eval_encoder`` selects (see the module docstring)."""
    name = config["eval_encoder"]
    if name == FIT:
        texts = fit_texts(config, content)
        out_dir = cached_fit(config["encoder_cache_dir"], config["encoder_fit_model"], _fit_key(config, content, texts),
                             lambda folder: fit_encoder(config, content, texts, folder), config["encoder_fit_seed"])
        model = _create_pretrained(f"local-dir:{os.path.abspath(out_dir)}", None, config["device"])
    elif os.path.isdir(name):
        model = _create_pretrained(f"local-dir:{os.path.abspath(name)}", None, config["device"])
    elif ":" in name:
        model = _create_pretrained(name, None, config["device"])
    else:
        if name.replace("/", "-") not in open_clip.list_models():
            raise ValueError(
                f"config key 'eval_encoder' = '{name}' is neither 'fit', an existing folder, nor an open_clip model "
                "name (see open_clip.list_models(), e.g. ViT-B-32)"
            )
        if not config["eval_encoder_pretrained"]:
            raise ValueError(
                f"eval_encoder '{name}' needs eval_encoder_pretrained: a tag (see open_clip.list_pretrained()) "
                "or a local weights file; random weights would make the metrics meaningless"
            )
        model = _create_pretrained(name, config["eval_encoder_pretrained"], config["device"])
    return ItemEncoder(model, device=config["device"])


def catalog_encoder(config, dataset):
    """``(content, encoder, embeddings)``: the catalog of ``dataset``, the item encoder, and every item's
    embedding in its space (row = internal item id)."""
    content = item_content(config, dataset)
    # Loading may fit; fitting and embedding must leave the training's random streams untouched, or a
    # run would train differently because it was evaluated (or because a cache was cold).
    with isolated_rng(config["encoder_fit_seed"]):
        encoder = load_item_encoder(config, content)
        return content, encoder, encoder.encode_images(content.images)
