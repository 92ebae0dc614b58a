"""Every workaround for a RecBole 1.2.1 bug lives here, each with its upstream issue.

- Checkpoints (RUCAIBox/RecBole#2212): RecBole pickles its whole ``Config`` into each checkpoint and
  reads checkpoints with a bare ``torch.load``. With torch >= 2.6 that load fails (``weights_only``
  defaults to True); with older torch it would unpickle arbitrary objects. We write checkpoints that
  hold only tensors and plain values (the config as a JSON string) and read them with
  ``weights_only=True`` on every torch version.
- Collector (RUCAIBox/RecBole#2131, #2191): ``Collector.get_data_struct`` calls ``.cpu()`` on every
  collected value, which crashes on the int/Counter that ``data.num_items`` / ``data.count_items`` hold.
- Not patched, pinned instead (setup.py): numpy < 2 (Config assigns ``np.float_``), pandas < 3 (the
  atomic-file loader), setuptools < 81 (ray 2.6.3, imported by ``recbole.quick_start``).
"""

import copy
import json

import numpy as np
import torch

CONFIG_KEY = "config"


def checkpoint_config(config):
    """The part of a RecBole ``Config`` needed to rebuild it, as a JSON string.

    Rebuilding from the external (user-given) settings reproduces the final config, since everything
    else is derived from the model's, dataset's and plugin's YAML files.
    """
    settings = {"model": config["model"], "dataset": config["dataset"], "config_dict": config.external_config_dict}
    try:
        return json.dumps(settings, sort_keys=True)
    except TypeError as err:
        raise TypeError(
            f"config values must be plain YAML types (str, int, float, bool, list, dict) to be saved in a checkpoint: {err}"
        ) from err


def _plain(value):
    """numpy scalars (RecBole's metric values, e.g. ``best_valid_score``) as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def save_checkpoint(path, state):
    """``torch.save`` a RecBole trainer state whose ``config`` is a ``Config`` object, safely loadable."""
    state = _plain(dict(state))
    state[CONFIG_KEY] = checkpoint_config(state[CONFIG_KEY])
    torch.save(state, path)


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint file not found: {path}") from None
    except Exception as err:
        raise ValueError(
            f"{path} is not a recbole_gen checkpoint that loads without unpickling code "
            f"(checkpoints written by plain RecBole pickle their Config; re-train with recbole_gen): {err}"
        ) from err
    checkpoint[CONFIG_KEY] = json.loads(checkpoint[CONFIG_KEY])
    return checkpoint


def data_struct_to_cpu(data_struct):
    """Move only the tensors of a RecBole ``DataStruct`` to the CPU (#2131, #2191)."""
    for key, value in data_struct._data_dict.items():
        if isinstance(value, torch.Tensor):
            data_struct._data_dict[key] = value.cpu()
    return copy.deepcopy(data_struct)
