"""benchmarks/weight_interpolation.py: mixes of two GenRec checkpoints' weights, scored like the second."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import weight_interpolation  # noqa: E402
from eval_seeds import load_genrec, score_seeds  # noqa: E402

from recbole_gen.quick_start import run_recbole_gen  # noqa: E402


def test_a_mix_is_the_weighted_sum_of_floating_tensors_and_keeps_the_tuned_integers():
    supervised = {"w": torch.tensor([0.0, 2.0]), "count": torch.tensor([1])}
    tuned = {"w": torch.tensor([4.0, 6.0]), "count": torch.tensor([3])}
    assert weight_interpolation.interpolate(supervised, tuned, 0.25)["w"].tolist() == [1.0, 3.0]
    assert weight_interpolation.interpolate(supervised, tuned, 0.0)["count"].tolist() == [3]
    assert weight_interpolation.interpolate(supervised, tuned, 1.5)["w"].tolist() == [6.0, 8.0]  # past the RL end


def test_checkpoints_of_different_models_are_refused_by_name():
    with pytest.raises(ValueError, match=r"'extra' is in only --rl"):
        weight_interpolation.interpolate({"w": torch.zeros(2)}, {"w": torch.zeros(2), "extra": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match=r"'w' has shape \(2,\) in --supervised and \(3,\) in --rl"):
        weight_interpolation.interpolate({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5)


def test_the_ends_of_the_path_score_as_the_two_checkpoints_and_a_saved_mix_loads_as_a_genrec(genrec_config, tmp_path):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "eval_samples": 1}
    first = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={**config, "seed": 1})["trainer"].saved_model_file
    second = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={**config, "seed": 2})["trainer"].saved_model_file
    rows = weight_interpolation.interpolation_rows(first, second, [0.0, 1.0], "valid", 1, {"near_copy_threshold": 0.5})
    ends = []
    for checkpoint in (first, second):  # scored alone, under the second's config (its seed; they differ only in it)
        _, _, trainer, valid_data, _ = load_genrec(checkpoint, overrides={"seed": 2})
        ends.append(float(score_seeds(trainer, valid_data, "valid", [2])[0]["targetsim"]))
    assert [values["targetsim"][0] for _, values in rows] == pytest.approx(ends, abs=1e-5)
    assert ends[0] != pytest.approx(ends[1], abs=1e-5)  # two models, so the check above tells them apart
    assert {"targetsim", "fd", "copyshare", "nearcopyshare"} <= set(rows[0][1])  # the override reached the evaluation
    weight_interpolation.save_mix(first, second, 0.0, tmp_path / "mix.pth")  # the first's weights, the second's config
    _, _, trainer, valid_data, _ = load_genrec(str(tmp_path / "mix.pth"))
    assert float(score_seeds(trainer, valid_data, "valid", [2])[0]["targetsim"]) == pytest.approx(ends[0], abs=1e-5)
