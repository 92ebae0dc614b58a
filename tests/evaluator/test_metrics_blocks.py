"""Blocked metrics equal their straightforward (users x users, users x items) computation for any block size,
never build an intermediate larger than a block, and RandomItem scores need no user x item table."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.evaluator.collector import DataStruct

from recbole_gen.config import Config
from recbole_gen.evaluator import metrics
from recbole_gen.model.sequential_recommender import randomitem
from recbole_gen.quick_start import build_model
from recbole_gen.utils import get_model

# 1 (one element per tile), sizes that divide none of the counts, and one larger than every matrix.
BLOCK_SIZES = [1, 5, 7, 64, 333, 10**9]


def random_inputs(seed, n_users=23, k=3, n_items=37, dim=8):
    """Random shown items and catalog; items 5..8 have no content; users 0..2 have no target; user 3 two."""
    generator = torch.Generator().manual_seed(seed)
    has_content = torch.ones(n_items + 1, dtype=torch.bool)
    has_content[5:9] = False
    users = torch.arange(3, n_users)
    target = torch.stack([users, torch.randint(1, n_items + 1, (len(users),), generator=generator)], dim=1)
    target = torch.cat([target, torch.tensor([[3, 1]])])
    return metrics.ContentInputs.build(torch.randn(n_users, k, dim, generator=generator),
                                       torch.randn(n_items + 1, dim, generator=generator), has_content, target)


# -- the unblocked computations, as the code before blocking wrote them -----------------------------------

def reference_personal_lift_per_user(inputs, n_samples, seed):
    """recbole_gen's personal_lift_per_user before blocking (users x users similarities), verbatim."""
    targets, counts = inputs.user_means(inputs.target)
    users = torch.nonzero(counts > 0).flatten()
    n_users = inputs.n_users
    if n_users < 2 or len(users) == 0:
        return torch.zeros(0, dtype=torch.double)
    sims = targets[users] @ inputs.mean_shown.T  # sims[i, v] = sim(g_v, t_{users[i]})
    own = sims.gather(1, users.unsqueeze(1)).squeeze(1)
    if n_samples >= n_users - 1:
        others = (sims.sum(dim=1) - own) / (n_users - 1)
    else:
        generator = torch.Generator().manual_seed(seed)
        # Draw from the n_users - 1 other users: offsets 1..n_users-1 from u, modulo n_users.
        offsets = torch.stack([torch.randperm(n_users - 1, generator=generator)[:n_samples] + 1 for _ in range(len(users))])
        others = sims.gather(1, (users.unsqueeze(1) + offsets) % n_users).mean(dim=1)
    return own - others


def reference_bootstrap_interval(values, level=0.95, n_resamples=2000, seed=0):
    """recbole_gen's bootstrap_interval before blocking (a resamples x users index), verbatim."""
    generator = torch.Generator().manual_seed(seed)
    values = values.double()
    index = torch.randint(len(values), (n_resamples, len(values)), generator=generator)
    means = values[index].mean(dim=1)
    tail = (1 - level) / 2
    return means.quantile(tail).item(), means.quantile(1 - tail).item()


def reference_ranks(inputs):
    """All target pairs x shown items x catalog similarities at once."""
    shown = inputs.shown[inputs.target[:, 0]]
    target_sims = (shown * inputs.catalog[inputs.target[:, 1]].unsqueeze(1)).sum(dim=-1)
    return 1 + (shown @ inputs.candidates.T > target_sims.unsqueeze(-1) + metrics.TIE_TOLERANCE).sum(dim=-1)


def reference_nearest(inputs):
    return (inputs.shown @ inputs.candidates.T).max(dim=-1).values


def reference_diversity(inputs):
    """Every pair of distinct users and every pair of their shown items."""
    sims = torch.einsum("ujd,vld->uv", inputs.shown, inputs.shown) / inputs.shown.shape[1] ** 2
    n = inputs.n_users
    return (1 - (sims.sum() - sims.diagonal().sum()) / (n * (n - 1))).item()


# -- blocked == unblocked ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_target_ranks_equal_the_unblocked_ranks_exactly(k, block_size):
    inputs = random_inputs(seed=k, k=k)
    expected = reference_ranks(inputs)
    assert expected.max() > 1  # the data rank targets below the top: the counting matters
    assert torch.equal(metrics.target_ranks(inputs, block_size), expected)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_nearest_catalog_sim_and_novelty_equal_the_unblocked_ones(k, block_size):
    inputs = random_inputs(seed=10 + k, k=k)
    nearest = reference_nearest(inputs)
    assert torch.allclose(metrics.nearest_catalog_sim(inputs, block_size), nearest, rtol=0, atol=1e-13)
    assert metrics.novelty(inputs, block_size) == pytest.approx((1 - nearest).clamp(min=0).mean().item(), abs=1e-13)
    threshold = nearest.median().item() + 1e-6  # away from every value: a rounding difference cannot flip it
    assert torch.equal(metrics.novel_mask(inputs, threshold, block_size=block_size), ~inputs.copied & (nearest < threshold))


