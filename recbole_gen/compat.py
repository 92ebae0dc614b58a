"""Every workaround for a RecBole 1.2.1 bug lives here, each with its upstream issue.

- Checkpoints (RUCAIBox/RecBole#2212): RecBole pickles its whole ``Config`` into each checkpoint and
  reads checkpoints with a bare ``torch.load``. With torch >= 2.6 that load fails (``weights_only``
  defaults to True); with older torch it would unpickle arbitrary objects. We write checkpoints that
  hold only tensors and plain values (the config as a JSON string: the user's settings and the final,
  typed config), atomically, and read them with ``weights_only=True`` on every torch version.
- ``Config`` calls ``eval()`` on string values (``_convert_config_dict``), reads YAML with
  ``yaml.FullLoader`` and always reads ``sys.argv``: recbole_gen's ``Config`` overrides all three
  (see config.py), so no config, file or checkpoint string is ever evaluated.
- ``KD_DAGFM`` builds its teacher with ``eval(config["teacher"])``: :func:`check_evaluated_keys` lets
  only a bare model name through.
- Collector (RUCAIBox/RecBole#2131, #2191): ``Collector.get_data_struct`` calls ``.cpu()`` on every
  collected value, which crashes on the int/Counter that ``data.num_items`` / ``data.count_items`` hold.
- Distributed runs on the CPU (no upstream issue found): RecBole 1.2.1 joins a distributed run with nccl
  on cuda devices only; ``Config._init_device`` (config.py) joins with gloo on the CPU. Its trainer then
  wraps the model in ``DistributedDataParallel(model, device_ids=[local_rank])``, which torch refuses for
  a CPU model (and for a model with nothing to train, such as a reference rule), opens a tensorboard
  event file in every process, and creates ``checkpoint_dir`` check-then-create in every process (so do
  the log folders, see quick_start.py), which races: :func:`distributed_trainer` builds a trainer without
  any of these. The ``checkpoint_dir`` race is not distributed-only: trainers of parallel hyper-parameter
  trials (ray tune) race on it too, so it is created for every trainer.
- Distributed evaluation (RUCAIBox/RecBole#1872, closed unmerged): the DistributedSampler pads each
  process's share with repeated users and ``_map_reduce`` averages the processes' metrics, weighted by
  4 x their batch count (``len(batched_data)`` of a 4-tuple). Kept for RecBole's own ranking metrics
  (exact when the users split evenly across processes); the generative metrics are computed on every
  process's users gathered, each user once (``GenerativeCollector``).
- Anomaly detection (no upstream issue found): ``recbole/model/sequential_recommender/sine.py`` calls
  ``torch.autograd.set_detect_anomaly(True)`` when it is imported, which RecBole does for every sequential
  model, so every later backward pass in the process records tracebacks and checks for NaNs. That made
  every fit and training epoch about 2x slower (the image tokenizer's fit: 15.6 s against 8 s an epoch). We
  import that package once, here, and put the switch back where it was before.
- Not patched, pinned instead (setup.py): numpy < 2 (Config assigns ``np.float_``), pandas < 3 (the
  atomic-file loader), scipy < 1.13 (graph models call ``dok_matrix._update``, RUCAIBox/RecBole#2034),
  setuptools < 81 (ray 2.6.3, imported by ``recbole.quick_start``).
"""

import contextlib
import copy
import importlib
import json
import os
import re

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

_ANOMALY_DETECTION = torch.is_anomaly_enabled()
importlib.import_module("recbole.model.sequential_recommender")  # its sine.py turns anomaly detection on
import recbole.trainer.trainer as recbole_trainer  # noqa: E402

torch.autograd.set_detect_anomaly(_ANOMALY_DETECTION)

from recbole_gen.fitting import atomic_file

CONFIG_KEY = "config"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_safe(value):
    """``value`` with numpy scalars as Python numbers and tuples as lists; None where it holds anything
    JSON cannot carry (enums, devices: RecBole derives those again)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [json_safe(item) for item in value]
        return None if any(item is None and original is not None for item, original in zip(items, value)) else items
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        items = {key: json_safe(item) for key, item in value.items()}
        return None if any(items[key] is None and value[key] is not None for key in value) else items
    return None


def checkpoint_config(config):
    """What rebuilds a RecBole ``Config`` (see ``Config.from_checkpoint``), as a JSON string: the model,
    the dataset, the user's settings (``external``) and every plain value of the final config (``final``)."""
    external = {key: json_safe(value) for key, value in config.external_config_dict.items()}
    dropped = [key for key, value in external.items() if value is None and config.external_config_dict[key] is not None]
    if dropped:
        raise TypeError(
            f"config keys {dropped} hold values that are not plain YAML types (str, int, float, bool, list, dict) "
            "and cannot be saved in a checkpoint"
        )
    return json.dumps({"model": config["model"], "dataset": config["dataset"], "external": external,
                       "final": plain_final_config(config)}, sort_keys=True)


