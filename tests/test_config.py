"""recbole_gen's Config: plugin defaults merged over RecBole's, user settings over both."""

import pytest
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


def test_unknown_keys_are_named_with_the_closest_known_one(fast_config, caplog):
    Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "learning_rte": 0.01, "zzz_qqq": 1})
    assert "config key 'learning_rte'" in caplog.text and "did you mean 'learning_rate'" in caplog.text
    assert "config key 'zzz_qqq'" in caplog.text
    assert "'hidden_size'" not in caplog.text  # a known key of the model is not flagged


def test_strings_are_read_as_literals_never_evaluated(fast_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "epochs": "3", "topk": "[5, 10]",
                                                                  "note": "__import__('pathlib').Path('PWNED').touch()"})
    assert config["epochs"] == 3 and config["topk"] == [5, 10]
    assert config["note"] == "__import__('pathlib').Path('PWNED').touch()"
    assert not (tmp_path / "PWNED").exists()


def test_yaml_files_cannot_build_python_objects(fast_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "evil.yaml"
    config_file.write_text("epochs: !!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(ValueError, match=r"evil.yaml.*not plain YAML"):
        Config(model="SASRec", dataset="tiny", config_file_list=[str(config_file)], config_dict=fast_config)
    assert not (tmp_path / "PWNED").exists()


def test_negative_sampling_defaults_follow_the_model(fast_config):
    assert Config(model="BPR", dataset="tiny", config_dict=fast_config)["train_neg_sample_args"]["distribution"] == "uniform"
    assert Config(model="GRU4Rec", dataset="tiny", config_dict=fast_config)["train_neg_sample_args"]["distribution"] == "none"
    bpr_loss = Config(model="SASRec", dataset="tiny", config_dict={**fast_config, "loss_type": "BPR"})
    assert bpr_loss["train_neg_sample_args"]["distribution"] == "uniform"  # a BPR-loss SASRec needs its negatives
