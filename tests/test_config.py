"""recbole_gen's Config: plugin defaults merged over RecBole's, user settings over both."""

import torch

from recbole_gen.config import Config


def test_plugin_defaults_are_merged(fast_config):
    config = Config(model="SASRec", dataset="tiny", config_dict=fast_config)
    assert config["eval_encoder"] == "fit"
    assert "TargetSim" in config["metrics"] and "Recall" in config["metrics"]
    assert config["train_neg_sample_args"]["distribution"] == "none"  # SASRec's CE loss needs it off
    assert config["n_layers"] == fast_config["n_layers"]  # user value beats RecBole's SASRec.yaml


def test_user_settings_override_plugin_defaults(fast_config):
    config = Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "personal_lift_samples": 3})
    assert config["personal_lift_samples"] == 3


def test_ml100k_item_text_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = Config(model="SASRec", dataset="ml-100k", config_dict={"use_gpu": False})
    assert config["text_fields"] == ["movie_title", "release_year", "class"]
    assert config["data_path"].endswith("dataset_example/ml-100k")  # the copy inside RecBole's wheel


def test_cpu_when_no_gpu(fast_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "use_gpu": True})
    assert config["device"] == torch.device("cpu")
