"""Generative metrics on hand-made embeddings whose answers are worked out by hand."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct

from recbole_gen.evaluator import metrics
from recbole_gen.evaluator.register import register_generative_metrics

E = torch.eye(5)
# Catalog: row 0 padding (must never count), items 1..4 are the basis vectors e0..e3, item 5 a grey
# placeholder (no content) whose embedding is e4.
CATALOG = torch.cat([torch.full((1, 5), 5.0), E])
HAS_CONTENT = torch.tensor([False, True, True, True, True, False])


def inputs(shown, target, history=None, has_content=HAS_CONTENT):
    """``target``: one item per user (a list), or (user, item) pairs (a 2-column tensor)."""
    target = torch.as_tensor(target)
    if target.dim() == 1:
        target = torch.stack([torch.arange(len(target)), target], dim=1)
    return metrics.ContentInputs.build(torch.as_tensor(shown, dtype=torch.float), CATALOG, has_content, target, history)


def test_target_sim():
    shown = torch.stack([E[0], E[0] + E[1]])  # user 0 shows e0; user 1 shows (e0+e1)/sqrt2
    # targets e0, e1: user 0: sim 1; user 1: 1/sqrt2
    assert metrics.target_sim(inputs(shown, [1, 2])) == pytest.approx((1 + 1 / math.sqrt(2)) / 2)


def test_target_sim_averages_over_samples_and_targets_and_skips_placeholders():
    # user 0 shows two samples, e0 and e1; user 1 one sample (repeated), e2
    shown = torch.stack([torch.stack([E[0], E[1]]), torch.stack([E[2], E[2]])])
    # user 0's targets: items 1 (e0) and 3 (e2); user 1's only target is the placeholder item 5
    target = torch.tensor([[0, 1], [0, 3], [1, 5]])
    # user 0: mean over samples and targets of [1, 0; 0, 0] = 0.25; user 1 has no target with content
    assert metrics.target_sim(inputs(shown, target)) == pytest.approx(0.25)


def test_history_sim_ignores_padding_placeholders_and_empty_histories():
    shown = torch.stack([E[0], E[2]])
    history = torch.tensor([[0, 1], [0, 2], [0, 5]])  # user 0: items 1, 2 and the placeholder; user 1: none
    # user 0: mean(sim(e0, e0), sim(e0, e1)) = 0.5; user 1 excluded
    assert metrics.history_sim(inputs(shown, [1, 1], history)) == pytest.approx(0.5)


def test_personal_lift_against_all_other_users():
    shown = torch.stack([E[0], E[1], E[2]])
    # u0: 1 - mean(sim(e1,e0), sim(e2,e0)) = 1; u1: 1 - 0 = 1; u2: sim(e2,e0)=0 - mean(1, 0) = -0.5
    per_user = metrics.personal_lift_per_user(inputs(shown, [1, 2, 1]), n_samples=10, seed=0)
    assert per_user.tolist() == pytest.approx([1, 1, -0.5])


def test_personal_lift_samples_are_seeded_and_exclude_the_user():
    generator = torch.Generator().manual_seed(1)
    shown, target = torch.randn(50, 5, generator=generator), torch.randint(1, 5, (50,), generator=generator)
    lift = lambda shown, seed: metrics.personal_lift_per_user(inputs(shown, target), n_samples=5, seed=seed).mean().item()
    assert lift(shown, 7) == lift(shown, 7)
    assert lift(shown, 7) != lift(shown, 8)
    # Identical shown items for everyone: nothing is personal, whatever the sample.
    assert lift(torch.ones(50, 5), 7) == pytest.approx(0.0, abs=1e-12)


def test_target_rank_and_gen_topk():
    shown = torch.tensor([[1.0, 0.5, 0.1, 0.0, 0.9]])
    # Similarities to items 1..4 (e0..e3) order them 1, 2, 3, 4; the padding row and the placeholder (e4,
    # closer than items 2..4) are not candidates.
    assert metrics.target_ranks(inputs(shown, [3])).tolist() == [[3]]
    struct = DataStruct()
    struct.set("gen.shown", shown.unsqueeze(1))
    struct.set("gen.catalog", CATALOG)
    struct.set("gen.has_content", HAS_CONTENT)
    struct.set("gen.target", torch.tensor([[0, 3]]))
    config = {"metric_decimal_place": 6, "topk": [2, 3], "seed": 0}
    assert metrics.GenRecall(config).calculate_metric(struct) == {"genrecall@2": 0.0, "genrecall@3": 1.0}
    assert metrics.GenNDCG(config).calculate_metric(struct) == {"genndcg@2": 0.0, "genndcg@3": round(1 / math.log2(4), 6)}


def test_gen_recall_averages_samples_then_targets_then_users():
    # user 0: samples e0 and e1, targets items 1 and 2: ranks [[1, 2], [2, 1]] -> recall@1 = 0.5
    # user 1: one sample e3, target item 4: rank 1 -> 1.0
    shown = torch.stack([torch.stack([E[0], E[1]]), torch.stack([E[3], E[3]])])
    batch = inputs(shown, torch.tensor([[0, 1], [0, 2], [1, 4]]))
    ranks = metrics.target_ranks(batch)
    per_user = metrics.per_user_mean(metrics.GenRecall.score(ranks, 1).mean(dim=1), batch.target[:, 0], batch.n_users)
    assert per_user.tolist() == [0.5, 1.0]


def test_novelty():
    assert metrics.novelty(inputs(torch.stack([E[3]]), [1])) == pytest.approx(0.0)
    # (e0+e1)/sqrt2 is 1/sqrt2 from its nearest items
    assert metrics.novelty(inputs(torch.stack([E[0] + E[1]]), [1])) == pytest.approx(1 - 1 / math.sqrt(2))
    # the placeholder is no catalog item: showing e4 is as novel as it gets
    assert metrics.novelty(inputs(torch.stack([E[4]]), [1])) == pytest.approx(1.0)


def test_diversity_on_known_angles():
    shown = torch.stack([E[0], E[1], E[0]])
    # pairs: (e0,e1) 1, (e0,e0) 0, (e1,e0) 1 -> mean 2/3
    assert metrics.diversity(inputs(shown, [1, 1, 1])) == pytest.approx(2 / 3)
    assert metrics.diversity(inputs(shown[:1], [1])) == 0.0
    # with samples: user 0 shows e0 and e1, user 1 shows e0 twice: mean over sample pairs of 1 - sim = 0.5
    shown = torch.stack([torch.stack([E[0], E[1]]), torch.stack([E[0], E[0]])])
    assert metrics.diversity(inputs(shown, [1, 1])) == pytest.approx(0.5)


def test_frechet_distance_is_zero_for_equal_samples_and_exact_for_shifts():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert metrics.frechet_distance(x, x + shift) == pytest.approx(1 + 4 + 0.25, abs=1e-6)


def test_frechet_distance_matches_scipy_sqrtm_where_that_is_well_posed():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(500, 6, generator=generator, dtype=torch.float64)
    y = torch.randn(400, 6, generator=generator, dtype=torch.float64) * 1.5 + 0.3
    cov_x, cov_y = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
    expected = ((x.mean(0) - y.mean(0)) ** 2).sum().item() + np.trace(cov_x + cov_y - 2 * scipy.linalg.sqrtm(cov_x @ cov_y).real)
    assert metrics.frechet_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_stays_real_and_finite_with_fewer_rows_than_dimensions():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(20, 64, generator=generator, dtype=torch.float64)  # singular covariances
    y = torch.randn(30, 64, generator=generator, dtype=torch.float64)
    distance = metrics.frechet_distance(x, y)
    assert math.isfinite(distance) and distance > 0
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fds_mean_part_is_the_shift_of_the_means_and_not_the_spread():
    generator = torch.Generator().manual_seed(4)
    y = torch.randn(500, 6, generator=generator, dtype=torch.float64)
    shift = torch.tensor([0.3, -0.4, 0, 0, 0, 0], dtype=torch.float64)
    # A pure shift: FD is the shift's squared length, all of it in the means' part.
    assert metrics.frechet_distance(y + shift, y) == pytest.approx(0.25, abs=1e-9)
    assert metrics.mean_shift(y + shift, y) == pytest.approx(0.25, abs=1e-9)
    # A pure change of spread (same mean): FD grows, the means' part stays 0.
    centre = y.mean(dim=0)
    squeezed = centre + 0.2 * (y - centre)
    assert metrics.frechet_distance(squeezed, y) > 1.0
    assert metrics.mean_shift(squeezed, y) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(metrics.mean_shift(y[:1], y))  # as FD: no estimate from one row


def test_fd_influence_predicts_how_fd_changes_when_a_row_is_left_out():
    generator = torch.Generator().manual_seed(5)
    y = torch.randn(600, 4, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 0.5, 0.3, 0.2], dtype=torch.float64)
    x = torch.randn(300, 4, generator=generator, dtype=torch.float64) * torch.tensor([0.3, 0.6, 0.3, 0.4], dtype=torch.float64) + 0.2
    influence = metrics.fd_influence(x, y)
    full = metrics.frechet_distance(x, y)
    left_out = torch.tensor([metrics.frechet_distance(torch.cat([x[:i], x[i + 1 :]]), y) for i in range(len(x))], dtype=torch.float64)
    change = left_out - full
    assert change.abs().max() > 0.003  # rows do matter at this size
    assert (change - (-influence / (len(x) - 1))).abs().max() < 0.05 * change.abs().max()
    # A row far along y's widest direction, which x lacks, lowers FD: negative influence; one at x's mean shifted
    # away from y's mean raises it.
    probe = torch.cat([x, torch.tensor([[2.0, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 1.2]], dtype=torch.float64)])
    assert metrics.fd_influence(probe, y)[-2] < 0 < metrics.fd_influence(probe, y)[-1]
    with pytest.raises(ArithmeticError, match="set a ridge above 0"):
        metrics.fd_influence(x[:1].expand(5, -1), y)
    assert torch.isfinite(metrics.fd_influence(x[:1].expand(5, -1), y, ridge=0.1)).all()


def test_fd_compares_with_the_users_targets_and_reports_its_floor():
    generator = torch.Generator().manual_seed(3)
    n = 400
    target = torch.randint(1, 5, (n,), generator=generator)
    copy_of_target = E[target - 1]  # every user shown exactly their next item
    uniform = E[torch.randint(0, 4, (n,), generator=generator)]
    popular_target = torch.where(torch.rand(n, generator=generator) < 0.7, 1, target)  # users mostly move to item 1
    assert metrics.target_fd(inputs(E[popular_target - 1], popular_target)) == pytest.approx(0.0, abs=1e-9)
    assert metrics.target_fd(inputs(uniform, popular_target)) > 0.1  # showing the uniform catalog is not what users pick
    floor = metrics.target_fd_floor(inputs(copy_of_target, target), seed=0)
    assert 0 < floor < 0.1
    config = {"metric_decimal_place": 6, "seed": 0}
    struct = DataStruct()
    for key, value in (("gen.shown", uniform.unsqueeze(1)), ("gen.catalog", CATALOG), ("gen.has_content", HAS_CONTENT),
                       ("gen.target", torch.stack([torch.arange(n), popular_target], dim=1))):
        struct.set(key, value)
    result = metrics.FD(config).calculate_metric(struct)
    assert set(result) == {"fd", "fd_floor", "fd_mean"}
    assert 0 < result["fd_mean"] < result["fd"]
    # The uniform-catalog FD is where showing uniformly random items is best.
    assert metrics.CatalogFD(config).calculate_metric(struct)["catalogfd"] < 0.05


def test_registered_metrics_run_in_recboles_evaluator():
    register_generative_metrics()
    config = {"metrics": ["TargetSim", "GenRecall", "FD", "Recall"], "topk": [1], "metric_decimal_place": 4,
              "seed": 0, "personal_lift_samples": 2}
    struct = DataStruct()
    struct.set("gen.shown", torch.stack([E[0], E[1]]).unsqueeze(1))
    struct.set("gen.catalog", CATALOG)
    struct.set("gen.has_content", HAS_CONTENT)
    struct.set("gen.target", torch.tensor([[0, 1], [1, 3]]))
    struct.set("rec.topk", torch.tensor([[1, 1], [0, 1]]))  # top-1 hit for user 0 only; one positive each
    result = Evaluator(config).evaluate(struct)
    assert result["targetsim"] == 0.5  # 1 and 0
    assert result["genrecall@1"] == 0.5
    assert result["recall@1"] == 0.5
    assert result["fd"] >= 0
    assert math.isnan(result["fd_floor"])  # one target per half: no covariance to compare, and no crash


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_users():
    generator = torch.Generator().manual_seed(0)
    few = torch.randn(20, generator=generator) + 1.0
    many = torch.randn(2000, generator=generator) + 1.0
    low, high = metrics.bootstrap_interval(few)
    assert low < few.mean().item() < high
    low_many, high_many = metrics.bootstrap_interval(many)
    assert low_many < 1.0 < high_many  # covers the true mean
    assert high_many - low_many < (high - low) / 4
    assert metrics.bootstrap_interval(few) == (low, high)  # seeded
