"""Model and trainer lookup: recbole_gen first, then RecBole."""

import importlib
import pkgutil

import recbole.utils
import torch

PLUGIN_MODEL_PACKAGES = ("recbole_gen.model.sequential_recommender",)
RECBOLE_MODEL_PACKAGES = tuple(
    f"recbole.model.{name}"
    for name in (
        "general_recommender",
        "context_aware_recommender",
        "sequential_recommender",
        "knowledge_aware_recommender",
        "exlib_recommender",
    )
)


def _model_files(package):
    """Module names in a model package, found without importing it (RecBole's exlib package imports
    optional libraries such as lightgbm on import)."""
    spec = importlib.util.find_spec(package)
    return {info.name for info in pkgutil.iter_modules(spec.submodule_search_locations) if not info.name.startswith("_")}


def _module_class(package, model_name):
    if model_name.lower() not in _model_files(package):
        return None
    return getattr(importlib.import_module(f"{package}.{model_name.lower()}"), model_name, None)


def available_models():
    """Names of every model file in recbole_gen and RecBole (file name = lowercased class name)."""
    return sorted(set().union(*(_model_files(package) for package in PLUGIN_MODEL_PACKAGES + RECBOLE_MODEL_PACKAGES)))


def get_model(model_name):
    """The model class named ``model_name``; recbole_gen's models shadow RecBole's of the same name."""
    for package in PLUGIN_MODEL_PACKAGES + RECBOLE_MODEL_PACKAGES:
        model_class = _module_class(package, model_name)
        if model_class is not None:
            return model_class
    raise ValueError(
        f"unknown model '{model_name}'. Class names are case-sensitive (SASRec, not sasrec); "
        f"model files available (lowercased class names): {', '.join(available_models())}"
    )


def get_trainer(model_type, model_name):
    """The trainer for a model: ``recbole_gen.trainer.<Model>Trainer`` if there is one, else RecBole's
    choice, in either case able to compute recbole_gen's generative metrics."""
    from recbole_gen import trainer as plugin_trainers
    from recbole_gen.trainer.trainer import with_generative_evaluation

    trainer_class = getattr(plugin_trainers, f"{model_name}Trainer", None)
    if trainer_class is None:
        trainer_class = recbole.utils.get_trainer(model_type, model_name)
    return with_generative_evaluation(trainer_class)


def fit_minibatches(indices, batch_size, epochs, generator, step, desc, show_progress):
    """Run ``step(batch)`` over shuffled mini-batches of ``indices`` for ``epochs`` epochs, with a progress bar.

    ``step`` trains on one batch and returns its loss (a float), or None to skip the batch. Returns the
    mean loss of each epoch.
    """
    from tqdm import tqdm

    losses = []
    progress = tqdm(range(epochs), desc=desc, ncols=100, disable=not show_progress)
    for _ in progress:
        order = indices[torch.randperm(len(indices), generator=generator)]
        batch_losses = [step(order[start : start + batch_size]) for start in range(0, len(order), batch_size)]
        batch_losses = [loss for loss in batch_losses if loss is not None]
        losses.append(sum(batch_losses) / len(batch_losses))
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses
