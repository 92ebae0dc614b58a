"""Generative evaluation and safe checkpoints for any RecBole trainer.

``with_generative_evaluation(T)`` returns a subclass of the RecBole trainer ``T`` that collects what
the generative metrics need and reads/writes checkpoints without pickled objects (see compat.py).
"""

import functools

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_gen.compat import load_checkpoint, save_checkpoint
from recbole_gen.evaluator.collector import GenerativeCollector
from recbole_gen.evaluator.encoder import catalog_embeddings


class GenerativeEvaluationMixin:
    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_collector = GenerativeCollector(config)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
        }
        save_checkpoint(saved_model_file, state)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self._load_model_state(checkpoint)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _load_model_state(self, checkpoint):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_state(load_checkpoint(checkpoint_file, map_location=self.device))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        self.prepare_catalog(eval_data._dataset)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def prepare_catalog(self, dataset):
        """Embed the catalog (fitting the item encoder if needed) once per run, before the first evaluation."""
        if self.eval_collector.needs_catalog and not self.eval_collector.has_catalog:
            self.eval_collector.set_catalog(catalog_embeddings(self.config, dataset))


@functools.lru_cache(maxsize=None)
def with_generative_evaluation(trainer_class):
    """``trainer_class`` with :class:`GenerativeEvaluationMixin` mixed in (one class per trainer)."""
    if issubclass(trainer_class, GenerativeEvaluationMixin):
        return trainer_class
    return type(trainer_class.__name__, (GenerativeEvaluationMixin, trainer_class), {"__module__": __name__})


class ReferenceTrainer(GenerativeEvaluationMixin, Trainer):
    """For reference rules (no parameters): ``fit`` validates once and saves, nothing is optimised."""

    def _build_optimizer(self, **kwargs):
        return None

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self.eval_collector.data_collect(train_data)
        valid_score, valid_result = self._valid_epoch(valid_data, show_progress=show_progress)
        self.best_valid_score, self.best_valid_result = valid_score, valid_result
        if saved:
            self._save_checkpoint(0, verbose=verbose)
        return self.best_valid_score, self.best_valid_result