@pytest.mark.parametrize("n_samples", [4, 50])  # a sample of the others; all of them (23 users)
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_personal_lift_reproduces_the_unblocked_code_and_its_draws(n_samples, block_size):
    inputs = random_inputs(seed=20)
    old = reference_personal_lift_per_user(inputs, n_samples, seed=7)
    new = metrics.personal_lift_per_user(inputs, n_samples, seed=7, block_size=block_size)
    assert torch.allclose(new, old, rtol=0, atol=1e-13)
    assert new.mean().item() == pytest.approx(old.mean().item(), abs=1e-14)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_bootstrap_interval_reproduces_the_unblocked_draws(block_size):
    values = torch.randn(41, generator=torch.Generator().manual_seed(3))
    assert metrics.bootstrap_interval(values, n_resamples=300, seed=5, block_size=block_size) == pytest.approx(
        reference_bootstrap_interval(values, n_resamples=300, seed=5), abs=1e-14)


def test_personal_lift_metric_reproduces_the_old_published_value():
    inputs = random_inputs(seed=30, n_users=60)
    config = {"seed": 2020, "metric_decimal_place": 12, "personal_lift_samples": 10, "eval_block_size": 100}
    old = reference_personal_lift_per_user(inputs, 10, seed=2020)
    low, high = reference_bootstrap_interval(old, seed=2020)
    result = metrics.PersonalLift(config).lift(inputs)
    assert result["personallift"] == pytest.approx(old.mean().item(), abs=1e-11)
    assert (result["personallift_ci95_low"], result["personallift_ci95_high"]) == pytest.approx((low, high), abs=1e-11)


def test_diversity_is_the_mean_over_all_pairs_of_users_without_a_pair_matrix():
    for k in (1, 3):
        inputs = random_inputs(seed=40 + k, k=k)
        assert metrics.diversity(inputs) == pytest.approx(reference_diversity(inputs), abs=1e-13)


def test_a_shown_target_or_a_duplicate_of_it_is_never_counted_as_closer():
    """A user shown their own target ranks it first even where a matrix product and a row-wise sum round
    the same cosine differently, and an item with the target's embedding is a tie, not a closer item."""
    generator = torch.Generator().manual_seed(50)
    catalog = torch.randn(201, 16, generator=generator)
    catalog[200] = catalog[100]  # a duplicate of item 100
    target = torch.cat([torch.arange(1, 101), torch.tensor([100])])
    inputs = metrics.ContentInputs.build(catalog[target], catalog, torch.ones(201, dtype=torch.bool),
                                         torch.stack([torch.arange(len(target)), target], dim=1))
    for block_size in (1, 64, 10**9):
        assert (metrics.target_ranks(inputs, block_size) == 1).all()


# -- what a block bounds -----------------------------------------------------------------------------------

@pytest.fixture
def matmul_sizes(monkeypatch):
    """Every ``@`` in the metrics: (result elements, elements of each operand it was given that is not a view)."""
    sizes = []
    matmul = torch.Tensor.__matmul__

    def counting(a, b):
        result = matmul(a, b)
        sizes.append((result.numel(), [t.numel() for t in (a, b) if t._base is None]))
        return result

    monkeypatch.setattr(torch.Tensor, "__matmul__", counting)
    return sizes


