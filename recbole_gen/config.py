"""RecBole's ``Config``, extended with recbole_gen's defaults (``properties/``) and input checks."""

import os

import recbole
import recbole_gen.properties
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.evaluator import metric_types

from recbole_gen.data.item_content import check_image_source
from recbole_gen.evaluator.register import register_generative_metrics
from recbole_gen.utils import get_model

PROPERTIES_DIR = os.path.dirname(os.path.abspath(recbole_gen.properties.__file__))
RECBOLE_PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.abspath(recbole.__file__)), "properties")

# Expected types of the keys users most often set; a wrong one is named before anything runs.
_NUMBER = (int, float)
_OPTIONAL_STR = (str, type(None))
CONFIG_TYPES = {
    "epochs": int,
    "train_batch_size": int,
    "eval_batch_size": int,
    "learning_rate": _NUMBER,
    "weight_decay": _NUMBER,
    "stopping_step": int,
    "seed": int,
    "MAX_ITEM_LIST_LENGTH": int,
    "topk": (int, list),
    "metrics": (str, list),
    "image_dir": _OPTIONAL_STR,
    "image_field": _OPTIONAL_STR,
    "text_fields": (list, type(None)),
    "image_size": int,
    "content_cache_dir": str,
    "eval_encoder": str,
    "eval_encoder_pretrained": _OPTIONAL_STR,
    "encoder_cache_dir": str,
    "encoder_fit_epochs": int,
    "encoder_fit_batch_size": int,
    "encoder_fit_learning_rate": _NUMBER,
    "personal_lift_samples": int,
    "user_encoder": str,
    "user_encoder_checkpoint": _OPTIONAL_STR,
    "freeze_user_encoder": bool,
    "rec_loss_weight": _NUMBER,
    "n_cond_tokens": int,
    "n_history_images": int,
    "cond_dropout_prob": _NUMBER,
    "tokenizer_path": _OPTIONAL_STR,
    "tokenizer_image_size": int,
    "tokenizer_block_out_channels": list,
    "tokenizer_codebook_size": int,
    "tokenizer_fit_epochs": int,
    "generator_path": _OPTIONAL_STR,
    "gen_hidden_size": int,
    "gen_layers": int,
    "generator_lora_r": int,
    "gen_top_k": int,
    "gen_temperature": _NUMBER,
    "guidance_scale": _NUMBER,
    "gallery_users": int,
    "gallery_samples": int,
}


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _has_type(value, types):
    # bool is a subclass of int, but `epochs: true` is a mistake worth naming.
    if isinstance(value, bool):
        return bool in _as_tuple(types)
    return isinstance(value, types)


def _type_names(types):
    types = _as_tuple(types)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


class Config(RecBoleConfig):
    """RecBole's Config; plugin YAML files are merged over RecBole's, user settings over both."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None):
        register_generative_metrics()
        super().__init__(model, dataset, config_file_list, config_dict)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            if "model" not in self.external_config_dict:
                raise KeyError("the model must be given: as an argument, in a config file, in config_dict or as --model=NAME")
            model = self.external_config_dict["model"]
        if dataset is None:
            if "dataset" not in self.external_config_dict:
                raise KeyError("the dataset must be given: as an argument, in a config file, in config_dict or as --dataset=NAME")
            dataset = self.external_config_dict["dataset"]
        if isinstance(model, str):
            return model, get_model(model), dataset
        return model.__name__, model, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        model_file = os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml")
        paths = [os.path.join(PROPERTIES_DIR, "overall.yaml")]
        paths += self._user_encoder_files(model_file)
        paths += [model_file, os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")]
        for path in paths:
            if os.path.isfile(path):
                self._update_internal_config_dict(path)

    def _user_encoder_files(self, model_file):
        """The YAML files of a composite model's ``user_encoder`` (e.g. GenRec's SASRec), merged under the
        model's own, so the encoder gets its usual defaults and the model's file can override them."""
        encoder = self.external_config_dict.get("user_encoder")
        if encoder is None and os.path.isfile(model_file):
            with open(model_file) as f:
                encoder = (yaml.safe_load(f) or {}).get("user_encoder")
        if encoder is None:
            return []
        return [os.path.join(RECBOLE_PROPERTIES_DIR, "model", f"{encoder}.yaml"), os.path.join(PROPERTIES_DIR, "model", f"{encoder}.yaml")]

    def _set_default_parameters(self):
        self._check_types()
        self._check_metrics()
        super()._set_default_parameters()
        self._check_paths()

    def _check_types(self):
        for key, types in CONFIG_TYPES.items():
            if key not in self.final_config_dict:
                continue
            value = self.final_config_dict[key]
            if not _has_type(value, types):
                raise TypeError(f"config key '{key}' must be {_type_names(types)}, got {type(value).__name__} {value!r}")

    def _check_metrics(self):
        metrics = self.final_config_dict["metrics"]
        metrics = [metrics] if isinstance(metrics, str) else metrics
        for metric in metrics:
            if str(metric).lower() not in metric_types:
                raise ValueError(
                    f"unknown metric '{metric}' in config key 'metrics'; available: {', '.join(sorted(metric_types))}"
                )
        valid_metric = str(self.final_config_dict["valid_metric"])
        if valid_metric.split("@")[0].lower() not in [str(metric).lower() for metric in metrics]:
            raise ValueError(f"config key 'valid_metric' = '{valid_metric}' is not computed: add it to 'metrics' {metrics}")

    def _check_paths(self):
        check_image_source(self.final_config_dict)
