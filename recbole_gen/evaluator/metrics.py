"""Generative metrics: score the content a model puts in front of each user.

For user u the model shows k items (k samples of a generator, ``eval_samples``; k = 1 for a ranking
model's top-1) with embeddings g_uj, from ``gen.shown``. T_u is the set of u's ground-truth items (the
next item for sequential models) and H_u u's history. Embeddings are L2-normalised; similarities are
cosines in the frozen item-encoder space. Items without real content (grey placeholders, row 0
padding) are left out everywhere: as targets, as history, and as catalog candidates. A user whose
targets all lack content takes no part in the target-based metrics.

Cosines are linear in each unit vector, so a user's mean similarity over k shown items and |T_u|
targets is the dot product of the means: g_u = mean_j g_uj, t_u = mean_{i in T_u} e_i.

Memory: nothing here builds a users x users or users x catalog matrix. Products of that shape are
computed tile by tile, each intermediate holding at most ``block_size`` elements (config
``eval_block_size``; one row's worth if a single row is larger), so evaluation memory grows with
users x d and items x d only. Every blocked result equals the unblocked one up to float64 rounding
(ranks exactly).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

# A covariance product's eigenvalues below -RESIDUE * (largest) are not rounding: the inputs are broken.
RESIDUE_TOLERANCE = 1e-6
# Elements of the largest intermediate a blocked metric builds (float64: 8 MiB); eval_block_size's default.
DEFAULT_BLOCK_SIZE = 1_048_576
# Cosines closer than this are ties: float64 dot products of unit vectors computed in different orders
# (a matrix product vs a row-wise sum, or tiles of different shapes) differ by less than 1e-13.
TIE_TOLERANCE = 1e-12


def _unit(x):
    return F.normalize(x.double(), dim=-1)


def _blocks(count, size):
    """Consecutive slices of at most ``size`` covering ``range(count)``."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _tile(n_rows, n_cols, block_size, dim):
    """``(rows, cols)`` of the tiles of an ``n_rows x n_cols`` similarity matrix between ``dim``-vectors: at
    most ``block_size`` similarities and gathered row vectors per tile (at least one of each). Tiles are
    about square where the sizes allow, so each product is a matrix product, not a vector sweep."""
    side = max(1, math.isqrt(block_size))
    cols = max(1, min(n_cols, block_size // max(1, min(n_rows, side))))
    return max(1, min(n_rows, block_size // max(cols, dim))), cols


@dataclass
class ContentInputs:
    """What every generative metric reads, with placeholder items already removed from targets and history."""

    shown: torch.Tensor  # (U, k, d) unit
    catalog: torch.Tensor  # (N, d) unit
    has_content: torch.Tensor  # (N,) bool
    target: torch.Tensor  # (M, 2) (user row, item) pairs, items with content only
    history: torch.Tensor  # (H, 2)
    code_share: torch.Tensor = None  # (U, k): the largest share of shown item j's codes equal to one catalog item's

    @classmethod
    def build(cls, shown, catalog, has_content, target, history=None, code_share=None):
        has_content = has_content.bool().clone()
        has_content[0] = False  # RecBole's padding item
        history = torch.zeros(0, 2, dtype=torch.long) if history is None else history
        keep = lambda pairs: pairs[has_content[pairs[:, 1]]]
        shown = shown if shown.dim() == 3 else shown.unsqueeze(1)
        code_share = torch.zeros(shown.shape[:2]) if code_share is None else code_share.float().view(shown.shape[:2])
        return cls(_unit(shown), _unit(catalog), has_content, keep(target.long()), keep(history.long()), code_share)

    @classmethod
    def from_struct(cls, dataobject):
        """The inputs held by a collector's ``DataStruct`` (``gen.*`` keys, see ``GenerativeCollector``)."""
        optional = lambda key: dataobject.get(key) if key in dataobject else None
        return cls.build(dataobject.get("gen.shown"), dataobject.get("gen.catalog"), dataobject.get("gen.has_content"),
                         dataobject.get("gen.target"), optional("gen.history"), optional("gen.code_share"))

    @property
    def copied(self):
        """``(U, k)`` bool: the shown items that are exact copies of a catalog item (every code equal)."""
        return self.code_share >= 1

    @property
    def n_users(self):
        return len(self.shown)

    @property
    def mean_shown(self):
        return self.shown.mean(dim=1)

    def user_means(self, pairs):
        """``(means (U, d), counts (U,))``: each user's mean item embedding over ``pairs``."""
        sums = torch.zeros(self.n_users, self.catalog.shape[1], dtype=torch.double)
        sums.index_add_(0, pairs[:, 0], self.catalog[pairs[:, 1]])
        counts = torch.bincount(pairs[:, 0], minlength=self.n_users)
        return sums / counts.clamp(min=1).unsqueeze(1), counts

    @property
    def candidates(self):
        return self.catalog[self.has_content]


def target_sim_per_user(inputs):
    """sim(g_u, t_u) for each user u with a target, in user order."""
    targets, counts = inputs.user_means(inputs.target)
    return (inputs.mean_shown * targets).sum(dim=1)[counts > 0]


def target_sim(inputs):
    """mean over users with a target of sim(g_u, t_u)."""
    per_user = target_sim_per_user(inputs)
    return per_user.mean().item() if len(per_user) else float("nan")


def history_sim(inputs):
    """mean over users with a history of sim(g_u, h_u), h_u the mean of the history items."""
    history, counts = inputs.user_means(inputs.history)
    per_user = (inputs.mean_shown * history).sum(dim=1)[counts > 0]
    return per_user.mean().item() if len(per_user) else float("nan")


def bootstrap_interval(values, level=0.95, n_resamples=2000, seed=0, block_size=DEFAULT_BLOCK_SIZE):
    """Percentile bootstrap interval of the mean of ``values`` (resampling users), drawing the resamples
    in blocks of at most ``block_size`` indices (at least one resample): the draws are those of a single
    ``n_resamples x len(values)`` draw."""
    generator = torch.Generator().manual_seed(seed)
    values = values.double()
    rows = max(1, block_size // max(1, len(values)))
    means = torch.cat([values[torch.randint(len(values), (block.stop - block.start, len(values)), generator=generator)].mean(dim=1)
                       for block in _blocks(n_resamples, rows)])
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def personal_lift_per_user(inputs, n_samples, seed, block_size=DEFAULT_BLOCK_SIZE):
    """sim(g_u, t_u) - mean_{v in S_u} sim(g_v, t_u) for each user u with a target, S_u a seeded sample of
    ``n_samples`` other users (all of them if fewer). A user's k shown items enter through their mean, so
    the per-user terms, and a bootstrap over users of them, account for the k samples.

    Against all others the sum over v is one dot product with sum_v g_v; sampled others are gathered for
    blocks of users (at most ``block_size`` gathered elements, at least one user). Each user's sample is
    a prefix of its own ``randperm`` of the other users, drawn in user order from one generator."""
    targets, counts = inputs.user_means(inputs.target)
    users = torch.nonzero(counts > 0).flatten()
    n_users = inputs.n_users
    if n_users < 2 or len(users) == 0:
        return torch.zeros(0, dtype=torch.double)
    means, targets = inputs.mean_shown, targets[users]
    own = (means[users] * targets).sum(dim=1)
    if n_samples >= n_users - 1:
        return own - (targets @ means.sum(dim=0) - own) / (n_users - 1)
    generator = torch.Generator().manual_seed(seed)
    others = torch.empty(len(users), dtype=torch.double)
    for block in _blocks(len(users), max(1, block_size // (n_samples * means.shape[1]))):
        # Draw from the n_users - 1 other users: offsets 1..n_users-1 from u, modulo n_users.
        offsets = torch.stack([torch.randperm(n_users - 1, generator=generator)[:n_samples] + 1
                               for _ in range(block.stop - block.start)])
        sampled = means[(users[block].unsqueeze(1) + offsets) % n_users]  # (b, n_samples, d)
        others[block] = (sampled @ targets[block].unsqueeze(-1)).squeeze(-1).mean(dim=1)
    return own - others


def target_ranks(inputs, block_size=DEFAULT_BLOCK_SIZE):
    """``(M, k)``: for each target pair (u, i) and shown item j of u, the 1-based rank of i among the catalog
    items with content, by similarity to g_uj: 1 + the number of items closer by more than
    ``TIE_TOLERANCE`` (so neither i itself nor an item with i's embedding counts, whatever the rounding).
    Computed over tiles of at most ``block_size`` similarities or gathered elements (at least one pair's
    k shown items)."""
    candidates = inputs.candidates
    users, items = inputs.target[:, 0], inputs.target[:, 1]
    k, dim = inputs.shown.shape[1:]
    rows, cols = _tile(len(users), len(candidates), block_size // k, dim)
    ranks = torch.ones(len(users), k, dtype=torch.long)
    for block in _blocks(len(users), rows):
        shown = inputs.shown[users[block]]  # (m, k, d)
        threshold = (shown * inputs.catalog[items[block]].unsqueeze(1)).sum(dim=-1).unsqueeze(-1) + TIE_TOLERANCE
        for part in _blocks(len(candidates), cols):
            ranks[block] += (shown @ candidates[part].T > threshold).sum(dim=-1)
    return ranks


def nearest_catalog_sim(inputs, block_size=DEFAULT_BLOCK_SIZE):
    """``(U, k)``: each shown item's cosine to its closest catalog item with content, over tiles of at most
    ``block_size`` similarities."""
    candidates = inputs.candidates
    if not len(candidates):
        raise ValueError("gen.has_content: no catalog item (but padding) has content, so no shown item has a closest one")
    shown = inputs.shown.flatten(0, 1)
    rows, cols = _tile(len(shown), len(candidates), block_size, shown.shape[1])
    nearest = torch.full((len(shown),), -math.inf, dtype=torch.double)
    for block in _blocks(len(shown), rows):
        for part in _blocks(len(candidates), cols):
            nearest[block] = torch.maximum(nearest[block], (shown[block] @ candidates[part].T).max(dim=1).values)
    return nearest.view(inputs.shown.shape[:2])


def novel_mask(inputs, threshold=None, code_share=None, block_size=DEFAULT_BLOCK_SIZE):
    """``(U, k)`` bool: shown items that are neither an exact copy nor a near copy: with a ``threshold``, by
    cosine to the closest catalog item (at least ``threshold``), with a ``code_share``, by image codes (at
    least that share of them equal to one catalog item's)."""
    novel = ~inputs.copied
    if code_share is not None:
        novel &= inputs.code_share < code_share
    if threshold is not None:
        novel &= nearest_catalog_sim(inputs, block_size) < threshold
    return novel


def novel_inputs(inputs, novel):
    """The inputs restricted to the novel shown items: users with at least one, each shown the mean of
    their novel items (k = 1), with their targets and history renumbered."""
    users = torch.nonzero(novel.any(dim=1)).flatten()
    weights = novel[users].double()
    shown = (inputs.shown[users] * weights.unsqueeze(-1)).sum(dim=1) / weights.sum(dim=1, keepdim=True)
    row = torch.full((inputs.n_users,), -1, dtype=torch.long)
    row[users] = torch.arange(len(users))

    def renumber(pairs):
        pairs = pairs[row[pairs[:, 0]] >= 0]
        return torch.stack([row[pairs[:, 0]], pairs[:, 1]], dim=1)

    return ContentInputs(shown.unsqueeze(1), inputs.catalog, inputs.has_content, renumber(inputs.target),
                         renumber(inputs.history), torch.zeros(len(users), 1))


def per_user_mean(values, users, n_users):
    """Mean of ``values`` per user (users without values dropped)."""
    sums = torch.zeros(n_users, dtype=torch.double).index_add_(0, users, values.double())
    counts = torch.bincount(users, minlength=n_users)
    return sums[counts > 0] / counts[counts > 0]


def novelty(inputs, block_size=DEFAULT_BLOCK_SIZE):
    """mean_u mean_j (1 - max_i sim(g_uj, e_i)) over catalog items i with content; clamped at 0 against
    rounding (a cosine is at most 1)."""
    return (1 - nearest_catalog_sim(inputs, block_size)).clamp(min=0).mean().item()


def diversity(inputs):
    """Mean over unordered pairs of distinct users (u, v) of mean_{j, j'} (1 - sim(g_uj, g_vj')), in O(U d):
    the sum over pairs of g_u . g_v is (|sum_u g_u|^2 - sum_u |g_u|^2) / 2."""
    n_users = inputs.n_users
    if n_users < 2:
        return 0.0
    means = inputs.mean_shown
    pair_sum = (means.sum(dim=0).square().sum() - means.square().sum()) / 2
    return max(0.0, (1 - pair_sum / (n_users * (n_users - 1) / 2)).item())  # >= 0 but for rounding


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def _gaussian(rows):
    """``(mean, covariance)`` of the ``(N, d)`` tensor ``rows`` as float64 numpy arrays (covariance ``(d, d)``)."""
    rows = rows.detach().double().numpy()
    return rows.mean(axis=0), np.atleast_2d(np.cov(rows, rowvar=False))


def frechet_distance(x, y):
    """||mu_x - mu_y||^2 + Tr(S_x) + Tr(S_y) - 2 Tr((S_x^1/2 S_y S_x^1/2)^1/2) between Gaussians fitted to the rows.

    The trace of sqrt(S_x S_y) is computed from the symmetric form, whose eigenvalues are real: this
    stays stable when there are fewer rows than dimensions (singular covariances). Eigenvalues below 0
    are rounding and clipped; a large negative one means broken input and raises.
    """
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    (mu_x, cov_x), (mu_y, cov_y) = _gaussian(x), _gaussian(y)
    root_x = _sqrt_psd(cov_x)
    values = np.linalg.eigvalsh(root_x @ cov_y @ root_x)
    if values.min() < -RESIDUE_TOLERANCE * max(values.max(), 1e-12):
        raise ArithmeticError(f"FD: covariance product has eigenvalue {values.min():.3g} (largest {values.max():.3g}); inputs are not valid embeddings")
    trace_root = np.sqrt(values.clip(min=0)).sum()
    return max(0.0, float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2 * trace_root))


def fd_influence(x, y, ridge=0.0):
    """``(N,)`` tensor: each row's influence on ``frechet_distance(x, y)``, the first-order change of FD as
    the rows' distribution moves towards a point mass at that row (d/de FD((1 - e) P_x + e delta_row, P_y)
    at e = 0, both Gaussians). Removing row i of N changes FD by about -influence_i / (N - 1).

    2 (mu_x - mu_y) . (row - mu_x) + (row - mu_x)' (I - T) (row - mu_x) - Tr((I - T) S_x), with T the
    Gaussians' optimal transport map S_x^-1/2 (S_x^1/2 S_y S_x^1/2)^1/2 S_x^-1/2: a row that pulls the mean
    away from y's, or lies along a direction x already spreads over more than y does, has a positive
    influence; one that fills a direction y spreads over and x lacks, a negative one. ``ridge`` adds that
    share of y's mean variance to S_x's diagonal in the map, which keeps it finite when the rows collapse
    onto fewer directions than they have dimensions.
    """
    (mu_x, cov_x), (mu_y, cov_y) = _gaussian(x), _gaussian(y)
    eye = np.eye(len(cov_x))
    values, vectors = np.linalg.eigh(cov_x + ridge * np.trace(cov_y) / len(cov_y) * eye)
    if values.min() <= 0:
        raise ArithmeticError(f"FD influence: the rows' covariance is singular (smallest eigenvalue {values.min():.3g}); set a ridge above 0")
    root, inverse_root = (vectors * np.sqrt(values)) @ vectors.T, (vectors / np.sqrt(values)) @ vectors.T
    excess = eye - inverse_root @ _sqrt_psd(root @ cov_y @ root) @ inverse_root
    deviations = x.detach().double().numpy() - mu_x
    influence = 2 * deviations @ (mu_x - mu_y) + np.einsum("nd,de,ne->n", deviations, excess, deviations) - np.trace(excess @ cov_x)
    return torch.from_numpy(influence).to(x.dtype)


def mean_shift(x, y):
    """||mu_x - mu_y||^2: the part of :func:`frechet_distance` that comes from the two means alone; the rest
    comes from the spreads (covariances). Shown items pulled towards one central image raise this part."""
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    return float((x.double().mean(dim=0) - y.double().mean(dim=0)).square().sum())


def _target_pairs(inputs):
    """``(shown items of users with a target, those users' target items)``: the two sets FD compares."""
    users = torch.unique(inputs.target[:, 0])
    return inputs.shown[users].flatten(0, 1), inputs.catalog[inputs.target[:, 1]]


def target_fd(inputs):
    """FD between the shown items of users with a target and those users' target items."""
    return frechet_distance(*_target_pairs(inputs))


def target_fd_mean_shift(inputs):
    """The means' part (:func:`mean_shift`) of :func:`target_fd`."""
    return mean_shift(*_target_pairs(inputs))


def target_fd_floor(inputs, seed):
    """FD between two random halves of the target items: what sampling noise alone gives at this size."""
    targets = inputs.catalog[inputs.target[:, 1]]
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    half = len(targets) // 2
    return frechet_distance(targets[order[:half]], targets[order[half : 2 * half]])


def catalog_fd(inputs):
    """FD between all shown items and the uniform catalog of items with content."""
    return frechet_distance(inputs.shown.flatten(0, 1), inputs.candidates)


class _GenerativeMetric(AbstractMetric):
    metric_type = EvaluatorType.RANKING
    metric_need = ["gen.shown", "gen.catalog", "gen.has_content", "gen.target"]

    def __init__(self, config):
        super().__init__(config)
        self.seed = config["seed"]
        # Metrics built from a plain dict (tests, scripts) may leave it out; a Config has evaluation.yaml's.
        self.block_size = config["eval_block_size"] if "eval_block_size" in config else DEFAULT_BLOCK_SIZE
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"config key 'eval_block_size' must be a positive int (elements per block), got {self.block_size!r}")

    inputs = staticmethod(ContentInputs.from_struct)

    def result(self, value):
        return {type(self).__name__.lower(): round(value, self.decimal_place)}

    def calculate_metric(self, dataobject):
        return self.result(self.value(self.inputs(dataobject)))


class TargetSim(_GenerativeMetric):
    value = staticmethod(target_sim)


class HistorySim(_GenerativeMetric):
    metric_need = _GenerativeMetric.metric_need + ["gen.history"]
    value = staticmethod(history_sim)


class PersonalLift(_GenerativeMetric):
    def __init__(self, config):
        super().__init__(config)
        self.n_samples = config["personal_lift_samples"]

    def lift(self, inputs, name="personallift"):
        """``{name, name_ci95_low, name_ci95_high}``: the mean lift and its 95% bootstrap interval over users,
        which says whether the lift is distinguishable from zero."""
        per_user = personal_lift_per_user(inputs, self.n_samples, self.seed, self.block_size)
        if len(per_user) < 2:
            return {name: 0.0}
        low, high = bootstrap_interval(per_user, seed=self.seed, block_size=self.block_size)
        return {name: round(per_user.mean().item(), self.decimal_place), f"{name}_ci95_low": round(low, self.decimal_place),
                f"{name}_ci95_high": round(high, self.decimal_place)}

    def calculate_metric(self, dataobject):
        return self.lift(self.inputs(dataobject))


class _CopyMetric(_GenerativeMetric):
    """A metric that tells copies of catalog items apart (``gen.code_share``): exact, near by image codes
    (``near_copy_code_share``) and near by cosine (``near_copy_threshold``)."""

    metric_need = _GenerativeMetric.metric_need + ["gen.code_share"]

    def __init__(self, config):
        super().__init__(config)
        self.threshold = config["near_copy_threshold"]
        self.code_share = config["near_copy_code_share"]
        if self.code_share is not None and not 0 < self.code_share <= 1:
            raise ValueError(f"config key 'near_copy_code_share' = {self.code_share!r}: expected a share of image codes "
                             "in (0, 1], or ~ to count near copies by cosine only")

    def novel(self, inputs):
        """``(U, k)`` bool: the shown items that are no copy of any kind (:func:`novel_mask`)."""
        return novel_mask(inputs, self.threshold, self.code_share, self.block_size)


class CopyShare(_CopyMetric):
    """Share of the shown items that copy a catalog item: exactly (``copyshare``: all image codes equal; every
    catalog item a ranking model shows), by codes (``codecopyshare``: at least ``near_copy_code_share`` of them
    equal to one item's, which new catalog items almost never are) and by cosine (``nearcopyshare``: to the
    closest catalog item at least ``near_copy_threshold``, chosen on validation per evaluation space); each
    share counts the exact copies too."""

    def calculate_metric(self, dataobject):
        inputs = self.inputs(dataobject)
        share = lambda copies: round(copies.double().mean().item(), self.decimal_place)
        result = {"copyshare": share(inputs.copied)}
        if self.code_share is not None:
            result["codecopyshare"] = share(~novel_mask(inputs, code_share=self.code_share))
        if self.threshold is not None:
            result["nearcopyshare"] = share(~novel_mask(inputs, self.threshold, block_size=self.block_size))
        return result


class NovelTargetSim(_CopyMetric, PersonalLift):
    """TargetSim and PersonalLift over the novel shown items alone (no copy of any kind that
    :class:`CopyShare` counts), each user through the mean of their novel items; ``novelusers`` is the share
    of users with at least one."""

    def calculate_metric(self, dataobject):
        inputs = self.inputs(dataobject)
        novel = self.novel(inputs)
        result = {"novelusers": round(novel.any(dim=1).double().mean().item(), self.decimal_place)}
        if not novel.any():
            return result  # nothing novel to score (every item a ranking model shows is a catalog item)
        subset = novel_inputs(inputs, novel)
        return {**result, "noveltargetsim": round(target_sim(subset), self.decimal_place),
                **self.lift(subset, "novelpersonallift")}


class _GenTopkMetric(_GenerativeMetric):
    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]

    def calculate_metric(self, dataobject):
        inputs = self.inputs(dataobject)
        ranks = target_ranks(inputs, self.block_size)
        name = type(self).__name__.lower()
        users = inputs.target[:, 0]
        return {
            f"{name}@{k}": round(per_user_mean(self.score(ranks, k).mean(dim=1), users, inputs.n_users).mean().item(), self.decimal_place)
            for k in self.topk
        }


class GenRecall(_GenTopkMetric):
    @staticmethod
    def score(ranks, k):
        return (ranks <= k).double()


class GenNDCG(_GenTopkMetric):
    @staticmethod
    def score(ranks, k):
        return (ranks <= k).double() / torch.log2(ranks.double() + 1)


class Novelty(_GenerativeMetric):
    def value(self, inputs):
        return novelty(inputs, self.block_size)


class Diversity(_GenerativeMetric):
    value = staticmethod(diversity)


class FD(_GenerativeMetric):
    """Fréchet distance between the shown items and the ground-truth items of the same users (the
    distribution users actually move to); ``fd_floor`` is the FD between two random halves of those
    targets, the estimator's floor at this many users; ``fd_mean`` is the part of ``fd`` that the shift
    between the two means makes (the rest is the spreads'): a generator whose images all lean towards one
    central image has most of its FD there."""

    smaller = True

    def calculate_metric(self, dataobject):
        inputs = self.inputs(dataobject)
        return {"fd": round(target_fd(inputs), self.decimal_place),
                "fd_floor": round(target_fd_floor(inputs, self.seed), self.decimal_place),
                "fd_mean": round(target_fd_mean_shift(inputs), self.decimal_place)}


class CatalogFD(_GenerativeMetric):
    """Fréchet distance between the shown items and the uniform catalog (items with content): how much
    the shown items look like catalog items at all, whoever they are shown to."""

    smaller = True
    value = staticmethod(catalog_fd)


GENERATIVE_METRICS = (TargetSim, HistorySim, PersonalLift, GenRecall, GenNDCG, Novelty, Diversity, FD, CatalogFD, CopyShare,
                      NovelTargetSim)
