"""The RL stage's reward: a reward encoder that is not an evaluation encoder, and composable reward terms.

The reward encoder is an item encoder fitted like the evaluation one (:mod:`recbole_gen.evaluator.encoder`)
but with its own settings (``rl_reward_text_fields``, ``rl_reward_fit_epochs``, ``rl_reward_fit_seed``): a
policy optimised against a space is never scored or selected in that space, and
:meth:`RewardModel.from_config` refuses settings that would make the two the same fit.

Terms, each per generated sample, weighted by config and summed:

- ``contrastive`` (``rl_contrastive_weight``): mean cosine to the sample's own targets (the training row's
  next item and the user's following training items, ``rl_reward_horizon`` in all: averaging a few future
  items cuts the noise of a single draw) minus the mean cosine to the other rows' targets in the batch, so
  one prototypical image shown to everyone earns nothing;
- ``realism`` (``rl_realism_weight``): mean cosine to the ``REALISM_NEIGHBOURS`` closest catalog items, high
  where the sample lies on the catalog's image distribution;
- ``diversity`` (``rl_diversity_weight``): one minus the mean cosine to the other samples of its group;
- ``spread`` (``rl_spread_weight``): one minus the mean cosine to the other rows' samples in the batch, so
  images for different users that look alike earn less: ``diversity`` acts against one user's images
  collapsing to one, ``spread`` against every user's collapsing to the same central image (which
  TargetSim rewards and FD punishes);
- ``fd`` (``rl_fd_weight``): minus the sample's influence on the batch's Fréchet distance to the catalog
  (its items with content, uniformly: no target enters it) in the reward space
  (:func:`recbole_gen.evaluator.metrics.fd_influence`): a sample that fills a direction the catalog spreads
  over and the batch lacks earns, one that pulls the batch's mean off the catalog's or piles onto a
  direction the batch already over-covers loses. ``spread`` keeps images apart; this term asks them to be
  apart the way catalog images are (FD, which the benchmark reports, counts the shape of the spread too);
- ``copy`` (``rl_copy_penalty``): minus one for a copy of a catalog item's codes (``copied``: the RL trainer
  marks samples that share at least ``rl_copy_code_share`` of their codes with one item);
- ``expectation`` (``rl_expectation_weight``): cosine to what the user encoder expects, the
  score-weighted mean embedding of the user's top catalog items (:mod:`recbole_gen.rl.reranker`, the
  best-of-N baseline's criterion): a low-noise signal that needs no target, which the single future
  items of the contrastive term are not; with ``rl_expectation_contrast``, minus the mean cosine to the
  batch's other rows' expected embeddings, so a central image shown to everyone earns nothing here either;
  ``rl_expectation_top_items`` sets how many top items the expectation averages: fewer put it nearer the
  top item (1: the top item's embedding, SASRec's corner of the frontier), more nearer the user's centre;
  with ``rl_expectation_nearest_item``, the expected embedding is replaced by the catalog item with content
  nearest it: one real image per user to aim at, not a blend that a single off-catalog image near every
  user's blend can satisfy.

Only the targets a caller passes enter the reward: the RL trainer passes each training row's next item and
the user's following training items.

With ``rl_reward_ensemble`` = K > 1, the RL stage is rewarded by a :class:`RewardEnsemble` of K reward
encoders fitted with seeds ``rl_reward_fit_seed`` to ``rl_reward_fit_seed + K - 1``, each scoring the
samples in its own space, aggregated by ``rl_reward_ensemble_aggregate``: ``mean``, or ``min`` (worst-case
optimisation; Coste et al. 2024, "Reward Model Ensembles Help Mitigate Overoptimization"). A policy that
raises one fit's reward and not the others' (what one seed of a fit learnt and the next did not) earns
nothing under ``min``. Everything else that needs the reward space (validation's reward-space TargetSim,
best-of-N, the fidelity checks) uses the first member.
"""

import collections
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recbole_gen.data.item_content import item_content
from recbole_gen.evaluator.encoder import FIT, catalog_encoder, fitted_encoder_dir
from recbole_gen.evaluator.metrics import fd_influence
from recbole_gen.fidelity.checks import realism_scores
from recbole_gen.rl.reranker import RERANK_TOP_ITEMS, top_items_mean

REALISM_NEIGHBOURS = 10
FD_RIDGE = 0.1  # the fd term's ridge (fd_influence): a tenth of the catalog's mean variance
TERMS = ("contrastive", "realism", "diversity", "spread", "fd", "copy", "expectation")
AGGREGATES = {"mean": lambda totals: totals.mean(dim=0), "min": lambda totals: totals.min(dim=0).values}


