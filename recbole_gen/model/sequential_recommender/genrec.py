"""GenRec: generate the image of a user's next item with an autoregressive LMM, conditioned on the user.

Follows "Generate, Not Recommend: Personalized Multimodal Content Generation" (Liu, Dou, Hu, Xiong,
2025), supervised stage: an any-to-any LMM (autoregressive over discrete image codes, as Janus,
Chameleon and Emu3 are) is fine-tuned on each user's ground-truth next item, given the user and the
user's history images. It is the "AI creator" of "Generative Recommendation: Towards Next-generation
Recommender Paradigm" (GeneRec, Wang et al., 2023), with a sequential recommender as the instructor.

Data flow: history -> user encoder (a RecBole sequential model of ``user_encoder.USER_ENCODERS``) -> condition
(``n_cond_tokens`` soft tokens + the last ``n_history_images`` history images + ``n_instruction_tokens`` from
a request's instruction, :mod:`recbole_gen.model.instructor`) -> generator (``generator``: a causal LM over
the image tokenizer's codes, or a diffusion UNet over its latents, :mod:`recbole_gen.model.diffusion`) ->
codes -> image. Loss: the user encoder's own recommendation loss (unless frozen) + cross-entropy on the next
item's image codes (or the diffusion noise-prediction loss on their latents). :meth:`GenRec.sample` also
edits existing items (GeneRec's AI editor, ``strength``) and guides away from any negative condition;
:mod:`recbole_gen.pipeline` serves requests with all of GeneRec's parts. ``generate`` returns the sampled
codes and images (a :class:`Generation`); ``score_catalog`` ranks the catalog by similarity to them in
the tokenizer's codebook space, so RecBole's ranking metrics apply unchanged (``full_sort_predict`` is
the two together). ``GenRecTrainer`` generates once per user and evaluation and scores the same images
with the generative metrics.

A checkpoint is self-contained: the tokenizer's weights and every item's codes are in its state dict
and the architecture's configs in ``components`` (see :meth:`GenRec.from_checkpoint`).
"""

import json
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn
from transformers import GenerationConfig
from transformers.generation.logits_process import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper

from recbole_gen.data.item_content import item_content
from recbole_gen.model.condition import UserCondition
from recbole_gen.model.diffusion import DiffusionGenerator
from recbole_gen.model.generator import build_generator, generator_components, generator_from_components
from recbole_gen.model.instructor import Instructor, build_text_encoder, catalog_instructions, text_encoder_from_components
from recbole_gen.model.sampling import row_uniforms
from recbole_gen.model.user_encoder import build_user_encoder, embedding_size, recommendation_loss, user_embedding

logger = logging.getLogger(__name__)


@dataclass
class Generation:
    codes: torch.Tensor  # (N, n_tokens) image codes
    images: torch.Tensor  # (N, 3, S, S) uint8, on the CPU


