"""GRPO and DPO objectives on hand-made numbers."""

import math

import pytest
import torch

from recbole_gen.rl.objectives import code_kl, dpo_loss, group_advantages, grpo_loss


def test_advantages_are_normalised_within_each_group_and_flat_groups_are_skipped():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 4.0]])
    advantages, spread = group_advantages(rewards)
    assert spread.tolist() == [True, False, True]
    assert advantages[1].tolist() == [0, 0, 0, 0]
    for row in (0, 2):
        assert advantages[row].mean().item() == pytest.approx(0, abs=1e-6)
        assert advantages[row].std(unbiased=False).item() == pytest.approx(1, abs=1e-5)
    # group 2: mean 1, sd sqrt(3): the outlier gets 3/sqrt3, the others -1/sqrt3
    assert advantages[2].tolist() == pytest.approx([-1 / math.sqrt(3)] * 3 + [math.sqrt(3)], abs=1e-5)
    # a group's advantages do not depend on the other groups' rewards
    assert torch.equal(group_advantages(rewards[:1])[0], advantages[:1])


def test_batch_scaled_advantages_keep_each_groups_spread_and_flat_groups_skipped():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 0.4]])
    advantages, spread = group_advantages(rewards, scale="batch")
    assert spread.tolist() == [True, False, True]
    assert advantages[1].tolist() == [0, 0, 0, 0]
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    scale = centred[[0, 2]].std(unbiased=False)
    assert advantages.flatten().tolist() == pytest.approx((centred / scale).flatten().tolist(), abs=1e-6)
    # per group the nearly flat group 2 would be pushed as hard as group 0; scaled by the batch, 10x less
    assert group_advantages(rewards)[0][2].abs().max() > group_advantages(rewards)[0][0].abs().max()
    assert advantages[2].abs().max().item() == pytest.approx(advantages[0].abs().max().item() / 10, rel=1e-5)


def test_a_batch_without_spread_has_zero_advantages_and_no_warning(recwarn):
    advantages, spread = group_advantages(torch.ones(2, 3), scale="batch")
    assert not spread.any() and advantages.tolist() == [[0.0] * 3] * 2
    assert not recwarn.list


def test_an_unknown_advantage_scale_names_the_key():
    with pytest.raises(ValueError, match="rl_advantage_scale.*'group', 'batch'"):
        group_advantages(torch.ones(2, 3), scale="global")


def test_dpo_loss_has_its_known_value():
    # policy margins: chosen -1 vs reference -2 (+1), rejected -3 vs reference -2 (-1): beta * 2 = 1
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)))
    equal = dpo_loss(torch.tensor([-2.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    assert equal.item() == pytest.approx(math.log(2))


def test_kl_is_zero_at_the_reference_and_matches_the_definition():
    logits = torch.tensor([[[0.0, 1.0, 2.0]]])
    assert code_kl(logits, logits).item() == pytest.approx(0, abs=1e-7)
    p, q = logits.softmax(-1), torch.zeros(1, 1, 3).softmax(-1)
    assert code_kl(logits, torch.zeros(1, 1, 3)).item() == pytest.approx((p * (p / q).log()).sum().item(), abs=1e-6)


def test_grpo_gradient_raises_the_log_probability_of_better_samples_only_in_groups_with_spread():
    logits = torch.zeros(4, 1, 2, requires_grad=True)
    codes = torch.tensor([[0], [1], [0], [1]])
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    spread = torch.tensor([True, True, False, False])
    loss, kl = grpo_loss(logits, logits.detach(), codes, advantages, spread, kl_weight=0.0)
    loss.backward()
    assert kl.item() == pytest.approx(0, abs=1e-7)
    assert logits.grad[0, 0, 0] < 0 and logits.grad[1, 0, 1] > 0  # descent raises code 0 in row 0, lowers code 1 in row 1
    assert torch.equal(logits.grad[2:], torch.zeros(2, 1, 2))  # the flat group gives nothing


def test_the_entropy_bonus_subtracts_the_mean_entropy_and_pushes_a_peaked_policy_toward_uniform():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]], requires_grad=True)  # one sequence, two codes
    codes, advantages, spread = torch.tensor([[0, 1]]), torch.zeros(1), torch.tensor([False])
    plain, _ = grpo_loss(logits, logits.detach(), codes, advantages, spread, kl_weight=0.0)
    bonus, _ = grpo_loss(logits, logits.detach(), codes, advantages, spread, kl_weight=0.0, entropy_weight=0.5)
    p = torch.tensor([2.0, 0.0]).softmax(-1)
    entropies = [-(p * p.log()).sum().item(), torch.log(torch.tensor(2.0)).item()]
    assert bonus.item() == pytest.approx(plain.item() - 0.5 * sum(entropies) / 2, abs=1e-6)
    bonus.backward()
    assert logits.grad[0, 0, 0] > 0 > logits.grad[0, 0, 1]  # descent lowers the peaked code's logit
    assert torch.allclose(logits.grad[0, 1], torch.zeros(2), atol=1e-7)  # uniform already: entropy at its maximum
