"""Trainers. ``<Model>Trainer`` defined here is chosen for ``<Model>`` by :func:`get_trainer`."""

import recbole.utils

from recbole_gen.trainer.trainer import GenRecTrainer, ReferenceTrainer, with_generative_evaluation

RandomItemTrainer = PopItemTrainer = LastItemTrainer = TargetItemTrainer = ReferenceTrainer


def get_trainer(model_type, model_name):
    """The trainer for a model: recbole_gen's ``<Model>Trainer`` if there is one, else RecBole's choice, in
    either case able to compute recbole_gen's generative metrics."""
    trainer_class = globals().get(f"{model_name}Trainer") or recbole.utils.get_trainer(model_type, model_name)
    return with_generative_evaluation(trainer_class)


__all__ = ["get_trainer", "with_generative_evaluation", "GenRecTrainer", "ReferenceTrainer"]