def plain_final_config(config):
    """Every value of the final config that JSON can carry (what RecBole derives again is left out)."""
    return {key: safe for key, value in config.final_config_dict.items() if (safe := json_safe(value)) is not None or value is None}


def _plain(value):
    """numpy scalars (RecBole's metric values, e.g. ``best_valid_score``) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def save_checkpoint(path, state):
    """``torch.save`` a RecBole trainer state whose ``config`` is a ``Config`` object (or a checkpoint config
    as :func:`load_checkpoint` returns it, for a checkpoint read, changed and written back), safely loadable,
    through a temporary file renamed into place (an interrupted save leaves the old file intact)."""
    state = _plain(dict(state))
    config = state[CONFIG_KEY]
    state[CONFIG_KEY] = json.dumps(config, sort_keys=True) if isinstance(config, dict) else checkpoint_config(config)
    with atomic_file(path) as staging:
        torch.save(state, staging)


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects.

    The ``config`` entry comes back as a dict (model, dataset, external, final). Checkpoints of earlier
    recbole_gen versions (only the user's settings, as ``config_dict``) read as ``external`` with an
    empty ``final``.
    """
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    except Exception as err:
        raise ValueError(
            f"{path} is not a recbole_gen checkpoint that loads without unpickling code "
            f"(checkpoints written by plain RecBole pickle their Config; re-train with recbole_gen): {err}"
        ) from err
    try:
        saved = json.loads(checkpoint[CONFIG_KEY])
        if "config_dict" in saved:
            saved = {"model": saved["model"], "dataset": saved["dataset"], "external": saved["config_dict"], "final": {}}
        if not (isinstance(saved["model"], str) and isinstance(saved["dataset"], str) and isinstance(saved["external"], dict)
                and isinstance(saved["final"], dict)):
            raise TypeError("model and dataset must be strings, external and final dicts")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: its '{CONFIG_KEY}' entry is not a recbole_gen checkpoint config: {err}") from None
    checkpoint[CONFIG_KEY] = saved
    return checkpoint


def check_evaluated_keys(config):
    """Refuse values RecBole 1.2.1 would pass to ``eval()`` unless they are a bare name."""
    if config["model"] == "KD_DAGFM" and "teacher" in config:
        teacher = config["teacher"]
        if not (isinstance(teacher, str) and _IDENTIFIER.fullmatch(teacher)):
            raise ValueError(f"config key 'teacher' must be a model class name (RecBole evaluates it), got {teacher!r}")


def data_struct_to_cpu(data_struct):
    """Move only the tensors of a RecBole ``DataStruct`` to the CPU (#2131, #2191)."""
    for key, value in data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            data_struct._data_dict[key] = value.cpu()
    return copy.deepcopy(data_struct)


class _NoTensorboard:
    """A tensorboard writer that writes nothing: every process but the first of a machine gets one."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _data_parallel(module, device_ids):
    if not any(parameter.requires_grad for parameter in module.parameters()):
        return module  # nothing to synchronise; DDP refuses such a module
    on_cpu = next(module.parameters()).device.type == "cpu"
    return DistributedDataParallel(module, device_ids=None if on_cpu else device_ids)


@contextlib.contextmanager
def distributed_trainer(config):
    """Build a RecBole trainer inside this block: in a distributed run its model is wrapped in DDP on the CPU
    too (without device ids), a model with nothing to train is not wrapped, only the first process of each
    machine (``local_rank`` 0, the one that writes checkpoints) opens a tensorboard event file; and in every
    run ``checkpoint_dir`` exists before RecBole's check-then-create, which trainers starting at once (the
    processes of a distributed run, parallel ray trials) race on."""
    os.makedirs(config["checkpoint_dir"], exist_ok=True)
    if config["single_spec"]:
        yield
        return
    saved = recbole_trainer.DistributedDataParallel, recbole_trainer.get_tensorboard
    recbole_trainer.DistributedDataParallel = _data_parallel
    if config["local_rank"] != 0:
        recbole_trainer.get_tensorboard = lambda logger: _NoTensorboard()
    try:
        yield
    finally:
        recbole_trainer.DistributedDataParallel, recbole_trainer.get_tensorboard = saved
