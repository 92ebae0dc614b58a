"""Generative evaluation, safe checkpoints and exact resumption for any RecBole trainer.

``with_generative_evaluation(T)`` returns a subclass of the RecBole trainer ``T`` that

- collects what the generative metrics need (the catalog's embeddings in the item-encoder space, each
  user's shown item, targets and history; for models without an item sequence, the training history
  RecBole's full-sort loader provides; for sampled evaluation such as ``uni100``, one row per user);
- reads and writes checkpoints without pickled objects, atomically (see compat.py);
- with ``valid_fd_max``, keeps the best ``valid_metric`` among the validations whose FD is within that cap;
- after every validation writes a resume state (``<checkpoint>-resume.pth``: model, optimizer, early
  stopping counters, every random stream, the training loader's shuffling included, and what the trainer
  adds in ``_run_state``, such as the RL stage's step count and log), from which
  :meth:`resume_checkpoint` continues a run exactly where it stopped;
- in a distributed run (RecBole's DDP, docs/distributed.md): logs the training loss averaged over the
  processes, computes the generative metrics on every process's users gathered (RecBole's own metrics
  keep RecBole's average over processes) and writes checkpoints, galleries and tensorboard from the first
  process of each machine only.
"""

import functools
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer
from recbole.utils import EvaluatorType, set_color

from recbole_gen.compat import distributed_trainer, load_checkpoint, save_checkpoint
from recbole_gen.data.item_content import item_content
from recbole_gen.evaluator.collector import CODE_SHARE_FIELD, SHOWN_FIELD, GenerativeCollector, gather_per_user, pad_pairs
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.evaluator.gallery import gallery_image, select_rows
from recbole_gen.evaluator.image_quality import pixel_fidelity, sharpness
from recbole_gen.evaluator.metrics import GENERATIVE_METRICS
from recbole_gen.fidelity.guard import GuardResult, pass_rates
from recbole_gen.model.sampling import split_seed
from recbole_gen.pipeline import request_guard
from recbole_gen.rl.reranker import generate_best_of_n
from recbole_gen.rl.reward import RewardModel

RESUME_SUFFIX = "-resume.pth"
FD_CAPPED_SCORE = -2.0  # valid_fd_max: minus a positive excess, below any valid_metric (each at least -2)


@dataclass
class CatalogSpace:
    """The catalog of a run in its evaluation space."""

    content: object  # ItemContent
    encoder: object  # ItemEncoder
    embeddings: torch.Tensor  # (n_items, d)


