"""Trainers. ``<Model>Trainer`` defined here is chosen for ``<Model>`` (see recbole_gen.utils.get_trainer)."""

from recbole_gen.trainer.trainer import GenRecTrainer, ReferenceTrainer

RandomItemTrainer = PopItemTrainer = LastItemTrainer = TargetItemTrainer = ReferenceTrainer
