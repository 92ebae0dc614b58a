"""The instructor (GeneRec): a request's instruction and feedback become guidance; it chooses what to do.

"Generative Recommendation: Towards Next-generation Recommender Paradigm" (GeneRec, Wang et al., 2023)
puts an *instructor* before the AI editor and creator: it reads what the user asks for and how they
reacted, and decides whether to show a catalog item, edit one or create one. Here:

- **Instructions** (free text, e.g. "a 1990s comedy") condition generation through a frozen text encoder:
  the text tower of the reward encoder (an item encoder fitted on the catalog with its own settings, never an
  evaluation space; :mod:`recbole_gen.rl.reward`), or a transformers text model by path
  (``instruction_text_model``, mean-pooled last hidden states). Its embedding becomes
  ``n_instruction_tokens`` condition tokens (:class:`~recbole_gen.model.condition.UserCondition`). GenRec
  learns them from instructions synthesised from each training target's own fields (genres, decade, title
  words; :func:`synthesise_instructions`), dropped with ``instruction_dropout_prob`` so requests without
  one still work.
- **Feedback** moves the user embedding ``feedback_weight`` of its norm toward the mean of the liked items'
  embeddings (the user encoder's own item embeddings); disliked items make the *negative* condition that
  classifier-free guidance steers away from (``feedback_guidance_scale``), the user moved toward them.
- **The decision** (:func:`decide`), per request, from the user encoder's softmax over the catalog:
  an instruction that the top item's text does not match (cosine below ``instructor_match_threshold`` in the
  text encoder) -> create; else top-1 probability >= ``instructor_show_threshold`` -> show the top item (the
  recommender is sure); >= ``instructor_edit_threshold`` -> edit it for the user (``editor_strength``);
  below -> create.
"""

import json
import os
import random

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from recbole_gen.evaluator.encoder import FIT, load_item_encoder
from recbole_gen.fitting import isolated_rng

ACTIONS = ("show", "edit", "create")
N_VARIANTS = 4  # synthesised instructions per catalog item


def _decade(value):
    value = str(value)
    return f"{value[:3]}0s" if value[:4].isdigit() else ""


def synthesise_instructions(genres, year, title, rng):
    """``N_VARIANTS`` instructions a user might give for an item with these ``genres`` (list), ``year`` and
    ``title``: every genre and the decade, one genre, the decade, one genre and a title word."""
    decade = _decade(year)
    words = [word for word in str(title).replace("(", " ").replace(")", " ").split() if word.isalpha() and len(word) > 3]
    genres = [genre.lower() for genre in genres] or ["movie"]
    one = rng.choice(genres)
    return [
        f"a {' and '.join(genres)} from the {decade}" if decade else f"a {' and '.join(genres)}",
        f"a {one}",
        f"something from the {decade}" if decade else f"something {one}",
        f"a {one} like {rng.choice(words).lower()}" if words else f"a {one} please",
    ]


def catalog_instructions(config, content):
    """``[n_items][N_VARIANTS]`` synthesised instructions (row = internal item id; row 0 and items without
    metadata get empty strings), from the ``instruction_*_field`` columns of the ``.item`` file."""
    fields = {key: config[f"instruction_{key}_field"] for key in ("genre", "year", "title")}
    columns = [] if content.table is None else list(content.table.columns)
    missing = {f"instruction_{key}_field": field for key, field in fields.items() if field is not None and field not in columns}
    if missing:
        raise ValueError(f"config keys {missing} name columns not in the .item file; available: {columns}")
    rng = random.Random(config["seed"])
    instructions = [[""] * N_VARIANTS]
    for token in content.tokens[1:]:
        if content.table is None or token not in content.table.index:
            instructions.append([""] * N_VARIANTS)
            continue
        row = content.table.loc[token]
        value = {key: ("" if field is None else row[field]) for key, field in fields.items()}
        genres = str(value["genre"]).split() if value["genre"] is not None else []
        instructions.append(synthesise_instructions(genres, value["year"], value["title"], rng))
    return instructions


class OpenClipTextEncoder(nn.Module):
    """The text tower of an open_clip model (frozen): texts -> unit embeddings."""

    kind = "open_clip"

    def __init__(self, model, model_cfg):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.model_cfg = model_cfg
        self.dim = model_cfg["embed_dim"]

    @classmethod
    def from_components(cls, components):
        return cls(open_clip.CLIP(**components["model_cfg"]), components["model_cfg"])

    def components(self):
        return {"kind": self.kind, "model_cfg": self.model_cfg}

    @torch.no_grad()
    def forward(self, texts):
        device = next(self.model.parameters()).device
        tokens = open_clip.tokenize(list(texts), context_length=self.model.context_length).to(device)
        return self.model.encode_text(tokens, normalize=True).float()