def random_states():
    """Every random stream a training step may draw from, in a weights_only-loadable form."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": list(random.getstate()[1]),
    }


def set_random_states(states):
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"], numpy["gauss"]))
    random.setstate((3, tuple(states["python"]), None))


def resume_file_of(checkpoint_file):
    stem = checkpoint_file[: -len(RESUME_SUFFIX)] if checkpoint_file.endswith(RESUME_SUFFIX) else os.path.splitext(checkpoint_file)[0]
    return stem + RESUME_SUFFIX


class GenerativeEvaluationMixin:
    def __init__(self, config, model):
        with distributed_trainer(config):
            super().__init__(config, model)
        if not config["single_spec"]:
            # Each process names the checkpoint by its own clock; all must load the file the first one writes.
            names = [self.saved_model_file]
            torch.distributed.broadcast_object_list(names, src=0)
            self.saved_model_file = names[0]
        self.eval_collector = GenerativeCollector(config)
        self.catalog = None  # CatalogSpace, once the first evaluation needs it
        self._resume_state = None  # what fit() restores before its first epoch

    # -- checkpoints -------------------------------------------------------------------------------
    def _training_state(self, epoch):
        return {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
        }

    def _writes_files(self):
        return self.config["single_spec"] or self.config["local_rank"] == 0

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self._writes_files():
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(saved_model_file, self._training_state(epoch))
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _save_resume_state(self, epoch, train_data):
        if not self._writes_files():
            return
        state = self._training_state(epoch)
        state.update(best_valid_result=dict(self.best_valid_result or {}), best_model_file=self.saved_model_file,
                     rng=random_states(), train_loader_rng=train_data.generator.get_state(), run_state=self._run_state())
        save_checkpoint(resume_file_of(self.saved_model_file), state)

    def _run_state(self):
        """What else a trainer must carry over a resume (plain tensors, numbers, strings, lists and dicts)."""
        return {}

    def _load_run_state(self, run_state):
        """Restore what :meth:`_run_state` returned."""

    def resume_checkpoint(self, resume_file):
        """Continue the run whose checkpoint (or resume state) is ``resume_file``; :meth:`fit` then trains
        from the epoch after the last validated one, as if never interrupted."""
        path = resume_file_of(str(resume_file))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"--resume: no resume state {path} next to {resume_file} (it is written after every validation by "
                "recbole_gen; runs without validation, or by plain RecBole, cannot be resumed exactly)"
            )
        checkpoint = load_checkpoint(path, map_location=self.device)
        saved = checkpoint["config"]
        if (saved["model"], saved["dataset"]) != (self.config["model"], self.config["dataset"]):
            raise ValueError(f"--resume: {path} is a {saved['model']} run on {saved['dataset']}, not {self.config['model']} on {self.config['dataset']}")
        self.saved_model_file = checkpoint["best_model_file"]
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self._load_model_state(checkpoint)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self._load_run_state(checkpoint.get("run_state", {}))
        self._resume_state = checkpoint
        self.logger.info(f"Resuming {path}: training continues at epoch {self.start_epoch}")

    def _load_model_state(self, checkpoint):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if self._resume_state is not None:
            train_data.generator.set_state(self._resume_state["train_loader_rng"])
            set_random_states(self._resume_state["rng"])
            self._resume_state = None

        def after_validation(epoch_idx, valid_score):
            if saved:
                self._save_resume_state(epoch_idx, train_data)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        return super().fit(train_data, valid_data, verbose, saved, show_progress, after_validation)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        losses = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        if self.config["single_spec"]:
            return losses
        # Each process trained on its share of the batches: log and compare the mean over processes.
        values = torch.tensor(losses if isinstance(losses, tuple) else [losses], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(values)
        values = (values / torch.distributed.get_world_size()).tolist()
        return tuple(values) if isinstance(losses, tuple) else values[0]

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        distributed = not self.config["single_spec"]
        if load_best_model:
            if distributed:
                torch.distributed.barrier()  # the first process may still be writing the best checkpoint
            checkpoint_file = model_file or self.saved_model_file
            self._load_model_state(load_checkpoint(checkpoint_file, map_location=self.device))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        self.prepare_catalog(eval_data._dataset)
        self.eval_collector.eval_rows = torch.tensor(list(eval_data.sampler)) if distributed else None
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def _map_reduce(self, result, num_sample):
        """RecBole's average over processes for RecBole's own metrics. The generative metrics were computed on
        the users of all processes (see ``GenerativeCollector``): every process holds the run's value, and
        rank 0's is kept, so that all processes stop early together."""
        recbole_metrics = {name for name, metric in self.evaluator.metric_class.items() if not isinstance(metric, GENERATIVE_METRICS)}
        averaged = {key: value for key, value in result.items() if key.split("@")[0] in recbole_metrics}
        averaged = super()._map_reduce(averaged, num_sample) if averaged else {}
        whole = [{key: value for key, value in result.items() if key not in averaged}]
        torch.distributed.broadcast_object_list(whole, src=0)
        return {key: averaged[key] if key in averaged else whole[0][key] for key in result}

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        return self.capped_valid_score(score, result), result

    def capped_valid_score(self, score, result):
        """``score`` (the ``valid_metric``), or, where ``valid_fd_max`` is set and ``result``'s FD is above it,
        a score below every validation within the cap: ``-2`` minus the FD's excess (valid metrics are at least -2:
        ranking metrics at least 0, cosines at least -1, PersonalLift, a difference of two cosines, at least -2), so
        that among validations above the cap the closest to it ranks first."""
        cap = self.config["valid_fd_max"]
        if cap is None or result["fd"] <= cap:
            return score
        self.logger.info(f"validation FD {result['fd']:.4f} is above valid_fd_max {cap}: "
                         f"valid_metric {score:.4f} ranked below every validation within the cap")
        return FD_CAPPED_SCORE - (result["fd"] - cap)

    def prepare_catalog(self, dataset):
        """Embed the catalog (fitting the item encoder if needed) once per run, before the first evaluation."""
        if self.eval_collector.needs_catalog and not self.eval_collector.has_catalog:
            self.catalog = CatalogSpace(*catalog_encoder(self.config, dataset))
            self.eval_collector.set_catalog(self.catalog.embeddings, self.catalog.content.has_image)

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        history_index = batched_data[1]
        field = self.eval_collector.history_field
        if self.eval_collector.needs_catalog and field not in interaction and history_index is not None:
            # General models have no item sequence: their history is the user's training items.
            rows, items = history_index
            interaction.update(Interaction({field: pad_pairs(rows.cpu(), items.cpu(), len(interaction))}))
        return interaction, scores, positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._neg_sample_batch_eval(batched_data)
        if self.config["eval_type"] == EvaluatorType.RANKING:
            # Sampled ranking (e.g. uni100) scores one row per user but returns one interaction row per
            # candidate: keep each user's first row, aligned with the scores.
            row_idx = batched_data[1].cpu()
            first = torch.full((len(scores),), len(row_idx), dtype=torch.long)
            first = first.scatter_reduce(0, row_idx, torch.arange(len(row_idx)), reduce="amin")
            interaction = interaction[first]
        return interaction, scores, positive_u, positive_i


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
    """RecBole's Trainer for GenRec. Each evaluation generates ``eval_samples`` images per user from the
    split's own sampling stream (``eval_seed``; validation and test never share one), ranks the catalog
    with them for RecBole's metrics and scores the same images with the generative metrics; it writes a
    gallery PNG (also logged to tensorboard). A test evaluation also reports the tokenizer ceiling
    (``ceiling_result``): every user shown the reconstruction of their own next item."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.phase, self.epoch = "test", 0
        self.ceiling_result = None
        self.gallery_files = []
        self._show_ceiling = False
        self._reward_model = None
        self._guard = None
        self._fidelity_results = []
        self._sharpness = []
        self._catalog_images = None  # (N, 3, S, S) uint8 at the tokenizer's size, items with an image
        self._catalog_sharpness = None  # their mean sharpness, blurratio's denominator

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.epoch = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        self.phase = "valid"
        try:
            return super()._valid_epoch(valid_data, show_progress=show_progress)
        finally:
            self.phase = "test"

    def sampling_seed(self):
        return split_seed(self.config["eval_seed"], self.phase)

    @property
    def uses_reward_model(self):
        """Whether evaluations need the reward model (best-of-N reranks in its space; the fidelity checks
        embed in it)."""
        return self.config["eval_best_of"] > 1 or self.config["eval_fidelity"]

    def reward_model(self, dataset):
        """The RL stage's :class:`~recbole_gen.rl.reward.RewardModel` of ``dataset``'s catalog (built once)."""
        if self._reward_model is None:
            self._reward_model = RewardModel.from_config(self.config, dataset)
        return self._reward_model

    def prepare_catalog(self, dataset):
        """Also build the reward model, once per run, where evaluations use it."""
        super().prepare_catalog(dataset)
        if self.uses_reward_model:
            self.reward_model(dataset)
        if self.config["eval_fidelity"] and self._guard is None:
            self._guard = request_guard(self.config, self.model, dataset, self._reward_model)
        if self._catalog_images is None:
            images = item_content(self.config, dataset).images[self.model.has_image.cpu()]
            size = self.model.tokenizer.image_size
            self._catalog_images = F.interpolate(images.float(), size=(size, size), mode="area").round().to(torch.uint8)
            self._catalog_sharpness = sharpness(self._catalog_images).mean().clamp(min=1e-12)

    def eval_generation(self, interaction):
        """``(generation, k)``: the k images shown to each row of ``interaction`` in this evaluation."""
        if self._show_ceiling:
            return self.model.reconstruct_targets(interaction), 1
        samples, best_of, seed = self.config["eval_samples"], self.config["eval_best_of"], self.sampling_seed()
        if best_of > 1:
            return generate_best_of_n(self.model, self._reward_model, interaction, samples, best_of, seed), samples
        return self.model.generate(interaction, samples, seed=seed), samples

    def _full_sort_batch_eval(self, batched_data):
        interaction, history_index, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        generation, samples = self.eval_generation(interaction)
        scores = self.model.score_catalog(generation.codes.view(len(interaction), samples, -1))
        scores[:, 0] = -np.inf  # as RecBole's _full_sort_batch_eval: never the padding item or seen items
        if history_index is not None:
            scores[history_index] = -np.inf
        if self._guard is not None and not self._show_ceiling:
            self._fidelity_results.append(self._guard(generation.images))
        self._sharpness.append(sharpness(generation.images.cpu()).view(len(interaction), samples).mean(dim=1))
        if self.eval_collector.needs_catalog:
            shown = self.catalog.encoder.encode_images(generation.images)
            _, code_share = self.model.closest_codes(generation.codes)
            interaction.update(Interaction({SHOWN_FIELD: shown.view(len(interaction), samples, -1),
                                            CODE_SHARE_FIELD: code_share.view(len(interaction), samples).cpu()}))
        return interaction, scores, positive_u, positive_i

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False, split=None):
        """RecBole's evaluate; ``split`` ('valid' or 'test') names the split ``eval_data`` holds, which picks
        the sampling stream (default: 'valid' inside ``fit``, else 'test')."""
        previous, self.phase = self.phase, split or self.phase
        self._fidelity_results = []
        try:
            result = self._evaluate_with_blur(eval_data, load_best_model, model_file, show_progress)
            if result is None:
                return None
            if self._fidelity_results:
                rates = pass_rates(self._fidelity_result())
                result.update({f"fidelity.{name}": rate for name, rate in rates.items() if name not in ("n_images", "n_passed")})
                self.logger.info(set_color("fidelity checks", "yellow") + f": {rates}")
            if self.phase == "test" and self.eval_collector.needs_catalog:
                self.ceiling_result = self.tokenizer_ceiling(eval_data)
                self.logger.info(set_color("tokenizer ceiling", "yellow") + f": {dict(self.ceiling_result)}")
            if self.config["gallery_users"]:
                self.write_gallery(eval_data)
            return result
        finally:
            self.phase = previous

    def _evaluate_with_blur(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's evaluate, plus ``blurratio``: the shown images' mean Laplacian variance over the catalog
        images' at the tokenizer's size (:mod:`recbole_gen.evaluator.image_quality`; 1 = as sharp)."""
        self._sharpness = []
        result = GenerativeEvaluationMixin.evaluate(self, eval_data, load_best_model, model_file, show_progress)
        if result is not None and self._sharpness:
            per_user = torch.cat(self._sharpness)
            rows = self.eval_collector.eval_rows
            if rows is not None:  # distributed: every process's users, each once
                per_user = torch.cat([part[keep] for part, keep in gather_per_user(rows, per_user)])
            result["blurratio"] = (per_user.mean() / self._catalog_sharpness).item()
        return result

    def _fidelity_result(self):
        """The fidelity verdicts of this evaluation's images; in a distributed run those of every process,
        each user's once."""
        result = GuardResult.concatenate(self._fidelity_results)
        rows = self.eval_collector.eval_rows
        if rows is None:
            return result
        kept = []
        for part, users in gather_per_user(rows, result):
            images = users.repeat_interleave(len(part.passed) // len(users))  # each user's samples are adjacent
            kept.append(GuardResult(passed=part.passed[images], verdicts={
                name: [verdict for verdict, keep in zip(verdicts, images.tolist()) if keep] for name, verdicts in part.verdicts.items()}))
        return GuardResult.concatenate(kept)

    def tokenizer_ceiling(self, eval_data):
        """The metrics of a perfect generator with this tokenizer: every user is shown the reconstruction
        of their own next item; with the tokenizer's PSNR, SSIM and MS-SSIM on the catalog's images."""
        self._show_ceiling = True
        try:
            result = self._evaluate_with_blur(eval_data, load_best_model=False)
        finally:
            self._show_ceiling = False
        tokenizer = self.model.tokenizer
        fidelity = pixel_fidelity(self._catalog_images, tokenizer.decode(self.model.item_codes[self.model.has_image]))
        result.update({f"tokenizer.{name}": value for name, value in fidelity.items() if name != "ms_ssim_scales"})
        return result

    def write_gallery(self, eval_data):
        config = self.config
        dataset = eval_data._dataset
        content = item_content(config, dataset)  # in every process: building it may wait for the first one's cache
        if not self._writes_files():
            return
        rows = select_rows(config["gallery_users"], len(dataset.inter_feat), config["seed"])
        interaction = dataset.inter_feat[rows].to(self.device)
        users = dataset.id2token(config["USER_ID_FIELD"], interaction[config["USER_ID_FIELD"]].cpu())
        generation = self.model.generate(interaction, num_samples=config["gallery_samples"], seed=self.sampling_seed())
        image = gallery_image(self.model, interaction, generation.images, lambda ids: content.images[ids], content.texts,
                              users, config["gallery_history"])
        tag = f"valid-epoch{self.epoch:03d}" if self.phase == "valid" else "test"
        os.makedirs(config["gallery_dir"], exist_ok=True)
        stem = os.path.splitext(os.path.basename(self.saved_model_file))[0]
        path = os.path.join(config["gallery_dir"], f"{stem}-{tag}.png")
        image.save(path)
        self.gallery_files.append(path)
        self.tensorboard.add_image(f"gallery/{self.phase}", np.asarray(image), self.epoch, dataformats="HWC")
        self.logger.info(set_color("Gallery", "blue") + f": {path}")
