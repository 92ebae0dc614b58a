"""Trainers. ``<Model>Trainer`` defined here is chosen for ``<Model>`` by :func:`get_trainer`."""

import recbole.utils

from recbole_gen.trainer.rl_trainer import GenRecRLTrainer
from recbole_gen.trainer.trainer import GenRecTrainer, ReferenceTrainer, with_generative_evaluation

RandomItemTrainer = PopItemTrainer = LastItemTrainer = TargetItemTrainer = ReferenceTrainer
# Later training stages of a model: (config key that starts the stage, its trainer).
STAGES = {"GenRec": ("rl_init_checkpoint", GenRecRLTrainer)}


def get_trainer(model_type, model_name, config=None):
    """The trainer for a model: recbole_gen's ``<Model>Trainer`` if there is one (or the trainer of the stage
    ``config`` starts, see ``STAGES``), else RecBole's choice, in either case able to compute recbole_gen's
    generative metrics."""
    stage_key, stage_trainer = STAGES.get(model_name, (None, None))
    if config is not None and stage_key and config[stage_key]:
        if not config["single_spec"]:  # its own training loop steps each process's optimizer alone
            raise ValueError(f"config key '{stage_key}' starts {stage_trainer.__name__}, which does not synchronise "
                             "gradients across processes yet: run that stage in one process (nproc 1)")
        return stage_trainer
    trainer_class = globals().get(f"{model_name}Trainer") or recbole.utils.get_trainer(model_type, model_name)
    return with_generative_evaluation(trainer_class)


__all__ = ["get_trainer", "with_generative_evaluation", "GenRecTrainer", "GenRecRLTrainer", "ReferenceTrainer"]
