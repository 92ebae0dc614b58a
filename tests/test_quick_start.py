"""The plugin's entry points on a tiny dataset: parity with plain RecBole, checkpoints, bad input."""

import subprocess
import sys

import pytest
import torch

from recbole_gen.config import Config
from recbole_gen.quick_start import load_data_and_model, objective_function, run_recbole_gen

from conftest import run_stopped_after_first_epoch

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
    run = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=fast_config)
    assert run["trainer"].tensorboard.file_writer is None  # closed: no writer thread outlives the run
    result = run["test_result"]
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


def test_objective_function_for_hyper_parameter_search(fast_config, monkeypatch):
    # a search's trial values win over the command line (in a ray worker argv holds ray's own flags)
    monkeypatch.setattr(sys, "argv", ["search", "--model=SASRec", "--epochs=5"])
    result = objective_function(config_dict={**fast_config, "model": "GRU4Rec", "dataset": "tiny", "epochs": 1}, saved=False)
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


@pytest.mark.parametrize("model", ["BPR", "LightGCN"])
def test_general_models_run_with_their_own_negative_sampling(fast_config, model):
    config = Config(model=model, dataset="tiny", config_dict=fast_config)
    assert config["train_neg_sample_args"]["distribution"] == "uniform"  # RecBole's default: BPR needs negatives
    result = run_recbole_gen(model=model, dataset="tiny", config_dict={**fast_config, "epochs": 1})["test_result"]
    assert "recall@10" in result
    # their shown item is their top-1: the generative metrics apply, against all held-out items of a user
    assert -1.0 <= result["targetsim"] <= 1.0 and result["historysim"] == result["historysim"]


def test_general_model_numbers_equal_plain_recbole(fast_config):
    from recbole.quick_start import run_recbole

    config = {**fast_config, "metrics": ["Recall", "NDCG"], "valid_metric": "NDCG@10", "topk": [10]}
    plain = run_recbole(model="BPR", dataset="tiny", config_dict=dict(config), saved=False)
    ours = run_recbole_gen(model="BPR", dataset="tiny", config_dict=dict(config), saved=False)
    assert ours["test_result"] == plain["test_result"]


def test_context_aware_models_keep_recboles_labeled_evaluation(fast_config):
    config = Config(model="FM", dataset="tiny", config_dict=fast_config)
    assert config["metrics"] == ["AUC", "LogLoss"] and config["eval_args"]["mode"]["test"] == "labeled"
    config_dict = {**fast_config, "epochs": 1, "threshold": {"rating": 4}, "load_col": {"inter": ["user_id", "item_id", "rating"]}}
    result = run_recbole_gen(model="FM", dataset="tiny", config_dict=config_dict)["test_result"]
    assert set(result) == {"auc", "logloss"}


def test_sampled_ranking_evaluation_keeps_one_row_per_user(fast_config):
    from recbole.data import create_dataset, data_preparation
    from recbole.quick_start import run_recbole

    uni100 = {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}
    config = {**fast_config, "eval_args": uni100, "metrics": ["Recall", "NDCG", "TargetSim", "HistorySim"], "valid_metric": "NDCG@10"}
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)
    assert result["test_result"]["historysim"] == result["test_result"]["historysim"]  # computed, not NaN
    trainer = result["trainer"]
    _, _, test_data = data_preparation(trainer.config, create_dataset(trainer.config))
    batch = next(iter(test_data))
    interaction, scores, _, _ = trainer._neg_sample_batch_eval(batch)
    candidates, row_idx = batch[0], batch[1]
    assert len(interaction) == len(scores) < len(candidates)  # one row per user, as the scores
    for row in range(len(scores)):  # each row is its user's, with that user's history
        assert interaction["user_id"][row] == candidates["user_id"][row_idx == row][0]
        assert torch.equal(interaction["item_id_list"][row], candidates["item_id_list"][row_idx == row][0])
    # and RecBole's numbers are plain RecBole's (which needs SASRec's CE loss told there are no negatives)
    config.update(metrics=["Recall", "NDCG"], train_neg_sample_args=None)
    plain = run_recbole(model="SASRec", dataset="tiny", config_dict=dict(config), saved=False)["test_result"]
    assert run_recbole_gen(model="SASRec", dataset="tiny", config_dict=dict(config), saved=False)["test_result"] == plain


@pytest.mark.parametrize("model", ["SASRec", "BPR", "GenRec"])
def test_a_run_stopped_after_an_epoch_resumes_to_the_same_numbers(fast_config, genrec_config, monkeypatch, model):
    config = {**(genrec_config if model == "GenRec" else fast_config), "epochs": 3, "gallery_users": 0}
    uninterrupted = run_recbole_gen(model=model, dataset="tiny", config_dict=config)

    stopped = run_stopped_after_first_epoch(monkeypatch, model=model, dataset="tiny", config_dict=config)
    resumed = run_recbole_gen(model=model, dataset="tiny", config_dict=config, resume=stopped)
    assert resumed["best_valid_result"] == uninterrupted["best_valid_result"]
    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["trainer"].start_epoch == 1


def test_resume_without_a_resume_state_is_explained(fast_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="no resume state"):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict=fast_config, resume=str(tmp_path / "SASRec-x.pth"))