@pytest.mark.parametrize("block_size", [3, 7, 64, 333])
def test_no_similarity_tile_or_gathered_block_exceeds_the_block(matmul_sizes, block_size):
    inputs = random_inputs(seed=60, n_users=31, k=3, n_items=53, dim=2)
    n_candidates = int(inputs.has_content.sum())
    for function, cells in ((metrics.nearest_catalog_sim, inputs.n_users * 3 * n_candidates),
                            (metrics.target_ranks, len(inputs.target) * 3 * n_candidates)):
        matmul_sizes.clear()
        function(inputs, block_size)
        # The catalog (a view) aside, nothing a product reads or writes is larger than a block, or than one
        # user's k shown items (3 x d=2) where a block is smaller.
        assert max(max([result, *gathered]) for result, gathered in matmul_sizes) <= max(block_size, 3 * 2)
        assert sum(result for result, _ in matmul_sizes) == cells  # every similarity computed once
    matmul_sizes.clear()
    metrics.personal_lift_per_user(inputs, n_samples=4, seed=0, block_size=block_size)
    per_user = 4 * inputs.shown.shape[2]  # a user's sampled means: the smallest block the lift gathers
    assert max(max([result, *gathered]) for result, gathered in matmul_sizes) <= max(block_size, per_user)
    users_with_targets = len(torch.unique(inputs.target[:, 0]))
    assert len(matmul_sizes) == math.ceil(users_with_targets / max(1, block_size // per_user))


def test_a_block_of_one_computes_one_similarity_at_a_time(matmul_sizes):
    inputs = random_inputs(seed=61, n_users=5, k=1, n_items=9)
    metrics.nearest_catalog_sim(inputs, block_size=1)
    assert [result for result, _ in matmul_sizes] == [1] * (5 * int(inputs.has_content.sum()))


def _struct(inputs):
    data = DataStruct()
    for key, value in {"gen.shown": inputs.shown, "gen.catalog": inputs.catalog, "gen.has_content": inputs.has_content,
                       "gen.target": inputs.target, "gen.code_share": inputs.code_share}.items():
        data.set(key, value)
    return data


def test_metric_classes_compute_in_the_configured_blocks(matmul_sizes):
    inputs = random_inputs(seed=70)
    config = {"seed": 0, "metric_decimal_place": 12, "topk": [5], "personal_lift_samples": 4, "near_copy_threshold": 0.5,
              "near_copy_code_share": 0.5}
    results = {}
    for block_size in (5, 10**9):
        matmul_sizes.clear()
        settings = {**config, "eval_block_size": block_size}
        results[block_size] = {**metrics.GenRecall(settings).calculate_metric(_struct(inputs)),
                               **metrics.Novelty(settings).calculate_metric(_struct(inputs)),
                               **metrics.CopyShare(settings).calculate_metric(_struct(inputs)),
                               **metrics.PersonalLift(settings).calculate_metric(_struct(inputs))}
        largest = max(max([result, *gathered]) for result, gathered in matmul_sizes)
        assert largest <= 5 * 8 if block_size == 5 else largest > 5 * 8  # one user's sample (4 x d=8) at least
    assert results[5] == pytest.approx(results[10**9], abs=1e-11)


@pytest.mark.parametrize("value", [0, -3, 2.5, "1024", True])
def test_a_bad_block_size_is_refused_with_the_key(value):
    with pytest.raises(ValueError, match="config key 'eval_block_size' must be a positive int"):
        metrics.Novelty({"seed": 0, "metric_decimal_place": 4, "eval_block_size": value})


def test_the_functions_default_block_size_is_evaluation_yamls():
    # Read from the checkout's file: an editable install may map recbole_gen.properties to another one.
    with open(Path(__file__).parents[2] / "properties" / "evaluation.yaml", encoding="utf-8") as f:
        assert yaml.safe_load(f)["eval_block_size"] == metrics.DEFAULT_BLOCK_SIZE


# -- RandomItem ---------------------------------------------------------------------------------------------

def _random_item(fast_config, seed):
    config = Config(model="RandomItem", dataset="tiny", config_dict={**fast_config, "seed": seed})
    train_data, _, _ = data_preparation(config, create_dataset(config))
    return config, train_data._dataset, get_model("RandomItem")(config, train_data._dataset)


def _scores(model, users):
    return model.full_sort_predict(Interaction({model.USER_ID: torch.tensor(users)}))


def test_random_item_scores_depend_on_the_user_not_the_batch_and_are_seeded(fast_config, monkeypatch):
    _, dataset, model = _random_item(fast_config, seed=3)
    everyone = _scores(model, list(range(1, dataset.user_num)))
    assert everyone.shape == (dataset.user_num - 1, dataset.item_num)
    assert ((everyone >= 0) & (everyone < 1)).all()
    assert torch.equal(_scores(model, [7, 2, 7]), everyone[[6, 1, 6]])  # any batch, order or repetition
    assert torch.equal(_scores(model, [2]), everyone[[1]])
    monkeypatch.setattr(randomitem, "HASHED_ELEMENTS", 2 * dataset.item_num + 1)  # hashed two users at a time
    assert torch.equal(_scores(model, list(range(1, dataset.user_num))), everyone)
    assert len(torch.unique(everyone.argmax(dim=1))) > 1  # users get different random rankings
    assert list(model.buffers()) == [] and model.state_dict() == {}  # no user x item table, stored or saved
    assert torch.equal(_scores(_random_item(fast_config, seed=3)[2], [2, 5]), everyone[[1, 4]])
    assert not torch.equal(_scores(_random_item(fast_config, seed=4)[2], [2, 5]), everyone[[1, 4]])


def test_an_old_random_item_checkpoint_with_its_score_table_still_loads(fast_config, caplog):
    config, dataset, model = _random_item(fast_config, seed=3)
    old_table = torch.rand(dataset.user_num, dataset.item_num)
    checkpoint = {"state_dict": {"scores": old_table}, "other_parameter": None, "config": {"external": {}}}
    loaded = build_model(config, dataset, checkpoint)
    assert "ignored" in caplog.text and "'scores'" in caplog.text
    assert torch.equal(_scores(loaded, [2, 5]), _scores(model, [2, 5]))
