"""GenRec: generate the image of a user's next item with an autoregressive LMM, conditioned on the user.

Follows "Generate, Not Recommend: Personalized Multimodal Content Generation" (Liu, Dou, Hu, Xiong,
2025), supervised stage: an any-to-any LMM (autoregressive over discrete image codes, as Janus,
Chameleon and Emu3 are) is fine-tuned on each user's ground-truth next item, given the user and the
user's history images. It is the "AI creator" of "Generative Recommendation: Towards Next-generation
Recommender Paradigm" (GeneRec, Wang et al., 2023), with a sequential recommender as the instructor.

Data flow: history -> user encoder (any RecBole sequential model, ``user_encoder``) -> condition
(``n_cond_tokens`` soft tokens + the last ``n_history_images`` history images) -> generator (a causal
LM over the image tokenizer's codes) -> codes -> image. Loss: the user encoder's own recommendation
loss (unless frozen) + cross-entropy on the next item's image codes. ``full_sort_predict`` generates
one image per user and scores the catalog by similarity to it in the tokenizer's codebook space, so
RecBole's ranking metrics apply unchanged; the generated images themselves are kept for the
generative metrics (see recbole_gen.trainer.GenRecTrainer).
"""

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn
from transformers import GenerationConfig
from transformers.generation.logits_process import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper

from recbole_gen.data.item_content import ItemContent
from recbole_gen.model.condition import UserCondition
from recbole_gen.model.generator import build_generator
from recbole_gen.model.user_encoder import build_user_encoder, embedding_size, recommendation_loss, user_embedding

logger = logging.getLogger(__name__)


@dataclass
class Generation:
    codes: torch.Tensor  # (N, n_tokens) image codes
    images: torch.Tensor  # (N, 3, S, S) uint8, on the CPU


