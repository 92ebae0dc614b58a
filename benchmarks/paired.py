"""Paired comparisons of two benchmark points, user by user.

Two points scored on the same users and targets (same dataset, seed and split) differ in TargetSim by the
mean of their per-user differences; resampling users (a bootstrap) gives that difference an interval. The
pairing removes what the two points share per user (a next item far from everything scores low under
both); how much narrower that makes the interval depends on how strongly their per-user values go
together, and against a row that shows everyone the same item (PopItem) it is little. A trainer made
``recording`` keeps each evaluation's per-user TargetSim; :func:`scored` returns it with the evaluation's
result.
"""

import torch

from recbole_gen.evaluator.metrics import ContentInputs, bootstrap_interval, target_sim_per_user


class PerUserRecorder:
    """A trainer's evaluator that also keeps, for each evaluation, the target pairs and each user's TargetSim
    (``records``), so that two points can be compared user by user; ``evaluate`` returns the wrapped
    evaluator's result unchanged."""

    def __init__(self, evaluator):
        self.evaluator, self.records = evaluator, []

    def evaluate(self, dataobject):
        inputs = ContentInputs.from_struct(dataobject)
        self.records.append((inputs.target, target_sim_per_user(inputs)))
        return self.evaluator.evaluate(dataobject)

    def __getattr__(self, name):
        return getattr(self.evaluator, name)


def recording(trainer):
    """``trainer`` with a :class:`PerUserRecorder` as its evaluator."""
    trainer.evaluator = PerUserRecorder(trainer.evaluator)
    return trainer


def scored(trainer, evaluate):
    """``(result, per_user)`` of ``evaluate()``, one evaluation by a :func:`recording` trainer: its metrics and
    ``(target pairs, per-user TargetSim)`` of the shown items (the call's first evaluation: with the test split
    a GenRec trainer then scores its tokenizer ceiling too)."""
    trainer.evaluator.records.clear()
    result = evaluate()
    return result, trainer.evaluator.records[0]


def seed_mean(records, name):
    """One ``(target pairs, per-user TargetSim)`` from the :func:`scored` records of several sampling seeds of
    the point ``name``, each user's values averaged over the seeds."""
    if any(not torch.equal(targets, records[0][0]) for targets, _ in records):
        raise RuntimeError(f"{name}: the seeds' evaluations hold different users or targets")
    return records[0][0], torch.stack([sims for _, sims in records]).mean(dim=0)


def paired_difference(per_user, bar):
    """``(mean, low, high)``: the mean over users of TargetSim in ``per_user`` minus that in ``bar`` (each a
    ``(target pairs, per-user TargetSim)``) and its 95% bootstrap interval over users, or None when the two were
    scored on different users or targets (then they cannot be paired)."""
    (targets, sims), (bar_targets, bar_sims) = per_user, bar
    if not torch.equal(targets, bar_targets):
        return None
    differences = sims - bar_sims
    return (differences.mean().item(), *bootstrap_interval(differences))
