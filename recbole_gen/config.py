"""RecBole's ``Config``, extended with recbole_gen's defaults (``properties/``) and input checks, and made safe.

- Defaults by model type: ``properties/overall.yaml`` for every model; ``properties/evaluation.yaml``
  (ranking and generative metrics) only for models RecBole evaluates by ranking (general,
  sequential, knowledge-aware), so context-aware models keep RecBole's labeled AUC / LogLoss; RecBole's
  negative sampling stays on except for sequential models with a CE loss, which reject it.
- Nothing is evaluated: strings from ``config_dict`` and the command line are read with
  ``ast.literal_eval`` (numbers, lists, dicts, True/False/None), YAML files with a safe loader, and a
  config rebuilt from a checkpoint (:meth:`Config.from_checkpoint`) keeps every string a string and
  never reads the command line.
- Unknown keys get a warning naming the closest known key.
"""

import ast
import datetime
import difflib
import functools
import glob
import logging
import os
import re

import recbole
import recbole_gen.properties
import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.evaluator import metric_types
from recbole.utils import EvaluatorType, ModelType
from recbole.utils.argument_list import dataset_arguments, evaluation_arguments, general_arguments, training_arguments

from recbole_gen.compat import check_evaluated_keys
from recbole_gen.data.item_content import check_image_source
from recbole_gen.evaluator.register import register_generative_metrics
from recbole_gen.utils import get_model

logger = logging.getLogger(__name__)

PROPERTIES_DIR = os.path.dirname(os.path.abspath(recbole_gen.properties.__file__))
RECBOLE_PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.abspath(recbole.__file__)), "properties")
# Where a process sits in a distributed run (RecBole's keys, set by quick_start.run or from torchrun's variables).
LAUNCH_KEYS = {"local_rank", "nproc", "world_size", "offset", "ip", "port"}
# Keys that describe the machine a run is on, not the run: a checkpoint's values are not restored.
MACHINE_KEYS = LAUNCH_KEYS | {"data_path", "device", "gpu_id", "use_gpu", "single_spec", "ddp_timeout", "worker", "state",
                              "show_progress", "checkpoint_dir", "log_wandb", "wandb_project"}
# Keys RecBole sets or reads without a YAML default.
_STRUCTURAL_KEYS = {"model", "dataset", "config_files", "local_rank", "nproc", "world_size", "offset", "ip", "port",
                    "single_spec", "device", "teacher", "benchmark_filename"}


class SafeYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader with RecBole's resolver for floats such as 1e-3."""


SafeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def literal(value):
    """A command-line or config_dict string as the value it spells (``'5'`` -> 5, ``'[1, 2]'`` -> [1, 2],
    ``'true'`` -> True); anything that is not a literal stays the string it is. Never evaluates code."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _check_no_string_for_typed(value, default, key):
    """Refuse a string where the default holds a number, bool, list or dict (RecBole would have evaluated it)."""
    if value is None or default is None:
        return
    if isinstance(value, str):
        if not isinstance(default, str):
            raise ValueError(
                f"config key '{key}' holds the string {value!r} where a {type(default).__name__} is expected "
                f"(e.g. {default!r}); strings from a checkpoint are never evaluated"
            )
    elif isinstance(value, dict) and isinstance(default, dict):
        for name, item in value.items():
            if name in default:
                _check_no_string_for_typed(item, default[name], f"{key}.{name}")
    elif isinstance(value, list) and isinstance(default, list) and default:
        for index, item in enumerate(value):
            _check_no_string_for_typed(item, default[0], f"{key}[{index}]")


@functools.lru_cache(maxsize=1)
def known_keys():
    """Every key any RecBole or recbole_gen YAML file, or RecBole's argument lists, knows."""
    keys = set(_STRUCTURAL_KEYS).union(general_arguments, training_arguments, evaluation_arguments, dataset_arguments)
    for folder in (RECBOLE_PROPERTIES_DIR, PROPERTIES_DIR):
        for path in glob.glob(os.path.join(folder, "**", "*.yaml"), recursive=True):
            with open(path, encoding="utf-8") as f:
                keys.update(yaml.load(f, Loader=SafeYamlLoader) or {})
    return frozenset(keys)

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
    "eval_block_size": int,
    "near_copy_threshold": (int, float, type(None)),
    "near_copy_code_share": (int, float, type(None)),
    "valid_fd_max": (int, float, type(None)),
    "user_encoder": str,
    "user_encoder_checkpoint": _OPTIONAL_STR,
    "freeze_user_encoder": bool,
    "rec_loss_weight": _NUMBER,
    "n_cond_tokens": int,
    "n_history_images": int,
    "gen_max_positions": (int, type(None)),
    "cond_dropout_prob": _NUMBER,
    "tokenizer_path": _OPTIONAL_STR,
    "tokenizer_image_size": int,
    "tokenizer_block_out_channels": list,
    "tokenizer_codebook_size": int,
    "tokenizer_fit_epochs": int,
    "tokenizer_fit_restart_codes": bool,
    "tokenizer_fit_schedule": str,
    "tokenizer_fit_warmup": _NUMBER,
    "tokenizer_fit_adam_betas": list,
    "tokenizer_fit_learning_rate": _NUMBER,
    "tokenizer_fit_batch_size": int,
    "generator_path": _OPTIONAL_STR,
    "gen_hidden_size": int,
    "gen_layers": int,
    "generator_lora_r": int,
    "gen_top_k": int,
    "gen_temperature": _NUMBER,
    "guidance_scale": _NUMBER,
    "eval_samples": int,
    "eval_seed": (int, type(None)),
    "encoder_fit_seed": int,
    "encoder_fit_text_fields": (list, type(None)),
    "gallery_users": int,
    "eval_best_of": int,
    "rl_init_checkpoint": _OPTIONAL_STR,
    "rl_algorithm": str,
    "rl_epochs": int,
    "rl_steps_per_epoch": int,
    "rl_batch_size": int,
    "rl_group_size": int,
    "rl_learning_rate": _NUMBER,
    "rl_clip_grad_norm": (int, float, type(None)),
    "rl_kl_weight": _NUMBER,
    "rl_advantage_scale": str,
    "rl_dpo_beta": _NUMBER,
    "rl_temperature": _NUMBER,
    "rl_top_k": int,
    "rl_guidance_scale": _NUMBER,
    "rl_reward_text_fields": (list, type(None)),
    "rl_reward_fit_epochs": int,
    "rl_reward_fit_seed": int,
    "rl_contrastive_weight": _NUMBER,
    "rl_realism_weight": _NUMBER,
    "rl_diversity_weight": _NUMBER,
    "rl_spread_weight": _NUMBER,
    "rl_fd_weight": _NUMBER,
    "rl_copy_penalty": _NUMBER,
    "rl_copy_code_share": _NUMBER,
    "rl_reward_horizon": int,
    "rl_expectation_weight": _NUMBER,
    "rl_expectation_contrast": bool,
    "rl_expectation_top_items": int,
    "rl_expectation_nearest_item": bool,
    "rl_reference_refresh": bool,
    "rl_dpo_sft_weight": _NUMBER,
    "gallery_samples": int,
    "nproc": int,
    "world_size": int,
    "offset": int,
    "local_rank": int,
    "port": (int, str),
    "ddp_timeout": _NUMBER,
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
    """RecBole's Config; plugin YAML files are merged over RecBole's, user settings over both.

    ``read_command_line``: also read ``--key=value`` arguments from ``sys.argv``, as RecBole does.
    ``saved_values``: the settings were read back from a checkpoint: strings stay strings and paths need
    not exist on this machine (use :meth:`from_checkpoint`).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, read_command_line=True, saved_values=False):
        self._read_command_line = read_command_line
        self._saved_values = saved_values
        register_generative_metrics()
        super().__init__(model, dataset, config_file_list, config_dict)

    @classmethod
    def from_checkpoint(cls, saved, overrides=None):
        """The config of a checkpoint (``saved``: the ``config`` entry ``compat.load_checkpoint`` returns),
        rebuilt without evaluating any string and without reading the command line. The checkpoint's final
        values win over today's defaults (but for machine keys such as ``data_path`` and ``device``);
        ``overrides`` win over both."""
        overrides = dict(overrides or {})
        # A checkpoint of a distributed run loads in one process unless the overrides place this one in a run.
        external = {key: value for key, value in saved["external"].items() if key not in LAUNCH_KEYS}
        config = cls(saved["model"], saved["dataset"], config_dict={**external, **overrides},
                     read_command_line=False, saved_values=True)
        config._restore_final(saved["final"], keep=set(overrides))
        return config

    def _restore_final(self, final, keep):
        changed = []
        for key, value in final.items():
            if key in MACHINE_KEYS or key in keep or self.final_config_dict.get(key) == value:
                continue
            _check_no_string_for_typed(value, self.internal_config_dict.get(key), key)
            changed.append(key)
            self.final_config_dict[key] = value
        self._check_types()
        if changed:
            logger.warning(f"the checkpoint's values of {sorted(changed)} differ from today's defaults; the checkpoint's are used")

    def _build_yaml_loader(self):
        return SafeYamlLoader

    def _load_config_files(self, file_list):
        try:
            return super()._load_config_files(file_list)
        except yaml.YAMLError as err:
            raise ValueError(f"config file {file_list}: not plain YAML (tags that build Python objects are refused): {err}") from None

    def _convert_config_dict(self, config_dict):
        if self._saved_values:
            return config_dict
        return {key: literal(value) for key, value in config_dict.items()}

    def _load_cmd_line(self):
        return super()._load_cmd_line() if self._read_command_line else {}

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
        if self._ranked(self.internal_config_dict.get("metrics")):
            paths.append(os.path.join(PROPERTIES_DIR, "evaluation.yaml"))
        paths += self._user_encoder_files(model_file)
        paths += [model_file, os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")]
        for path in paths:
            if os.path.isfile(path):
                self._update_internal_config_dict(path)

    @staticmethod
    def _ranked(metrics):
        """Whether RecBole evaluates with these metrics by ranking (context-aware models use AUC, LogLoss)."""
        metrics = [metrics] if isinstance(metrics, str) else metrics or []
        return all(metric_types.get(str(metric).lower()) == EvaluatorType.RANKING for metric in metrics)

    def _user_encoder_files(self, model_file):
        """The YAML files of a composite model's ``user_encoder`` (e.g. GenRec's SASRec), merged under the
        model's own, so the encoder gets its usual defaults and the model's file can override them."""
        encoder = self.external_config_dict.get("user_encoder")
        if encoder is None and os.path.isfile(model_file):
            with open(model_file, encoding="utf-8") as f:
                encoder = (yaml.load(f, Loader=SafeYamlLoader) or {}).get("user_encoder")
        if not isinstance(encoder, str):
            return []
        return [os.path.join(RECBOLE_PROPERTIES_DIR, "model", f"{encoder}.yaml"), os.path.join(PROPERTIES_DIR, "model", f"{encoder}.yaml")]

    def _init_device(self):
        """RecBole's, and a distributed run (``local_rank`` set) on the CPU too: RecBole 1.2.1 always joins it
        with the nccl backend on cuda devices (no upstream issue found). On the device RecBole picks for one
        process (the CPU when ``gpu_id`` is empty or CUDA is missing) this joins with gloo; on GPUs with nccl,
        one GPU of ``gpu_id`` per local process, as RecBole does."""
        final = self.final_config_dict
        if "local_rank" not in final:
            return super()._init_device()
        missing = sorted(LAUNCH_KEYS - set(final))
        if missing:
            raise KeyError(f"config key 'local_rank' starts a distributed run, which also needs {missing} "
                           "(recbole_gen.quick_start.run sets them all: use --nproc, or torchrun)")
        local_rank = final.pop("local_rank")
        super()._init_device()  # without local_rank: normalises gpu_id and picks the device one process would use
        on_gpu = final["device"].type == "cuda"
        if on_gpu and len(final["gpu_id"].split(",")) < final["nproc"]:
            raise ValueError(f"config key 'gpu_id' = '{final['gpu_id']}' names fewer GPUs than the {final['nproc']} processes "
                             "(nproc) on this machine: list one per process (e.g. --gpu_id=0,1), or set gpu_id to '' to run on the CPU")
        torch.distributed.init_process_group(
            backend="nccl" if on_gpu else "gloo", rank=local_rank + final["offset"], world_size=final["world_size"],
            init_method=f"tcp://{final['ip']}:{final['port']}", timeout=datetime.timedelta(seconds=final["ddp_timeout"]),
        )
        if on_gpu:
            torch.cuda.set_device(local_rank)
            final["device"] = torch.device("cuda", local_rank)
        final.update(local_rank=local_rank, single_spec=False)
        if local_rank != 0:  # as RecBole: only the first process of a machine logs and shows progress
            final.update(state="error", show_progress=False, verbose=False)

    def _set_default_parameters(self):
        if self._saved_values:
            for key, value in self.external_config_dict.items():
                _check_no_string_for_typed(value, self.internal_config_dict.get(key), key)
        else:
            self._warn_unknown_keys()
        self._check_types()
        self._check_metrics()
        self._default_negative_sampling()
        super()._set_default_parameters()
        if self.final_config_dict.get("eval_seed", 0) is None:
            self.final_config_dict["eval_seed"] = self.final_config_dict["seed"]
        check_evaluated_keys(self.final_config_dict)
        if not self._saved_values:  # a checkpoint's image folder need not exist where it is loaded
            check_image_source(self.final_config_dict)

    def _default_negative_sampling(self):
        """Sequential models with a CE loss score the whole catalog and reject sampled negatives; every other
        model keeps RecBole's default (e.g. BPR and LightGCN need their negatives)."""
        final = self.final_config_dict
        if (final["MODEL_TYPE"] == ModelType.SEQUENTIAL and final.get("loss_type") == "CE"
                and "train_neg_sample_args" not in self.external_config_dict):
            final["train_neg_sample_args"] = None

    def _warn_unknown_keys(self):
        known = known_keys()
        for key in self.external_config_dict:
            if key not in known and key not in self.internal_config_dict:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                logger.warning(f"config key '{key}' is not a RecBole or recbole_gen setting and is used by nothing known{hint}")

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
        computed = [str(metric).lower() for metric in metrics]
        if valid_metric.split("@")[0].lower() not in computed:
            raise ValueError(f"config key 'valid_metric' = '{valid_metric}' is not computed: add it to 'metrics' {metrics}")
        fd_max = self.final_config_dict.get("valid_fd_max")
        if fd_max is not None:
            if not fd_max > 0:
                raise ValueError(f"config key 'valid_fd_max' = {fd_max!r}: expected a positive FD, or ~ for no cap")
            if "fd" not in computed:
                raise ValueError(f"config key 'valid_fd_max' caps FD, which is not computed: add 'FD' to 'metrics' {metrics}")
            if not self.final_config_dict["valid_metric_bigger"]:
                raise ValueError(f"config key 'valid_fd_max' needs a 'valid_metric' where bigger is better, not "
                                 f"'{valid_metric}' with valid_metric_bigger False")
