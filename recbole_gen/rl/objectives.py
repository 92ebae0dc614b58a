"""Objectives of the RL stage on image codes: GRPO (group-relative policy optimisation) and DPO.

Every function takes logits ``(N, T, C)`` of N code sequences of T codes over a codebook of C, teacher-forced
on the sampled codes, so the policy's and the frozen reference's distributions are compared exactly at
every position (the codebook is small: the KL is summed over it instead of estimated from the sample).
"""

import torch
import torch.nn.functional as F

SPREAD_EPS = 1e-6
ADVANTAGE_SCALES = ("group", "batch")


def group_advantages(rewards, scale="group"):
    """``(advantages, spread)`` for rewards ``(B, G)`` of B groups of G samples: each reward minus its group's
    mean, over the standard deviation of its group (``scale="group"``, GRPO) or of the whole batch's centred
    rewards (``"batch"``); ``spread`` ``(B,)`` is False for groups whose rewards are all equal, whose
    advantages are 0 (they carry no preference and are left out of the loss).

    Per-group scaling gives a group whose samples barely differ the same push as one whose samples differ
    a lot, so a policy that has nearly settled on one sample per condition is pushed on to settle fully
    (Liu et al. 2025, "Understanding R1-Zero-Like Training", on its bias); scaling by the batch keeps
    each group's push proportional to how much its rewards differ (as REINFORCE++ does).
    """
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"config key 'rl_advantage_scale' = {scale!r}: expected one of {ADVANTAGE_SCALES}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, unbiased=False, keepdim=True)
    spread = std.squeeze(1) > SPREAD_EPS
    if scale == "batch":  # no group with spread: every advantage is 0 whatever the scale
        std = centred[spread].std(unbiased=False) if spread.any() else torch.tensor(1.0)
    return torch.where(spread.unsqueeze(1), centred / std.clamp(min=SPREAD_EPS), 0.0), spread


def code_log_probs(logits, codes):
    """``(N, T)`` log-probabilities of ``codes`` ``(N, T)`` under ``logits``."""
    return logits.float().log_softmax(dim=-1).gather(-1, codes.unsqueeze(-1)).squeeze(-1)


def code_kl(logits, reference_logits):
    """``(N, T)`` KL(policy || reference) of the code distributions at each position."""
    log_p, log_q = logits.float().log_softmax(dim=-1), reference_logits.float().log_softmax(dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def code_entropy(logits):
    """``(N, T)`` entropy of the code distribution at each position."""
    log_p = logits.float().log_softmax(dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def grpo_loss(logits, reference_logits, codes, advantages, spread, kl_weight, entropy_weight=0.0):
    """``(loss, kl)``: the GRPO objective for one on-policy update, per sequence the mean over its codes of
    ``-advantage * log p(code)`` (averaged over sequences of groups with spread), plus ``kl_weight`` times
    the mean KL to the reference over every position, minus ``entropy_weight`` times the policy's mean
    entropy per code (a bonus against collapsing onto one sample per condition, whose groups then have no
    spread and teach nothing). ``advantages`` and ``spread`` are per sequence ``(N,)``.

    With one update per sample the PPO ratio is 1 and its clipping inactive, so the gradient is that of
    the plain policy gradient with group-normalised advantages.
    """
    log_probs = code_log_probs(logits, codes).mean(dim=1)
    kept = spread.float()
    policy = -(advantages * log_probs * kept).sum() / kept.sum().clamp(min=1)
    kl = code_kl(logits, reference_logits).mean()
    loss = policy + kl_weight * kl
    if entropy_weight:
        loss = loss - entropy_weight * code_entropy(logits).mean()
    return loss, kl.detach()


def dpo_loss(chosen, rejected, reference_chosen, reference_rejected, beta):
    """DPO (Rafailov et al., 2023): ``-log sigmoid(beta * ((chosen - reference_chosen) - (rejected - reference_rejected)))``
    averaged over pairs, from sequence log-probabilities ``(P,)`` of the chosen and rejected samples under
    the policy and the frozen reference."""
    return -F.logsigmoid(beta * ((chosen - reference_chosen) - (rejected - reference_rejected))).mean()
