"""GenRec's second stage: online reinforcement learning of the generator (rewards, objectives, best-of-N).

The training loop is :class:`recbole_gen.trainer.rl_trainer.GenRecRLTrainer`; this package holds what it
composes: :mod:`~recbole_gen.rl.reward` (the reward encoder and the reward terms), :mod:`~recbole_gen.rl.objectives`
(GRPO's group advantages and policy loss, DPO's loss, KL and entropy of code distributions) and
:mod:`~recbole_gen.rl.reranker` (the best-of-N baseline RL must beat).
"""