def reward_settings(config, member=0):
    """``config`` seen through the fit settings of the reward encoder ``member`` (of an ensemble; a mapping
    read like a Config)."""
    overrides = {"eval_encoder": FIT, "encoder_fit_text_fields": config["rl_reward_text_fields"],
                 "encoder_fit_epochs": config["rl_reward_fit_epochs"], "encoder_fit_seed": config["rl_reward_fit_seed"] + member}
    return collections.ChainMap(overrides, config)


@dataclass
class Rewards:
    total: torch.Tensor  # (N,)
    terms: dict  # name -> (N,) unweighted term
    member_sd: torch.Tensor = None  # (N,) spread of an ensemble's members' totals; None for one reward encoder


class RewardModel:
    """Scores generated images against their rows' targets in the reward encoder's space."""

    def __init__(self, encoder, catalog, has_content, weights, expectation_contrast=False, expectation_top_items=RERANK_TOP_ITEMS,
                 expectation_nearest_item=False):
        self.encoder = encoder
        self.catalog = catalog  # (n_items, d) unit embeddings, row = internal item id
        self.candidates = catalog[has_content]
        self.has_content = has_content
        self.weights = {term: weights.get(term, 0.0) for term in TERMS}  # terms with weight 0 are not computed
        self.expectation_contrast = expectation_contrast
        self.expectation_top_items = expectation_top_items
        self.expectation_nearest_item = expectation_nearest_item

    @property
    def needs_expectation(self):
        """Whether a call needs the rows' expected embeddings (the expectation term is on)."""
        return bool(self.weights["expectation"])

    @classmethod
    def from_config(cls, config, dataset, member=0):
        """The reward model of ``dataset``'s catalog; ``member`` > 0: an ensemble's further reward encoder,
        fitted with seed ``rl_reward_fit_seed + member``."""
        settings = reward_settings(config, member)
        if config["eval_encoder"] == FIT:
            content = item_content(config, dataset)
            if fitted_encoder_dir(settings, content) == fitted_encoder_dir(config, content):
                raise ValueError(
                    f"the reward encoder{f' {member} of the ensemble (seed rl_reward_fit_seed + {member})' if member else ''} "
                    "would be the evaluation encoder: set rl_reward_text_fields, rl_reward_fit_epochs "
                    "or rl_reward_fit_seed apart from encoder_fit_text_fields, encoder_fit_epochs, encoder_fit_seed"
                )
        content, encoder, embeddings = catalog_encoder(settings, dataset)
        has_content = content.has_image.clone()
        has_content[0] = False
        weights = {"contrastive": config["rl_contrastive_weight"], "realism": config["rl_realism_weight"],
                   "diversity": config["rl_diversity_weight"], "spread": config["rl_spread_weight"], "fd": config["rl_fd_weight"],
                   "copy": config["rl_copy_penalty"],
                   "expectation": config["rl_expectation_weight"]}
        top_items = config["rl_expectation_top_items"]
        if not 1 <= top_items <= int(has_content.sum()):  # an int: Config checks the key's type
            raise ValueError(f"config key 'rl_expectation_top_items' = {top_items!r}: expected an integer from 1 to the "
                             f"{int(has_content.sum())} catalog items with content")
        return cls(encoder, embeddings, has_content, weights, config["rl_expectation_contrast"], top_items,
                   config["rl_expectation_nearest_item"])

    def embed(self, images):
        return self.encoder.encode_images(images)

    def expected(self, scores, top_items):
        """``(B, d)``: what the user encoder expects, in this space: the unit-normalised mean embedding of each
        row's ``top_items`` best-scored catalog items with content, weighted by the softmax of their ``scores``
        ``(B, n_items)`` (:func:`recbole_gen.rl.reranker.top_items_mean`; 1: the top item's embedding)."""
        scores = scores.float().masked_fill(~self.has_content.to(scores.device), -torch.inf)
        return F.normalize(top_items_mean(scores, self.catalog, top_items), dim=-1)

    def nearest_item(self, embeddings):
        """``(B, d)``: the embedding of the catalog item with content nearest (by cosine) each of the unit
        ``embeddings`` ``(B, d)``."""
        return self.candidates[(embeddings @ self.candidates.T).argmax(dim=1)]

    def target_sim(self, embeddings, targets):
        """``(M,)`` cosine of each embedding to its target item's embedding, for the M of the ``(N,)`` ``targets``
        that have content (as TargetSim, whose mean is over them)."""
        targets = targets.cpu()
        keep = self.has_content[targets]
        return (embeddings[keep] * self.catalog[targets[keep]]).sum(dim=1)

    def target_means(self, targets):
        """``(B, d)``: the mean embedding of each row's targets ``(B, K)`` with content (0 = none)."""
        targets = targets.cpu()
        valid = self.has_content[targets].float().unsqueeze(-1)
        return (self.catalog[targets] * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)

    def __call__(self, generation, copied, targets, group_size, scores=None):
        """Rewards of the ``generation`` of B * G images, groups of ``group_size`` = G adjacent samples of the
        rows whose targets are ``targets`` ``(B, K)`` (items, 0 = none); ``copied`` ``(B * G,)`` marks the
        catalog copies (exact, or by a share of codes); ``scores`` ``(B, n_items)``, the user encoder's scores
        of the rows, when the expectation term is on."""
        embeddings = self.embed(generation.images)
        terms = {}
        if self.weights["contrastive"]:
            terms["contrastive"] = _own_minus_others(embeddings @ self.target_means(targets).T, group_size)
        if self.weights["realism"]:
            terms["realism"] = realism_scores(embeddings, self.candidates, min(REALISM_NEIGHBOURS, len(self.candidates)))
        if self.weights["diversity"] and group_size > 1:
            grouped = embeddings.view(-1, group_size, embeddings.shape[1])
            pair_sims = grouped @ grouped.transpose(1, 2)
            terms["diversity"] = (1 - (pair_sims.sum(dim=2) - 1) / (group_size - 1)).flatten()
        if self.weights["spread"] and len(embeddings) > group_size:
            sims = embeddings @ embeddings.T
            rows = torch.arange(len(embeddings)) // group_size
            others = rows.unsqueeze(0) != rows.unsqueeze(1)
            terms["spread"] = 1 - (sims * others).sum(dim=1) / others.sum(dim=1)
        if self.weights["fd"] and len(embeddings) > 1:
            terms["fd"] = -fd_influence(embeddings.cpu(), self.candidates, ridge=FD_RIDGE)
        if self.weights["copy"]:
            terms["copy"] = -copied.float().cpu()
        if self.weights["expectation"]:
            expected = self.expected(scores, self.expectation_top_items)
            if self.expectation_nearest_item:
                expected = self.nearest_item(expected)
            sims = embeddings @ expected.T  # (B * G, B)
            terms["expectation"] = _own_minus_others(sims, group_size) if self.expectation_contrast else _own(sims, group_size)
        total = sum(self.weights[name] * value for name, value in terms.items())
        if not terms:
            total = torch.zeros(len(embeddings))
        return Rewards(total=total, terms=terms)


