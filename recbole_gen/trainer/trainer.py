"""Generative evaluation and safe checkpoints for any RecBole trainer.

``with_generative_evaluation(T)`` returns a subclass of the RecBole trainer ``T`` that collects what
the generative metrics need and reads/writes checkpoints without pickled objects (see compat.py).
"""

import functools
import os

import numpy as np
import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_gen.compat import load_checkpoint, save_checkpoint
from recbole_gen.data.item_content import ItemContent
from recbole_gen.evaluator.collector import GenerativeCollector
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.evaluator.gallery import gallery_image, select_rows


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
            self.content, self.item_encoder, embeddings = catalog_encoder(self.config, dataset)
            self.eval_collector.set_catalog(embeddings)


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


class GenRecTrainer(GenerativeEvaluationMixin, Trainer):
    """RecBole's Trainer for GenRec: the generative metrics score the generated images (generated once per
    user per evaluation, in ``full_sort_predict``); each evaluation writes a gallery PNG, also logged to
    tensorboard; a test evaluation also reports the tokenizer ceiling (``ceiling_result``)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.phase, self.epoch = "test", 0
        self.ceiling_result = None
        self.gallery_files = []

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.epoch = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        self.phase = "valid"
        try:
            return super()._valid_epoch(valid_data, show_progress=show_progress)
        finally:
            self.phase = "test"

    def _full_sort_batch_eval(self, batched_data):
        result = super()._full_sort_batch_eval(batched_data)
        if self.eval_collector.needs_catalog:
            self.eval_collector.set_shown(self.item_encoder.encode_images(self.model.last_generation.images))
        return result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if result is None:
            return None
        if self.phase == "test" and self.eval_collector.needs_catalog:
            self.ceiling_result = self.tokenizer_ceiling(eval_data)
            self.logger.info(set_color("tokenizer ceiling", "yellow") + f": {dict(self.ceiling_result)}")
        if self.config["gallery_users"]:
            self.write_gallery(eval_data)
        return result

    def tokenizer_ceiling(self, eval_data):
        """The metrics of a perfect generator with this tokenizer: every user is shown the reconstruction
        of their own next item."""
        self.model.oracle = True
        try:
            return super().evaluate(eval_data, load_best_model=False)
        finally:
            self.model.oracle = False

    def write_gallery(self, eval_data):
        config = self.config
        dataset = eval_data._dataset
        content = getattr(self, "content", None) or ItemContent(config, dataset)
        rows = select_rows(config["gallery_users"], len(dataset.inter_feat), config["seed"])
        interaction = dataset.inter_feat[rows].to(self.device)
        users = dataset.id2token(config["USER_ID_FIELD"], interaction[config["USER_ID_FIELD"]].cpu())
        generation = self.model.generate(interaction, num_samples=config["gallery_samples"], seed=config["seed"])
        image = gallery_image(self.model, interaction, generation.images, content, users, config["gallery_history"])
        tag = f"valid-epoch{self.epoch:03d}" if self.phase == "valid" else "test"
        os.makedirs(config["gallery_dir"], exist_ok=True)
        stem = os.path.splitext(os.path.basename(self.saved_model_file))[0]
        path = os.path.join(config["gallery_dir"], f"{stem}-{tag}.png")
        image.save(path)
        self.gallery_files.append(path)
        self.tensorboard.add_image(f"gallery/{self.phase}", np.asarray(image), self.epoch, dataformats="HWC")
        self.logger.info(set_color("Gallery", "blue") + f": {path}")
