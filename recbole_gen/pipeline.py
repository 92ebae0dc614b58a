"""GenRecPipeline: a request in, what is shown out; GeneRec's four parts in order.

"Generative Recommendation" (GeneRec, Wang et al., 2023) serves a user with an instructor, an AI editor, an
AI creator and fidelity checks. For each request (a user's history, optionally an instruction, liked and
disliked items, an item to edit) :class:`GenRecPipeline`:

1. asks the **instructor** (:mod:`recbole_gen.model.instructor`) what to do: show the user encoder's top
   catalog item, edit it, or create a new one (or does what the request says: ``edit_items``);
2. builds the condition: the user moved toward liked items, the instruction's tokens; and the negative
   condition guidance steers away from: the same request without its instruction
   (``instruction_guidance_scale``) and the user moved toward the disliked items (``feedback_guidance_scale``);
3. for requests it does not answer with a catalog item, makes ``num_candidates`` candidates: with the
   **creator** (sampled from noise) or the **editor** (sampled from the item's codes at ``strength`` < 1;
   or, in GeneRec's *selection mode* (``crops=True``), crops of the item: :func:`item_crops`);
4. runs the **fidelity checks** (:mod:`recbole_gen.fidelity`) and shows, per request, the candidate that
   passes them all and is closest, in the reward space, to what the user encoder expects (the best-of-N
   criterion; GeneRec picks a thumbnail by closeness to the user the same way); if none passes, the
   catalog item. Crops repurpose their item by design, so the near-copy check is waived for them.

It returns a :class:`GenRecPipelineOutput`; it keeps nothing between calls.
"""

import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from recbole_gen.data.item_content import item_content
from recbole_gen.fidelity.guard import build_guard
from recbole_gen.model.instructor import decide, feedback_user
from recbole_gen.model.sequential_recommender.genrec import Generation
from recbole_gen.rl.reranker import expectation_scores, expected_embedding


@dataclass
class GenRecPipelineOutput:
    actions: list  # (B,) "show", "edit", "create"; "show" too where every candidate failed a check (fallback)
    images: torch.Tensor  # (B, 3, S, S) uint8: what each request is shown
    shown_items: torch.Tensor  # (B,) the catalog item shown, 0 where a generated image is
    source_items: torch.Tensor  # (B,) the item the instructor chose (shown, or edited), 0 for creation
    candidates: Generation  # (R * k) the candidates of the R requests that have some (not "show"), adjacent, in request order
    has_candidates: torch.Tensor  # (B,) bool: the request's instructor chose to edit or create, so it has k candidates
    chosen: torch.Tensor  # (B,) index into candidates of the shown one, -1 where none is shown
    fallback: torch.Tensor  # (B,) bool: every candidate failed a check, the catalog item is shown instead
    verdicts: dict = field(default_factory=dict)  # check name -> B * k Verdicts (empty without a guard)


# Crop positions as fractions of the free margin (x, y): the centre, the corners, the edges' middles.
CROP_POSITIONS = ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0), (0.5, 1), (0, 0.5), (1, 0.5))
# A crop's side as a share of the image's: chosen on validation among 0.4, 0.5, 0.6, 0.75 and 0.9
# (docs/selection_mode_valid_ml-100k.md).
CROP_SCALE = 0.6


def item_crops(images, k, scale=CROP_SCALE):
    """``(N, k, 3, S, S)`` uint8: ``k`` square crops of each image, ``scale`` of its side, resized back to ``S``
    (area-averaged down, bilinear up): the centre first, then the corners, then the edges' middles
    (:data:`CROP_POSITIONS`; at most 9). GeneRec's AI editor picks, among such crops of an item (thumbnails,
    in its micro-video setting), the one closest to the user."""
    if not 1 <= k <= len(CROP_POSITIONS):
        raise ValueError(f"item_crops: k={k} crops per image; accepted 1 to {len(CROP_POSITIONS)} (the positions of CROP_POSITIONS)")
    if not 0 < scale <= 1:
        raise ValueError(f"item_crops: scale={scale}; accepted (0, 1], the crop's side as a share of the image's")
    size = images.shape[-1]
    side = max(1, round(scale * size))
    margin = size - side
    cut = [images[..., round(y * margin):round(y * margin) + side, round(x * margin):round(x * margin) + side]
           for x, y in CROP_POSITIONS[:k]]
    resized = F.interpolate(torch.stack(cut, dim=1).flatten(0, 1).float(), size=(size, size), mode="bilinear",
                            align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).view(len(images), k, *images.shape[1:])


def _pad(lists):
    """``(B, K)`` long of ragged item-id lists (0 = padding)."""
    width = max([len(items) for items in lists] + [1])
    return torch.tensor([list(items) + [0] * (width - len(items)) for items in lists], dtype=torch.long)