class RewardEnsemble:
    """Several :class:`RewardModel` s scoring the same samples, their totals aggregated per sample
    (``AGGREGATES``); the terms are the members' means. Called like a :class:`RewardModel`."""

    def __init__(self, members, aggregate="mean"):
        if aggregate not in AGGREGATES:
            raise ValueError(f"config key 'rl_reward_ensemble_aggregate' = {aggregate!r}: expected one of {tuple(AGGREGATES)}")
        self.members, self.aggregate = members, aggregate

    @classmethod
    def from_config(cls, config, dataset, first=None):
        """``rl_reward_ensemble`` reward models of ``dataset``'s catalog (``first``: member 0, already built)."""
        size = config["rl_reward_ensemble"]
        if size < 1:
            raise ValueError(f"config key 'rl_reward_ensemble' = {size!r}: expected a positive number of reward encoders")
        first = first or RewardModel.from_config(config, dataset)
        members = [first] + [RewardModel.from_config(config, dataset, member) for member in range(1, size)]
        return cls(members, config["rl_reward_ensemble_aggregate"])

    @property
    def needs_expectation(self):
        return self.members[0].needs_expectation

    def __call__(self, generation, copied, targets, group_size, scores=None):
        rewards = [member(generation, copied, targets, group_size, scores) for member in self.members]
        totals = torch.stack([r.total for r in rewards])
        terms = {name: torch.stack([r.terms[name] for r in rewards]).mean(dim=0) for name in rewards[0].terms}
        return Rewards(total=AGGREGATES[self.aggregate](totals), terms=terms,
                       member_sd=totals.std(dim=0, unbiased=False) if len(rewards) > 1 else None)


def _own(sims, group_size):
    """``(B * G,)``: each sample's entry of ``sims`` ``(B * G, B)`` for its own row (G adjacent samples a row)."""
    return sims.gather(1, (torch.arange(len(sims)) // group_size).unsqueeze(1)).squeeze(1)


def _own_minus_others(sims, group_size):
    """``(B * G,)``: each sample's similarity ``sims`` ``(B * G, B)`` to its own row minus its mean to the other rows."""
    own_sim = _own(sims, group_size)
    return own_sim - (sims.sum(dim=1) - own_sim) / max(sims.shape[1] - 1, 1)
