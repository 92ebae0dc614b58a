"""Model lookup: recbole_gen first, then RecBole (trainers: recbole_gen.trainer.get_trainer)."""

import importlib
import pkgutil

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