class GenRec(SequentialRecommender):
    input_type = InputType.POINTWISE
    other_parameter_name = ["components"]

    def __init__(self, config, dataset, components=None):
        """``components`` (from a checkpoint): build the architecture they describe for the checkpoint's
        weights, fitting and reading nothing; None: load or fit the tokenizer and code the catalog."""
        super().__init__(config, dataset)
        modes = config["eval_args"]["mode"]
        if set(modes.values()) != {"full"}:
            raise ValueError(
                f"GenRec generates one image per user and ranks the whole catalog: it needs eval_args mode 'full', "
                f"got {modes}"
            )
        restoring = components is not None
        self.user_encoder = build_user_encoder(config, dataset, load_weights=not restoring)
        self.freeze_user_encoder = config["freeze_user_encoder"]
        self.user_encoder.requires_grad_(not self.freeze_user_encoder)
        self.rec_loss_weight = config["rec_loss_weight"]

        if restoring:
            self.generator = generator_from_components(config, components).to(config["device"])
            item_codes = torch.zeros(self.n_items, self.generator.tokenizer.n_tokens, dtype=torch.long)
            has_image = torch.zeros(self.n_items, dtype=torch.bool)
        else:
            content = item_content(config, dataset)
            self.generator = build_generator(config, content).to(config["device"])
            item_codes, has_image = self.generator.tokenizer.encode(content.images).cpu(), content.has_image.clone()
            if content.n_missing:
                logger.warning(
                    f"GenRec: {content.n_missing} items have no image; interactions with them as the next item train "
                    "the user encoder but not the generator"
                )
        self.register_buffer("item_codes", item_codes)
        self.register_buffer("has_image", has_image)
        saved_components = generator_components(self.generator)

        self.instructor = None
        if config["n_instruction_tokens"]:
            if restoring:
                text_encoder = text_encoder_from_components(components["instructor"])
            else:
                text_encoder = build_text_encoder(config, content)
            self.instructor = Instructor(text_encoder, self.n_items, config["instruction_dropout_prob"])
            if not restoring:
                self.instructor.fill_bank(catalog_instructions(config, content))
            saved_components["instructor"] = text_encoder.components()
            self.instructor.to(config["device"])
        self.components = json.dumps(saved_components)

        hidden = self.generator.hidden_size
        self.condition = UserCondition(
            embedding_size(self.user_encoder), hidden, config["n_cond_tokens"], config["n_history_images"],
            config["n_instruction_tokens"], self.instructor.text_encoder.dim if self.instructor else 0,
        )
        self.begin_image = nn.Parameter(torch.randn(hidden) * 0.02)
        self.cond_dropout_prob = config["cond_dropout_prob"]
        self.generation_config = GenerationConfig(
            do_sample=config["gen_do_sample"],
            temperature=config["gen_temperature"],
            top_k=config["gen_top_k"],
            guidance_scale=config["guidance_scale"],
            max_new_tokens=self.tokenizer.n_tokens,
        )
        self.diffusion_steps = config["diffusion_inference_steps"]
        self.eval_samples = config["eval_samples"]
        self.eval_seed = config["eval_seed"]

    @classmethod
    def from_checkpoint(cls, config, dataset, checkpoint):
        """The model of a checkpoint's ``other_parameter['components']``, ready for its state dict."""
        return cls(config, dataset, components=json.loads(checkpoint["other_parameter"]["components"]))

    @staticmethod
    def start_checkpoint(config):
        """The supervised checkpoint the RL stage starts from (``rl_init_checkpoint``), or None."""
        return config["rl_init_checkpoint"]

    @property
    def tokenizer(self):
        return self.generator.tokenizer

    @property
    def is_diffusion(self):
        return isinstance(self.generator, DiffusionGenerator)

    def train(self, mode=True):
        super().train(mode)
        self.tokenizer.eval()
        if self.instructor is not None:
            self.instructor.text_encoder.eval()
        if self.freeze_user_encoder:
            self.user_encoder.eval()
        return self

    # -- condition ---------------------------------------------------------------------------------
    def user_embedding(self, interaction):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_user_encoder):
            return user_embedding(self.user_encoder, interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def condition_tokens(self, interaction, user=None, instruction=None):
        """Condition tokens ``(B, n_tokens, hidden)`` of each row's user and history (and instruction
        embedding ``(B, d)``, zero rows for none, when the model has an instructor)."""
        if user is None:
            user = self.user_embedding(interaction)
        n_history = self.condition.n_history_images
        if not n_history:
            return self.condition(user, instruction=instruction)
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        positions = item_seq_len.unsqueeze(1) - n_history + torch.arange(n_history, device=item_seq.device)
        items = item_seq.gather(1, positions.clamp(min=0))
        mask = (positions >= 0) & self.has_image[items]
        history = self.generator.embed(self.item_codes[items]).mean(dim=2)
        return self.condition(user, history, mask, instruction)

    def _prefix(self, condition):
        return torch.cat([condition, self.begin_image.expand(len(condition), 1, -1)], dim=1)

    def user_encoder_scores(self, interaction):
        """``(B, n_items)``: the user encoder's scores of the catalog items with an image, -inf for the others and
        the padding item (what the instructor and the editor's source read)."""
        scores = self.user_encoder.full_sort_predict(interaction).float()
        scores[:, ~self.has_image] = -torch.inf
        scores[:, 0] = -torch.inf
        return scores

    # -- training ----------------------------------------------------------------------------------
    def code_logits(self, condition, codes):
        """Teacher-forced logits ``(B, n_tokens, codebook)`` of ``codes`` given condition tokens."""
        inputs = torch.cat([self._prefix(condition), self.generator.embed(codes[:, :-1])], dim=1)
        hidden, _ = self.generator(inputs)
        return self.generator.head(hidden[:, condition.shape[1] :])

    def generation_loss(self, interaction, user=None):
        target = interaction[self.POS_ITEM_ID]
        codes = self.item_codes[target]
        instruction = None if self.instructor is None else self.instructor.training_instructions(target)
        condition = self.condition.drop(self.condition_tokens(interaction, user, instruction), self.cond_dropout_prob)
        weight = self.has_image[target].float()
        if self.is_diffusion:
            return self.generator.loss(condition, codes, weight)
        logits = self.code_logits(condition, codes)
        per_row = F.cross_entropy(logits.flatten(0, 1).float(), codes.flatten(), reduction="none").view(codes.shape).mean(1)
        return (per_row * weight).sum() / weight.sum().clamp(min=1)

    def calculate_loss(self, interaction):
        user = self.user_embedding(interaction)
        generation_loss = self.generation_loss(interaction, user)
        if self.freeze_user_encoder or not self.rec_loss_weight:
            return generation_loss
        return self.rec_loss_weight * recommendation_loss(self.user_encoder, user, interaction), generation_loss

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, condition, uniforms, generation_config=None, negative=None, prefix_codes=None):
        """Sample ``(B, n_tokens)`` codes with a KV cache; classifier-free guidance against ``negative``.

        ``uniforms`` ``(B, n_tokens)`` in [0, 1): row b's code at step t is drawn by inverting the step's
        CDF at ``uniforms[b, t]``, so each row's sample depends on its own numbers only. Guidance follows
        ``logits = neg + guidance_scale * (cond - neg)`` with ``negative`` condition tokens (default the
        learned null condition): 1 is plain conditional sampling, 0 samples ``negative``; only the branches
        a scale needs are computed. ``prefix_codes`` ``(B, P)``: the first P codes are given (editing keeps
        them) and only the rest are sampled.
        """
        config = generation_config or self.generation_config
        scale = 1.0 if config.guidance_scale is None else config.guidance_scale
        batch = len(condition)
        negative = self.condition.null_condition(batch) if negative is None else negative
        branches = [negative] if scale == 0 else [condition] if scale == 1 else [condition, negative]
        warpers = LogitsProcessorList()
        if config.do_sample:
            warpers.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                warpers.append(TopKLogitsWarper(config.top_k))
        uniforms = uniforms.to(condition.device)
        inputs = self._prefix(torch.cat(branches))
        codes = []
        if prefix_codes is not None and prefix_codes.shape[1]:
            codes = list(prefix_codes.split(1, dim=1))
            inputs = torch.cat([inputs, self.generator.embed(prefix_codes.repeat(len(branches), 1))], dim=1)
        hidden, cache = self.generator(inputs, use_cache=True)
        for step in range(len(codes), config.max_new_tokens):
            logits = self.generator.head(hidden[:, -1]).float()
            if len(branches) == 2:
                conditional, unconditional = logits.chunk(2)
                logits = unconditional + scale * (conditional - unconditional)
            if config.do_sample:
                cdf = warpers(None, logits).softmax(dim=-1).double().cumsum(dim=-1)
                point = (uniforms[:, step] * cdf[:, -1]).unsqueeze(1)
                code = torch.searchsorted(cdf, point, right=True).clamp(max=logits.shape[-1] - 1)
            else:
                code = logits.argmax(dim=-1, keepdim=True)
            codes.append(code)
            if step + 1 < config.max_new_tokens:
                hidden, cache = self.generator(self.generator.embed(code.repeat(len(branches), 1)), cache, use_cache=True)
        return torch.cat(codes, dim=1)

    @property
    def noise_size(self):
        """Random numbers one sample draws: one per code (autoregressive) or per latent value (diffusion)."""
        if self.is_diffusion:
            return int(torch.Size(self.generator.latent_shape).numel())
        return self.tokenizer.n_tokens

    def uniforms(self, interaction, num_samples, seed):
        """Each (row, sample)'s random stream ``(B * num_samples, noise_size)`` (rows' samples adjacent)."""
        return row_uniforms(seed, interaction[self.USER_ID].cpu().numpy(), num_samples, self.noise_size)

    @torch.no_grad()
    def sample(self, condition, uniforms, generation_config=None, negative=None, start_codes=None, strength=1.0):
        """Codes ``(B, n_tokens)`` under ``condition`` tokens, with either generator.

        ``negative``: condition tokens guidance steers away from (default the null condition).
        ``start_codes`` ``(B, n_tokens)`` and ``strength`` in [0, 1] edit existing items (the AI editor): 0
        returns them unchanged, 1 creates anew. The diffusion generator re-noises their latents to
        ``strength`` of its schedule and denoises them under the condition (SDEdit); the autoregressive one
        keeps their first ``round((1 - strength) * n_tokens)`` codes (the top rows, in raster order) and
        samples the rest.
        """
        config = generation_config or self.generation_config
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if self.is_diffusion:
            scale = 1.0 if config.guidance_scale is None else config.guidance_scale
            negative = self.condition.null_condition(len(condition)) if negative is None else negative
            return self.generator.sample(condition, negative, uniforms.to(condition.device), self.diffusion_steps, scale,
                                         start_codes, strength)
        prefix = None
        if start_codes is not None:
            prefix = start_codes[:, : round((1 - strength) * self.tokenizer.n_tokens)]
        return self.sample_codes(condition, uniforms, config, negative, prefix)

    @torch.no_grad()
    def generate(self, interaction, num_samples=1, generation_config=None, seed=0):
        """``num_samples`` images per row of ``interaction`` (rows' samples adjacent). Sample j of a user
        depends only on ``seed``, the user's id and j (see :mod:`recbole_gen.model.sampling`)."""
        condition = self.condition_tokens(interaction).repeat_interleave(num_samples, dim=0)
        codes = self.sample(condition, self.uniforms(interaction, num_samples, seed), generation_config)
        return Generation(codes=codes, images=self.tokenizer.decode(codes))

    def closest_codes(self, codes, chunk=512):
        """``(items, shares)``, each ``(N,)``: for each of ``codes`` ``(N, n_tokens)``, the catalog item (one with an
        image; 0 where the catalog has none) whose codes agree with it at the most positions, and the share of
        positions they agree at. A share of 1 is a copy; a new item shares few codes with any catalog item
        (docs/genrec_rl.md, "Copies")."""
        catalog = self.item_codes[self.has_image]
        ids = torch.nonzero(self.has_image).flatten()
        items = torch.zeros(len(codes), dtype=torch.long, device=codes.device)
        shares = torch.zeros(len(codes), device=codes.device)
        if not len(ids):
            return items, shares
        for start in range(0, len(codes), chunk):
            agree = (codes[start : start + chunk, None, :] == catalog[None]).sum(dim=-1)  # (n, n_catalog)
            most, index = agree.max(dim=1)
            items[start : start + chunk] = ids[index]
            shares[start : start + chunk] = most / codes.shape[1]
        return items, shares

    # -- RecBole -----------------------------------------------------------------------------------
    def reconstruct_targets(self, interaction):
        """The next items' own codes and their decoded images: what a perfect generator would output
        with this tokenizer (the tokenizer ceiling)."""
        codes = self.item_codes[interaction[self.ITEM_ID]]
        return Generation(codes=codes, images=self.tokenizer.decode(codes))

    def score_catalog(self, codes):
        """``(B, n_items)`` scores of the catalog against ``(B, k, n_tokens)`` generated codes: the mean over
        the k samples of the cosine between codebook vectors."""
        batch, samples, _ = codes.shape
        generated = F.normalize(self.tokenizer.code_vectors(codes.flatten(0, 1)).float(), dim=-1)
        catalog = F.normalize(self.tokenizer.code_vectors(self.item_codes).float(), dim=-1)
        return (generated @ catalog.T).view(batch, samples, -1).mean(dim=1)

    def full_sort_predict(self, interaction):
        generation = self.generate(interaction, self.eval_samples, seed=self.eval_seed)
        return self.score_catalog(generation.codes.view(len(interaction), self.eval_samples, -1))

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
