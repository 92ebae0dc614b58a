"""Generative evaluation inside RecBole trainers: the values, and the catalog computed once a run."""

import numpy as np
import pytest
import torch
from recbole.trainer import Trainer

import recbole_gen.trainer.trainer as trainer_module
from recbole_gen.quick_start import run_recbole_gen
from recbole_gen.trainer.trainer import GenerativeEvaluationMixin, with_generative_evaluation


def test_wraps_any_recbole_trainer_once():
    wrapped = with_generative_evaluation(Trainer)
    assert issubclass(wrapped, Trainer) and issubclass(wrapped, GenerativeEvaluationMixin)
    assert with_generative_evaluation(Trainer) is wrapped
    assert with_generative_evaluation(wrapped) is wrapped


def test_target_sim_is_the_top1_item_against_the_next_item(fast_config):
    config = {**fast_config, "metrics": ["TargetSim", "Recall"], "valid_metric": "Recall@10", "metric_decimal_place": 6}
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)
    trainer = result["trainer"]
    catalog = trainer.eval_collector.data_struct.get("gen.catalog")

    # Recompute by hand from the model's own scores on the test users.
    from recbole.data import create_dataset, data_preparation

    _, _, test_data = data_preparation(trainer.config, create_dataset(trainer.config))
    sims = []
    with torch.no_grad():
        for interaction, _, positive_u, positive_i in test_data:
            scores = trainer.model.full_sort_predict(interaction)
            scores[:, 0] = -np.inf
            shown = scores.argmax(dim=1)
            target = torch.zeros_like(shown)
            target[positive_u] = positive_i
            sims.append(torch.nn.functional.cosine_similarity(catalog[shown], catalog[target], dim=1))
    assert abs(torch.cat(sims).mean().item() - result["test_result"]["targetsim"]) < 1e-5


def test_catalog_is_embedded_once_per_run(fast_config, monkeypatch):
    calls = []
    real = trainer_module.catalog_encoder

    def counting(config, dataset):
        calls.append(1)
        return real(config, dataset)

    monkeypatch.setattr(trainer_module, "catalog_encoder", counting)
    run_recbole_gen(model="GRU4Rec", dataset="tiny", config_dict={**fast_config, "epochs": 3})
    assert len(calls) == 1  # three validations and one test


@pytest.mark.parametrize("model", ["SASRec", "GenRec"])
def test_evaluation_leaves_every_random_stream_alone(genrec_config, tiny_dataset, model):
    from recbole.data import create_dataset, data_preparation

    config = {**genrec_config, "epochs": 1, "gallery_users": 2}
    trainer = run_recbole_gen(model=model, dataset="tiny", config_dict=config)["trainer"]
    _, valid_data, test_data = data_preparation(trainer.config, create_dataset(trainer.config))
    fresh = type(trainer)(trainer.config, trainer.model)
    fresh.config["encoder_cache_dir"] = str(tiny_dataset / "cold_encoder_cache")  # evaluation fits the encoder again
    torch.manual_seed(123)
    before = torch.get_rng_state()
    fresh.evaluate(valid_data, load_best_model=False)
    fresh.evaluate(test_data, load_best_model=False)
    assert torch.equal(before, torch.get_rng_state())


def scripted_validations(monkeypatch, validations):
    """RecBole's validation replaced by ``(targetsim, fd)`` pairs, one per epoch (the mixin's selection runs)."""
    results = iter(validations)

    def valid_epoch(self, valid_data, show_progress=False):
        targetsim, fd = next(results)
        return targetsim, {"targetsim": targetsim, "fd": fd}

    monkeypatch.setattr(Trainer, "_valid_epoch", valid_epoch)


@pytest.mark.parametrize("cap, kept", [(None, (0.05, 0.20)), (0.1, (0.03, 0.05)), (0.01, (0.03, 0.05))])
def test_valid_fd_max_keeps_the_best_validation_within_the_cap(fast_config, monkeypatch, cap, kept):
    # Without a cap the best TargetSim is kept; with one, the best within it; with none within, the closest to it.
    validations = [(0.05, 0.20), (0.03, 0.05), (0.02, 0.08), (0.04, 0.30)]
    scripted_validations(monkeypatch, validations)
    config = {**fast_config, "epochs": 4, "stopping_step": 10, "metrics": ["TargetSim", "FD"],
              "valid_metric": "TargetSim", "valid_fd_max": cap}
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)
    assert (result["best_valid_result"]["targetsim"], result["best_valid_result"]["fd"]) == kept
    kept_file = result["trainer"].saved_model_file
    assert torch.load(kept_file, weights_only=True)["epoch"] == validations.index(kept)


@pytest.mark.parametrize("change, message", [
    ({"valid_fd_max": 0}, r"'valid_fd_max' = 0: expected a positive FD"),
    ({"metrics": ["TargetSim"]}, r"'valid_fd_max' caps FD, which is not computed"),
    ({"valid_metric_bigger": False}, r"'valid_fd_max' needs a 'valid_metric' where bigger is better"),
])
def test_valid_fd_max_errors_name_the_key(fast_config, change, message):
    config = {**fast_config, "metrics": ["TargetSim", "FD"], "valid_metric": "TargetSim", "valid_fd_max": 0.1, **change}
    with pytest.raises(ValueError, match=message):
        run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)