class GenRecPipeline:
    """Serve requests with a GenRec ``model``.

    Args:
        model: a :class:`~recbole_gen.model.sequential_recommender.genrec.GenRec`.
        config: its config (the ``feedback_*``, ``instructor_*`` and ``editor_strength`` keys).
        item_texts: every item's text (row = internal item id), which the instructor matches instructions to.
        reward_model: a :class:`~recbole_gen.rl.reward.RewardModel` ranking candidates (None: the first
            passing candidate is shown).
        guard: a :class:`~recbole_gen.fidelity.guard.FidelityGuard` (None: no checks, every candidate passes).
    """

    def __init__(self, model, config, item_texts, reward_model=None, guard=None):
        self.model, self.config, self.item_texts = model, config, item_texts
        self.reward_model, self.guard = reward_model, guard

    def _instructions(self, instructions, batch, device):
        if instructions is None or not any(instructions):
            return None
        if self.model.instructor is None:
            raise ValueError("this GenRec was trained without instructions (n_instruction_tokens: 0): retrain with "
                             "n_instruction_tokens > 0 to serve requests with an instruction")
        if len(instructions) != batch:
            raise ValueError(f"{len(instructions)} instructions for {batch} requests")
        return self.model.instructor.embed(instructions, device)

    def _instruction_match(self, instruction, items):
        """``(B,)`` cosine of each instruction to its item's text in the instructor's text encoder, NaN for none."""
        match = torch.full((len(items),), math.nan)
        if instruction is None:
            return match
        given = instruction.abs().sum(dim=1) > 0
        texts = [self.item_texts[item] for item in items[given.cpu()].tolist()]
        if texts:
            match[given.cpu()] = (self.model.instructor.embed(texts, instruction.device) * instruction[given]).sum(dim=1).cpu()
        return match

    @torch.no_grad()
    def __call__(self, interaction, instructions=None, like=None, dislike=None, edit_items=None, strength=None,
                 num_candidates=4, seed=0, generation_config=None, crops=False, crop_scale=CROP_SCALE, create=False):
        """Serve each row of ``interaction`` (a user's history, as in an evaluation split).

        Args:
            instructions: one text (or None) per row.
            like, dislike: one list of internal item ids per row (or None): feedback.
            edit_items: ``(B,)`` internal item ids to edit for each row (0 = let the instructor decide).
            strength: the editor's strength in [0, 1] (default ``editor_strength``).
            num_candidates: images sampled per request before the checks.
            seed: the sampling seed (each request's candidates depend on it, the user and the candidate index).
            generation_config: sampling settings (default the model's).
            crops: GeneRec's selection mode: an edited item's candidates are ``num_candidates`` crops of it
                (:func:`item_crops`, ``crop_scale`` of its side) instead of sampled variants.
            create: every request not in ``edit_items`` is served by the AI creator, whatever the instructor's
                rule decides (to look at what the generator makes for users it would show a catalog item).
        """
        model, config = self.model.eval(), self.config
        batch, device = len(interaction), model.device
        strength = config["editor_strength"] if strength is None else strength
        generation_config = generation_config or model.generation_config
        instruction = self._instructions(instructions, batch, device)

        top_probability, top_item = model.user_encoder_scores(interaction).softmax(dim=1).max(dim=1)
        if create:
            actions = ["create"] * batch
        else:
            actions = decide(top_probability.cpu(), self._instruction_match(instruction, top_item), config["instructor_show_threshold"],
                             config["instructor_edit_threshold"], config["instructor_match_threshold"])
        source = torch.where(torch.tensor([action == "create" for action in actions], device=device), 0, top_item)
        if edit_items is not None:
            requested = edit_items.to(device) > 0
            source = torch.where(requested, edit_items.to(device), source)
            actions = ["edit" if asked else action for action, asked in zip(actions, requested.tolist())]

        item_embeddings = model.user_encoder.item_embedding.weight
        user = model.user_embedding(interaction)
        if like is not None:
            user = feedback_user(user, item_embeddings, _pad(like).to(device), config["feedback_weight"])
        condition = model.condition_tokens(interaction, user, instruction)
        negative, scale = None, None
        if instruction is not None:
            # guidance toward the instruction: away from the same request without it
            negative, scale = model.condition_tokens(interaction, user), config["instruction_guidance_scale"]
        if dislike is not None and any(dislike):
            disliked = _pad(dislike).to(device)
            away = model.condition_tokens(interaction, feedback_user(user, item_embeddings, disliked, config["feedback_weight"]))
            # rows without dislikes keep the negative they had: the uninstructed request, or the null condition
            kept = model.condition.null_condition(batch) if negative is None else negative
            negative = torch.where((disliked > 0).any(dim=1).view(-1, 1, 1), away, kept)
            scale = config["feedback_guidance_scale"] if scale is None else max(scale, config["feedback_guidance_scale"])
        if scale is not None:
            generation_config = type(generation_config).from_dict({**generation_config.to_dict(), "guidance_scale": scale})

        k = num_candidates
        has_candidates = torch.tensor([action != "show" for action in actions], device=device)
        wanted = has_candidates.nonzero().flatten()
        candidates, waived = self._candidates(interaction[wanted], [actions[row] for row in wanted.tolist()], condition[wanted],
                                              None if negative is None else negative[wanted], source[wanted], generation_config,
                                              strength, k, seed, crops, crop_scale)

        if self.reward_model is not None and len(candidates.images):
            expected = expected_embedding(model, self.reward_model, interaction[wanted])
            preference = expectation_scores(self.reward_model, candidates.images, expected)
        else:
            preference = -(torch.arange(len(candidates.images)) % k).float()  # the first candidate first
        verdicts = {}
        if self.guard is not None and len(candidates.images):
            selection = self.guard.select(candidates.images, preference, k, waived)
            picked, verdicts = selection.index, selection.result.verdicts
        else:
            picked = torch.arange(len(candidates.images) // k) * k + preference.view(-1, k).argmax(dim=1)
        chosen = torch.full((batch,), -1, dtype=torch.long)
        chosen[has_candidates.cpu()] = picked
        fallback = has_candidates.cpu() & (chosen < 0)
        shows = ~has_candidates.cpu() | fallback
        shown_items = torch.where(shows.to(device), top_item, 0)
        images = torch.where(shows.view(-1, 1, 1, 1), model.tokenizer.decode(model.item_codes[top_item]),
                             candidates.images[chosen.clamp(min=0)] if len(candidates.images) else 0)
        actions = ["show" if show else action for action, show in zip(actions, shows.tolist())]
        return GenRecPipelineOutput(actions=actions, images=images, shown_items=shown_items.cpu(), source_items=source.cpu(),
                                    candidates=candidates, has_candidates=has_candidates.cpu(), chosen=chosen,
                                    fallback=fallback, verdicts=verdicts)

    def _candidates(self, interaction, actions, condition, negative, source, generation_config, strength, k, seed,
                    crops_of_edits, crop_scale):
        """``k`` candidates for each of these requests (none is "show"), adjacent, and the checks waived for them
        (``near_copy`` for crops). Created ones are sampled from noise; edited ones from ``source``'s codes at
        ``strength``, or are crops of ``source`` when ``crops_of_edits``."""
        model, device = self.model, self.model.device
        size = model.tokenizer.image_size
        codes = torch.zeros(len(interaction) * k, model.tokenizer.n_tokens, dtype=torch.long, device=device)
        images = torch.zeros(len(codes), 3, size, size, dtype=torch.uint8)
        if not len(interaction):
            return Generation(codes=codes, images=images), {}
        uniforms = model.uniforms(interaction, k, seed)
        cropping = torch.tensor([crops_of_edits and action == "edit" for action in actions], device=device)
        is_crop = cropping.repeat_interleave(k)

        def repeat(tensor):
            return None if tensor is None else tensor.repeat_interleave(k, dim=0)

        for action in ("create", "edit"):
            rows = repeat(torch.tensor([kind == action for kind in actions], device=device)) & ~is_crop
            if not rows.any():
                continue
            editing = action == "edit"
            start_codes = model.item_codes[repeat(source)[rows]] if editing else None
            codes[rows] = model.sample(repeat(condition)[rows], uniforms[rows.cpu()], generation_config,
                                       None if negative is None else repeat(negative)[rows], start_codes,
                                       strength if editing else 1.0)
        if not is_crop.all():
            images[~is_crop.cpu()] = model.tokenizer.decode(codes[~is_crop])
        if cropping.any():
            cut = item_crops(model.tokenizer.decode(model.item_codes[source[cropping]]), k, crop_scale).flatten(0, 1)
            images[is_crop.cpu()] = cut
            codes[is_crop] = model.tokenizer.encode(cut).to(device)  # the crops' own codes, for the record
        checks = [] if self.guard is None else [check.name for check in self.guard.checks]
        return Generation(codes=codes, images=images), ({"near_copy": is_crop.cpu()} if "near_copy" in checks else {})


def request_guard(config, model, dataset, reward_model):
    """The :class:`~recbole_gen.fidelity.guard.FidelityGuard` of ``fidelity_checks`` for ``model``'s catalog (None
    when no check is listed). Generated images are compared with the catalog's images at the tokenizer's size
    (its decoded codes where the images are not on this machine); embeddings are the reward encoder's; realism
    is the PSNR of an image against its reconstruction by the model's image tokenizer (fitted on the catalog)."""
    if not config["fidelity_checks"]:
        return None
    tokenizer = model.tokenizer
    reconstructions = tokenizer.decode(model.item_codes)
    if config["image_dir"] is None or os.path.isdir(config["image_dir"]):
        size = reconstructions.shape[-1]
        images = item_content(config, dataset).images
        catalog_images = F.interpolate(images.float(), size=(size, size), mode="area").round().to(torch.uint8)
    else:
        catalog_images = reconstructions
    has_content = reward_model.has_content & model.has_image.cpu()
    return build_guard(config, catalog_images, reconstructions, reward_model.catalog, has_content, reward_model.embed,
                       reconstruct=lambda images: tokenizer.decode(tokenizer.encode(images)))
