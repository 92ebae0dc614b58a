"""Generative metrics: score the content a model puts in front of each user.

A model's *shown item* for user u has embedding g_u (``gen.emb``): its generated image's, or its
top-1 catalog item's. t_u is the ground-truth next item's embedding, taken from ``gen.catalog``
(row = internal item id, row 0 = RecBole's padding item, never part of the catalog). Similarities
are cosine, in the frozen item-encoder space, averaged over the evaluated users.
"""

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType


def _unit(x):
    return F.normalize(x.double(), dim=-1)


def target_sim(gen, catalog, target):
    """mean_u sim(g_u, t_u)."""
    return (_unit(gen) * _unit(catalog)[target]).sum(dim=1).mean().item()


def history_sim(gen, catalog, history):
    """mean over users with a history of mean_{h in history_u} sim(g_u, h); history id 0 is padding."""
    sims = torch.einsum("nd,nld->nl", _unit(gen), _unit(catalog)[history])
    mask = history != 0
    counts = mask.sum(dim=1)
    has_history = counts > 0
    per_user = (sims * mask).sum(dim=1)[has_history] / counts[has_history]
    return per_user.mean().item() if len(per_user) else 0.0


def personal_lift(gen, catalog, target, n_samples, seed):
    """mean_u [sim(g_u, t_u) - mean_{v in S_u} sim(g_v, t_u)], S_u a seeded sample of other users."""
    per_user = personal_lift_per_user(gen, catalog, target, n_samples, seed)
    return per_user.mean().item() if len(per_user) else 0.0


def bootstrap_interval(values, level=0.95, n_resamples=2000, seed=0):
    """Percentile bootstrap interval of the mean of ``values`` (resampling users)."""
    generator = torch.Generator().manual_seed(seed)
    values = values.double()
    index = torch.randint(len(values), (n_resamples, len(values)), generator=generator)
    means = values[index].mean(dim=1)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def personal_lift_per_user(gen, catalog, target, n_samples, seed):
    """Each user's term of :func:`personal_lift` (empty with fewer than two users)."""
    n_users = len(gen)
    if n_users < 2:
        return torch.zeros(0, dtype=torch.double)
    sims = _unit(catalog)[target] @ _unit(gen).T  # sims[u, v] = sim(g_v, t_u)
    own = sims.diagonal()
    if n_samples >= n_users - 1:
        others = (sims.sum(dim=1) - own) / (n_users - 1)
    else:
        generator = torch.Generator().manual_seed(seed)
        # Draw from the n_users - 1 other users: offsets 1..n_users-1 from u, modulo n_users.
        offsets = torch.stack([torch.randperm(n_users - 1, generator=generator)[:n_samples] + 1 for _ in range(n_users)])
        others_idx = (torch.arange(n_users).unsqueeze(1) + offsets) % n_users
        others = sims.gather(1, others_idx).mean(dim=1)
    return own - others


def target_ranks(gen, catalog, target):
    """1-based rank of t_u among catalog items 1.. by similarity to g_u (1 + number strictly closer)."""
    sims = _unit(gen) @ _unit(catalog)[1:].T
    target_sims = sims.gather(1, (target - 1).unsqueeze(1))
    return 1 + (sims > target_sims).sum(dim=1)


def novelty(gen, catalog):
    """mean_u (1 - max_{i >= 1} sim(g_u, c_i)); clamped at 0 against rounding (a cosine is at most 1)."""
    return (1 - (_unit(gen) @ _unit(catalog)[1:].T).max(dim=1).values).clamp(min=0).mean().item()


def diversity(gen):
    """Mean over unordered user pairs of (1 - sim(g_u, g_v))."""
    n_users = len(gen)
    if n_users < 2:
        return 0.0
    unit = _unit(gen)
    sims = unit @ unit.T
    pair_sum = (sims.sum() - sims.diagonal().sum()) / 2
    return max(0.0, (1 - pair_sum / (n_users * (n_users - 1) / 2)).item())  # >= 0 but for rounding


