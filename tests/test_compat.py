"""The RecBole 1.2.1 workarounds in recbole_gen.compat."""

import collections
import os
import pickle

import numpy as np
import pytest
import torch
from recbole.evaluator.collector import DataStruct

from recbole_gen.compat import data_struct_to_cpu, load_checkpoint, save_checkpoint
from recbole_gen.config import MACHINE_KEYS, Config


def test_data_struct_to_cpu_keeps_non_tensors():
    struct = DataStruct()
    struct.set("data.num_items", 7)
    struct.set("data.count_items", collections.Counter({1: 3}))
    struct.set("rec.topk", torch.ones(2, 3))
    moved = data_struct_to_cpu(struct)
    assert moved.get("data.num_items") == 7
    assert moved.get("data.count_items") == collections.Counter({1: 3})
    assert torch.equal(moved.get("rec.topk"), torch.ones(2, 3))


def test_checkpoint_round_trip_rebuilds_config(fast_config, tmp_path):
    config = Config(model="SASRec", dataset="tiny", config_dict=fast_config)
    path = tmp_path / "model.pth"
    save_checkpoint(path, {"config": config, "state_dict": {"w": torch.arange(3.0)}, "best_valid_score": np.float64(0.5)})
    checkpoint = load_checkpoint(path)
    assert checkpoint["config"]["model"] == "SASRec"
    assert checkpoint["config"]["external"]["hidden_size"] == fast_config["hidden_size"]
    final = checkpoint["config"]["final"]
    assert final["n_heads"] == config["n_heads"] and final["topk"] == [10]  # defaults too, typed
    assert "device" not in final and "MODEL_TYPE" not in final  # derived again on load
    assert torch.equal(checkpoint["state_dict"]["w"], torch.arange(3.0))
    assert checkpoint["best_valid_score"] == 0.5
    rebuilt = Config.from_checkpoint(checkpoint["config"])
    assert {key: rebuilt[key] for key in final if key not in MACHINE_KEYS} == {key: value for key, value in final.items() if key not in MACHINE_KEYS}
    save_checkpoint(tmp_path / "again.pth", checkpoint)  # read, written back: its config as load_checkpoint gave it
    assert load_checkpoint(tmp_path / "again.pth")["config"] == checkpoint["config"]


def test_an_interrupted_save_leaves_the_old_checkpoint(fast_config, tmp_path, monkeypatch):
    config = Config(model="SASRec", dataset="tiny", config_dict=fast_config)
    path = tmp_path / "checkpoints" / "model.pth"
    save_checkpoint(path, {"config": config, "state_dict": {"w": torch.zeros(2)}})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as open() would have made it, not private

    def interrupted(state, file):
        open(file, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"config": config, "state_dict": {"w": torch.ones(2)}})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.zeros(2))
    assert os.listdir(path.parent) == ["model.pth"]  # no temporary file left behind


def test_a_config_entry_that_is_not_a_config_is_named(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"config": '{"model": 3}', "state_dict": {}}, path)
    with pytest.raises(ValueError, match="not a recbole_gen checkpoint config"):
        load_checkpoint(path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_objects_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "plain_recbole.pth"
    with open(path, "wb") as f:
        torch.save({"config": _Payload(), "state_dict": {}}, f, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(ValueError, match="without unpickling"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize("before", [False, True])
def test_recbole_models_leave_anomaly_detection_as_the_user_set_it(before):
    """RecBole's sine.py turns autograd anomaly detection on at import (every backward then ~2x slower);
    once recbole_gen is imported, loading any RecBole model leaves the switch where the user had it."""
    import subprocess
    import sys

    script = (f"import torch; torch.autograd.set_detect_anomaly({before}); import recbole_gen.quick_start; "
              "from recbole.utils import get_model; get_model('SINE'); get_model('SASRec'); "
              "print(torch.is_anomaly_enabled())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == str(before)
    unpatched = subprocess.run([sys.executable, "-c", "import torch; import recbole.model.sequential_recommender; "
                                "print(torch.is_anomaly_enabled())"], capture_output=True, text=True, check=True).stdout
    assert unpatched.strip().splitlines()[-1] == "True"  # the RecBole behaviour this guards against is still there
