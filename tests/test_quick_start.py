"""The plugin's entry points on a tiny dataset: parity with plain RecBole, checkpoints, bad input."""

import subprocess
import sys

import pytest
import torch

from recbole_gen.config import Config
from recbole_gen.quick_start import load_data_and_model, objective_function, run_recbole_gen

GENERATIVE = ["targetsim", "historysim", "personallift", "genrecall@10", "genndcg@10", "novelty", "diversity", "fd"]
SHARED = {"metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10", "train_neg_sample_args": None}


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec"])
def test_ranking_metrics_equal_plain_recbole(fast_config, model):
    from recbole.quick_start import run_recbole

    config = {**fast_config, **SHARED}
    plain = run_recbole(model=model, dataset="tiny", config_dict=dict(config), saved=False)
    ours = run_recbole_gen(model=model, dataset="tiny", config_dict=dict(config), saved=False)
    assert ours["test_result"] == plain["test_result"]
    assert ours["best_valid_result"] == plain["best_valid_result"]

    # The generative metrics ride along without changing RecBole's numbers.
    config["metrics"] = SHARED["metrics"] + ["TargetSim", "PersonalLift", "FD"]
    with_generative = run_recbole_gen(model=model, dataset="tiny", config_dict=config, saved=False)["test_result"]
    assert {k: with_generative[k] for k in plain["test_result"]} == plain["test_result"]


def test_default_run_reports_every_generative_metric(fast_config):
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=fast_config)["test_result"]
    for metric in GENERATIVE + ["recall@10", "ndcg@10"]:
        assert metric in result
    assert -1.0 <= result["targetsim"] <= 1.0
    assert result["fd"] >= 0.0


def test_checkpoint_loads_without_unpickling(fast_config):
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=fast_config)
    checkpoint_file = result["trainer"].saved_model_file
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    assert isinstance(checkpoint["config"], str)

    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint_file)
    assert config["model"] == "SASRec" and config["hidden_size"] == fast_config["hidden_size"]
    trained = result["trainer"].model.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor.cpu(), trained[name].cpu()), name


def test_objective_function_for_hyper_parameter_search(fast_config):
    result = objective_function(config_dict={**fast_config, "model": "GRU4Rec", "dataset": "tiny"}, saved=False)
    assert result["model"] == "GRU4Rec"
    assert result["valid_score_bigger"] is True
    assert result["best_valid_score"] == result["best_valid_result"]["ndcg@10"]
    assert "targetsim" in result["test_result"]


def test_import_and_run_do_not_need_ray(fast_config):
    code = (
        "import sys; from recbole_gen.quick_start import run_recbole_gen; "
        f"run_recbole_gen(model='GRU4Rec', dataset='tiny', config_dict={fast_config!r}); "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=fast_config["data_path"])


def test_unknown_model_lists_available(fast_config):
    with pytest.raises(ValueError, match=r"unknown model 'SASRecc'.*sasrec.*lastitem"):
        run_recbole_gen(model="SASRecc", dataset="tiny", config_dict=fast_config)


def test_unknown_metric_is_named(fast_config):
    with pytest.raises(ValueError, match=r"unknown metric 'TargetSimm'.*targetsim"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict={**fast_config, "metrics": ["Recall", "TargetSimm"]})


def test_missing_image_dir_is_named(fast_config, tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match=r"'image_dir'.*no-such-folder"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict={**fast_config, "image_dir": str(missing)})


def test_two_image_sources_fail_before_training(fast_config, tmp_path):
    with pytest.raises(ValueError, match=r"'image_dir'.*'image_field'.*not both"):
        Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "image_dir": str(tmp_path), "image_field": "poster"})


@pytest.mark.parametrize("key, value", [("epochs", "ten"), ("image_size", 32.5), ("learning_rate", "fast"), ("text_fields", "movie_title")])
def test_wrong_type_names_key(fast_config, key, value):
    with pytest.raises(TypeError, match=rf"config key '{key}' must be"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict={**fast_config, key: value})


def test_wrong_type_in_yaml_file_names_key(fast_config, tmp_path):
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("epochs: [1, 2]\n")
    config_dict = {key: value for key, value in fast_config.items() if key != "epochs"}
    with pytest.raises(TypeError, match=r"config key 'epochs' must be int, got list"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_file_list=[str(config_file)], config_dict=config_dict)


def test_valid_metric_must_be_computed(fast_config):
    with pytest.raises(ValueError, match=r"'valid_metric' = 'NDCG@10' is not computed"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict={**fast_config, "metrics": ["Recall", "TargetSim"]})
