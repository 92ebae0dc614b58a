"""benchmarks/paired.py: TargetSim differences between two points, paired user by user."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import paired  # noqa: E402

TARGETS = torch.stack([torch.arange(40), torch.arange(40) % 7 + 1], dim=1)  # (user row, item) pairs
BASE = torch.linspace(-0.2, 0.3, 40, dtype=torch.double)  # users differ far more than the points do


def test_a_small_consistent_lead_is_resolved_and_a_noisy_one_is_not():
    consistent = BASE + 0.02 + 0.001 * torch.cos(torch.arange(40.0, dtype=torch.double))
    mean, low, high = paired.paired_difference((TARGETS, consistent), (TARGETS, BASE))
    assert mean == pytest.approx(consistent.mean().item() - BASE.mean().item()) and 0 < low < mean < high < 0.03
    noisy = BASE + 0.02 + 0.3 * torch.tensor([1.0, -1.0] * 20, dtype=torch.double)
    mean, low, high = paired.paired_difference((TARGETS, noisy), (TARGETS, BASE))
    assert low < 0 < mean < high


def test_points_scored_on_other_users_or_targets_are_not_paired():
    assert paired.paired_difference((TARGETS.flip(0), BASE), (TARGETS, BASE)) is None
    assert paired.paired_difference((TARGETS[:-1], BASE[:-1]), (TARGETS, BASE)) is None


def test_seeds_are_averaged_within_each_user_and_must_share_the_targets():
    targets, sims = paired.seed_mean([(TARGETS, BASE), (TARGETS, BASE + 0.1)], "point")
    assert torch.equal(targets, TARGETS) and torch.allclose(sims, BASE + 0.05)
    with pytest.raises(RuntimeError, match="point: the seeds' evaluations hold different users or targets"):
        paired.seed_mean([(TARGETS, BASE), (TARGETS.flip(0), BASE)], "point")