class TransformersTextEncoder(nn.Module):
    """A transformers text model by path (frozen): texts -> unit mean-pooled last hidden states. Its weights
    stay in its folder (the checkpoint records the path)."""

    kind = "transformers"

    def __init__(self, path):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"config key 'instruction_text_model' = '{path}' is not a transformers save_pretrained folder")
        self.path = path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = [AutoModel.from_pretrained(path).eval().requires_grad_(False)]  # a list: not in GenRec's state dict
        self.dim = self.model[0].config.hidden_size

    @classmethod
    def from_components(cls, components):
        return cls(components["path"])

    def components(self):
        return {"kind": self.kind, "path": self.path}

    @torch.no_grad()
    def forward(self, texts):
        model = self.model[0]
        batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(model.device)
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1), dim=-1).float()


TEXT_ENCODERS = {encoder.kind: encoder for encoder in (OpenClipTextEncoder, TransformersTextEncoder)}


def _open_clip_model_cfg(settings):
    name = settings["eval_encoder"]
    if name == FIT:
        return open_clip.get_model_config(settings["encoder_fit_model"])
    if os.path.isdir(name):
        with open(os.path.join(name, "open_clip_config.json")) as f:
            return json.load(f)["model_cfg"]
    return open_clip.get_model_config(name.split(":")[-1])


def build_text_encoder(config, content):
    """The instruction text encoder ``instruction_text_model`` selects: a transformers folder, or (~) the
    reward encoder's text tower (fitted, or loaded from its cache)."""
    if config["instruction_text_model"] is not None:
        return TransformersTextEncoder(config["instruction_text_model"])
    from recbole_gen.rl.reward import reward_settings

    settings = reward_settings(config)
    with isolated_rng(settings["encoder_fit_seed"]):
        encoder = load_item_encoder(settings, content)
    model_cfg = _open_clip_model_cfg(settings)
    if model_cfg is None or model_cfg.get("custom_text"):
        raise ValueError("the instructor reads instructions with an open_clip CLIP text tower; this reward encoder has "
                         "none: set instruction_text_model to a transformers text model folder")
    return OpenClipTextEncoder(encoder.model.cpu(), model_cfg)


def text_encoder_from_components(components):
    return TEXT_ENCODERS[components["kind"]].from_components(components)


class Instructor(nn.Module):
    """Instruction embeddings for training rows (from the synthesised bank) and for requests (from text)."""

    def __init__(self, text_encoder, n_items, dropout_prob):
        super().__init__()
        self.text_encoder = text_encoder
        self.dropout_prob = dropout_prob
        # Every item's synthesised instructions, embedded once (frozen encoder): what training conditions on.
        self.register_buffer("bank", torch.zeros(n_items, N_VARIANTS, text_encoder.dim))

    @torch.no_grad()
    def fill_bank(self, instructions):
        """Embed ``[n_items][N_VARIANTS]`` instruction texts into the bank (empty texts stay zero: no instruction)."""
        flat = [text for texts in instructions for text in texts]
        given = torch.tensor([bool(text) for text in flat])
        embeddings = torch.cat([self.text_encoder(flat[i : i + 512]).cpu() for i in range(0, len(flat), 512)])
        self.bank.copy_((embeddings * given.unsqueeze(1)).view_as(self.bank))

    def embed(self, texts, device=None):
        """``(B, dim)``: each text's embedding, zeros for an empty or None text (no instruction)."""
        given = [bool(text) for text in texts]
        embeddings = torch.zeros(len(texts), self.text_encoder.dim)
        if any(given):
            embeddings[torch.tensor(given)] = self.text_encoder([text for text in texts if text]).cpu()
        return embeddings.to(device or self.bank.device)

    def training_instructions(self, targets):
        """``(B, dim)``: a random synthesised instruction of each row's target item, zeroed (none) with
        ``dropout_prob``."""
        variant = torch.randint(0, N_VARIANTS, (len(targets),), device=targets.device)
        embeddings = self.bank[targets, variant]
        keep = torch.rand(len(targets), device=targets.device) >= self.dropout_prob
        return embeddings * keep.unsqueeze(1)


def feedback_user(user, item_embeddings, items, weight):
    """``user`` ``(B, d)`` moved ``weight`` of its norm toward the mean embedding of each row's ``items``
    ``(B, K)`` (0 = padding); rows without items are unchanged."""
    valid = (items > 0).unsqueeze(-1).float()
    mean = (item_embeddings[items] * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    has = valid.sum(dim=(1, 2)) > 0
    moved = user + weight * user.norm(dim=1, keepdim=True) * F.normalize(mean, dim=-1)
    return torch.where(has.unsqueeze(1), moved, user)


def decide(top_probability, instruction_match, show_threshold, edit_threshold, match_threshold):
    """Each request's action, one of ``ACTIONS`` (see the module docstring).

    ``top_probability`` ``(B,)``: the user encoder's softmax probability of its top item; ``instruction_match``
    ``(B,)``: the cosine of the instruction to that item's text, NaN where a request has no instruction.
    """
    actions = []
    for probability, match in zip(top_probability.tolist(), instruction_match.tolist()):
        if match == match and match < match_threshold:  # match == match: not NaN, an instruction was given
            actions.append("create")
        elif probability >= show_threshold:
            actions.append("show")
        elif probability >= edit_threshold:
            actions.append("edit")
        else:
            actions.append("create")
    return actions