def frechet_distance(x, y, eps=1e-6):
    """||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 sqrt(S_x S_y)) between Gaussians fitted to the rows."""
    x, y = x.double().numpy(), y.double().numpy()
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = scipy.linalg.sqrtm(cov_x @ cov_y)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_x)) * eps
        covmean = scipy.linalg.sqrtm((cov_x + offset) @ (cov_y + offset))
    covmean = np.real(covmean)
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * np.trace(covmean))


class _GenerativeMetric(AbstractMetric):
    metric_type = EvaluatorType.RANKING

    def result(self, value):
        return {type(self).__name__.lower(): round(value, self.decimal_place)}


class TargetSim(_GenerativeMetric):
    metric_need = ["gen.emb", "gen.catalog", "gen.target"]

    def calculate_metric(self, dataobject):
        return self.result(target_sim(dataobject.get("gen.emb"), dataobject.get("gen.catalog"), dataobject.get("gen.target")))


class HistorySim(_GenerativeMetric):
    metric_need = ["gen.emb", "gen.catalog", "gen.history"]

    def calculate_metric(self, dataobject):
        return self.result(history_sim(dataobject.get("gen.emb"), dataobject.get("gen.catalog"), dataobject.get("gen.history")))


class PersonalLift(_GenerativeMetric):
    metric_need = ["gen.emb", "gen.catalog", "gen.target"]

    def __init__(self, config):
        super().__init__(config)
        self.n_samples = config["personal_lift_samples"]
        self.seed = config["seed"]

    def calculate_metric(self, dataobject):
        per_user = personal_lift_per_user(
            dataobject.get("gen.emb"), dataobject.get("gen.catalog"), dataobject.get("gen.target"), self.n_samples, self.seed
        )
        if len(per_user) < 2:
            return self.result(0.0)
        # The 95% bootstrap interval over users says whether the lift is distinguishable from zero.
        low, high = bootstrap_interval(per_user, seed=self.seed)
        return {
            "personallift": round(per_user.mean().item(), self.decimal_place),
            "personallift_ci95_low": round(low, self.decimal_place),
            "personallift_ci95_high": round(high, self.decimal_place),
        }


class _GenTopkMetric(_GenerativeMetric):
    metric_need = ["gen.emb", "gen.catalog", "gen.target"]

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]

    def calculate_metric(self, dataobject):
        ranks = target_ranks(dataobject.get("gen.emb"), dataobject.get("gen.catalog"), dataobject.get("gen.target"))
        name = type(self).__name__.lower()
        return {f"{name}@{k}": round(self.score(ranks, k).double().mean().item(), self.decimal_place) for k in self.topk}


class GenRecall(_GenTopkMetric):
    @staticmethod
    def score(ranks, k):
        return (ranks <= k).double()


class GenNDCG(_GenTopkMetric):
    @staticmethod
    def score(ranks, k):
        return (ranks <= k).double() / torch.log2(ranks.double() + 1)


class Novelty(_GenerativeMetric):
    metric_need = ["gen.emb", "gen.catalog"]

    def calculate_metric(self, dataobject):
        return self.result(novelty(dataobject.get("gen.emb"), dataobject.get("gen.catalog")))


class Diversity(_GenerativeMetric):
    metric_need = ["gen.emb"]

    def calculate_metric(self, dataobject):
        return self.result(diversity(dataobject.get("gen.emb")))


class FD(_GenerativeMetric):
    """Fréchet distance between shown-item and catalog embeddings, both L2-normalised."""

    metric_need = ["gen.emb", "gen.catalog"]
    smaller = True

    def calculate_metric(self, dataobject):
        return self.result(frechet_distance(_unit(dataobject.get("gen.emb")), _unit(dataobject.get("gen.catalog")[1:])))


GENERATIVE_METRICS = (TargetSim, HistorySim, PersonalLift, GenRecall, GenNDCG, Novelty, Diversity, FD)
