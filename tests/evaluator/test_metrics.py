"""Generative metrics on hand-made embeddings whose answers are worked out by hand."""

import math

import pytest
import torch
from recbole.evaluator import Evaluator
from recbole.evaluator.collector import DataStruct

from recbole_gen.evaluator import metrics
from recbole_gen.evaluator.register import register_generative_metrics

E = torch.eye(4)
# Catalog: row 0 padding (must never count), items 1..4 are the basis vectors e0..e3.
CATALOG = torch.cat([torch.full((1, 4), 5.0), E])


def test_target_sim():
    gen = torch.stack([E[0], E[0] + E[1]])  # user 0 shows item 1; user 1 shows (e0+e1)/sqrt2
    target = torch.tensor([1, 2])  # targets: e0, e1
    # user 0: sim(e0, e0) = 1; user 1: sim((e0+e1)/sqrt2, e1) = 1/sqrt2
    assert metrics.target_sim(gen, CATALOG, target) == pytest.approx((1 + 1 / math.sqrt(2)) / 2)


def test_history_sim_ignores_padding_and_empty_histories():
    gen = torch.stack([E[0], E[2]])
    history = torch.tensor([[0, 1, 2], [0, 0, 0]])  # user 1 has no history
    # user 0: mean(sim(e0, e0), sim(e0, e1)) = 0.5; user 1 excluded
    assert metrics.history_sim(gen, CATALOG, history) == pytest.approx(0.5)


def test_personal_lift_against_all_other_users():
    gen = torch.stack([E[0], E[1], E[2]])
    target = torch.tensor([1, 2, 1])  # e0, e1, e0
    # u0: 1 - mean(sim(e1,e0), sim(e2,e0)) = 1; u1: 1 - 0 = 1; u2: sim(e2,e0)=0 - mean(sim(e0,e0)=1, sim(e1,e0)=0) = -0.5
    assert metrics.personal_lift(gen, CATALOG, target, n_samples=10, seed=0) == pytest.approx((1 + 1 - 0.5) / 3)


def test_personal_lift_samples_are_seeded_and_exclude_the_user():
    generator = torch.Generator().manual_seed(1)
    gen, target = torch.randn(50, 4, generator=generator), torch.randint(1, 5, (50,), generator=generator)
    first = metrics.personal_lift(gen, CATALOG, target, n_samples=5, seed=7)
    assert first == metrics.personal_lift(gen, CATALOG, target, n_samples=5, seed=7)
    assert first != metrics.personal_lift(gen, CATALOG, target, n_samples=5, seed=8)
    # Identical shown items for everyone: nothing is personal, whatever the sample.
    same = torch.ones(50, 4)
    assert metrics.personal_lift(same, CATALOG, target, n_samples=5, seed=7) == pytest.approx(0.0, abs=1e-12)


def test_target_rank_and_gen_topk():
    gen = torch.tensor([[1.0, 0.5, 0.1, 0.0]])
    # Similarities to items 1..4 (e0..e3) order them 1, 2, 3, 4; the padding row (closest of all) is skipped.
    assert metrics.target_ranks(gen, CATALOG, torch.tensor([3])).tolist() == [3]
    struct = DataStruct()
    struct.set("gen.emb", gen)
    struct.set("gen.catalog", CATALOG)
    struct.set("gen.target", torch.tensor([3]))
    config = {"metric_decimal_place": 6, "topk": [2, 3]}
    assert metrics.GenRecall(config).calculate_metric(struct) == {"genrecall@2": 0.0, "genrecall@3": 1.0}
    assert metrics.GenNDCG(config).calculate_metric(struct) == {"genndcg@2": 0.0, "genndcg@3": round(1 / math.log2(4), 6)}


def test_novelty():
    assert metrics.novelty(torch.stack([E[3]]), CATALOG) == pytest.approx(0.0)
    # (e0+e1)/sqrt2 is 1/sqrt2 from its nearest items
    assert metrics.novelty(torch.stack([E[0] + E[1]]), CATALOG) == pytest.approx(1 - 1 / math.sqrt(2))


def test_diversity_on_known_angles():
    gen = torch.stack([E[0], E[1], E[0]])
    # pairs: (e0,e1) 1, (e0,e0) 0, (e1,e0) 1 -> mean 2/3
    assert metrics.diversity(gen) == pytest.approx(2 / 3)
    assert metrics.diversity(gen[:1]) == 0.0


def test_frechet_distance():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert metrics.frechet_distance(x, x + shift) == pytest.approx(1 + 4 + 0.25, abs=1e-6)


def test_registered_metrics_run_in_recboles_evaluator():
    register_generative_metrics()
    config = {"metrics": ["TargetSim", "GenRecall", "FD", "Recall"], "topk": [1], "metric_decimal_place": 4,
              "seed": 0, "personal_lift_samples": 2}
    struct = DataStruct()
    struct.set("gen.emb", torch.stack([E[0], E[1]]))
    struct.set("gen.catalog", CATALOG)
    struct.set("gen.target", torch.tensor([1, 3]))
    struct.set("rec.topk", torch.tensor([[1, 1], [0, 1]]))  # top-1 hit for user 0 only; one positive each
    result = Evaluator(config).evaluate(struct)
    assert result["targetsim"] == 0.5  # 1 and 0
    assert result["genrecall@1"] == 0.5
    assert result["recall@1"] == 0.5
    assert result["fd"] >= 0


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