class GenRec(SequentialRecommender):
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.user_encoder = build_user_encoder(config, dataset)
        self.freeze_user_encoder = config["freeze_user_encoder"]
        self.user_encoder.requires_grad_(not self.freeze_user_encoder)
        self.rec_loss_weight = config["rec_loss_weight"]

        content = ItemContent(config, dataset)
        self.generator = build_generator(config, content).to(config["device"])
        tokenizer = self.generator.tokenizer
        self.register_buffer("item_codes", tokenizer.encode(content.images).cpu())
        self.register_buffer("has_image", content.has_image.clone())
        if content.n_missing:
            logger.warning(
                f"GenRec: {content.n_missing} items have no image; interactions with them as the next item train "
                "the user encoder but not the generator"
            )

        hidden = self.generator.hidden_size
        self.condition = UserCondition(
            embedding_size(self.user_encoder), hidden, config["n_cond_tokens"], config["n_history_images"]
        )
        self.begin_image = nn.Parameter(torch.randn(hidden) * 0.02)
        self.cond_dropout_prob = config["cond_dropout_prob"]
        self.generation_config = GenerationConfig(
            do_sample=config["gen_do_sample"],
            temperature=config["gen_temperature"],
            top_k=config["gen_top_k"],
            guidance_scale=config["guidance_scale"],
            max_new_tokens=tokenizer.n_tokens,
        )
        self.eval_seed = config["seed"]
        self.last_generation = None
        self.oracle = False  # True: full_sort_predict "generates" the target's reconstruction

    @property
    def tokenizer(self):
        return self.generator.tokenizer

    def train(self, mode=True):
        super().train(mode)
        self.tokenizer.eval()
        if self.freeze_user_encoder:
            self.user_encoder.eval()
        return self

    # -- condition ---------------------------------------------------------------------------------
    def user_embedding(self, interaction):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_user_encoder):
            return user_embedding(self.user_encoder, interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def condition_tokens(self, interaction, user=None):
        """Condition tokens ``(B, n_tokens, hidden)`` of each row's user and history."""
        if user is None:
            user = self.user_embedding(interaction)
        n_history = self.condition.n_history_images
        if not n_history:
            return self.condition(user)
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        positions = item_seq_len.unsqueeze(1) - n_history + torch.arange(n_history, device=item_seq.device)
        items = item_seq.gather(1, positions.clamp(min=0))
        mask = (positions >= 0) & self.has_image[items]
        history = self.generator.embed(self.item_codes[items]).mean(dim=2)
        return self.condition(user, history, mask)

    def _prefix(self, condition):
        return torch.cat([condition, self.begin_image.expand(len(condition), 1, -1)], dim=1)

    # -- training ----------------------------------------------------------------------------------
    def code_logits(self, condition, codes):
        """Teacher-forced logits ``(B, n_tokens, codebook)`` of ``codes`` given condition tokens."""
        inputs = torch.cat([self._prefix(condition), self.generator.embed(codes[:, :-1])], dim=1)
        hidden, _ = self.generator(inputs)
        return self.generator.head(hidden[:, condition.shape[1] :])

    def generation_loss(self, interaction, user=None):
        target = interaction[self.POS_ITEM_ID]
        codes = self.item_codes[target]
        condition = self.condition.drop(self.condition_tokens(interaction, user), self.cond_dropout_prob)
        logits = self.code_logits(condition, codes)
        per_row = F.cross_entropy(logits.flatten(0, 1).float(), codes.flatten(), reduction="none").view(codes.shape).mean(1)
        weight = self.has_image[target].float()
        return (per_row * weight).sum() / weight.sum().clamp(min=1)

    def calculate_loss(self, interaction):
        user = self.user_embedding(interaction)
        generation_loss = self.generation_loss(interaction, user)
        if self.freeze_user_encoder or not self.rec_loss_weight:
            return generation_loss
        return self.rec_loss_weight * recommendation_loss(self.user_encoder, user, interaction), generation_loss

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, condition, generation_config=None, generator=None):
        """Sample ``(B, n_tokens)`` codes with a KV cache; classifier-free guidance against the null condition.

        Guidance follows ``logits = uncond + guidance_scale * (cond - uncond)``: 1 is plain conditional
        sampling, 0 is unconditional; only the branches a scale needs are computed.
        """
        config = generation_config or self.generation_config
        scale = 1.0 if config.guidance_scale is None else config.guidance_scale
        batch = len(condition)
        null = self.condition.null_condition(batch)
        branches = [null] if scale == 0 else [condition] if scale == 1 else [condition, null]
        warpers = LogitsProcessorList()
        if config.do_sample:
            warpers.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                warpers.append(TopKLogitsWarper(config.top_k))
        hidden, cache = self.generator(self._prefix(torch.cat(branches)), use_cache=True)
        codes = []
        for step in range(config.max_new_tokens):
            logits = self.generator.head(hidden[:, -1]).float()
            if len(branches) == 2:
                conditional, unconditional = logits.chunk(2)
                logits = unconditional + scale * (conditional - unconditional)
            if config.do_sample:
                probs = warpers(None, logits).softmax(dim=-1)
                code = torch.multinomial(probs, 1, generator=generator)
            else:
                code = logits.argmax(dim=-1, keepdim=True)
            codes.append(code)
            if step + 1 < config.max_new_tokens:
                hidden, cache = self.generator(self.generator.embed(code.repeat(len(branches), 1)), cache, use_cache=True)
        return torch.cat(codes, dim=1)

    @torch.no_grad()
    def generate(self, interaction, num_samples=1, generation_config=None, seed=None):
        """``num_samples`` images per row of ``interaction`` (rows' samples adjacent), seeded."""
        condition = self.condition_tokens(interaction).repeat_interleave(num_samples, dim=0)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=condition.device).manual_seed(int(seed))
        codes = self.sample_codes(condition, generation_config, generator)
        return Generation(codes=codes, images=self.tokenizer.decode(codes))

    # -- RecBole -----------------------------------------------------------------------------------
    def reconstruct_targets(self, interaction):
        """The next items' own codes and their decoded images: what a perfect generator would output
        with this tokenizer (the tokenizer ceiling)."""
        codes = self.item_codes[interaction[self.ITEM_ID]]
        return Generation(codes=codes, images=self.tokenizer.decode(codes))

    def full_sort_predict(self, interaction):
        if self.oracle:
            self.last_generation = self.reconstruct_targets(interaction)
        else:
            # Seeded by the batch's first user: a user's generated item does not depend on earlier batches.
            seed = self.eval_seed + int(interaction[self.USER_ID][0])
            self.last_generation = self.generate(interaction, seed=seed)
        generated = F.normalize(self.tokenizer.code_vectors(self.last_generation.codes).float(), dim=-1)
        catalog = F.normalize(self.tokenizer.code_vectors(self.item_codes).float(), dim=-1)
        return generated @ catalog.T

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
