"""Reference recommenders: each shows the item its rule says, and trains nothing."""

import os

import torch
from recbole.data import create_dataset, data_preparation

from recbole_gen.config import Config
from recbole_gen.quick_start import run_recbole_gen
from recbole_gen.utils import get_model


def _first_test_batch(model_name, fast_config):
    config = Config(model=model_name, dataset="tiny", config_dict=fast_config)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = get_model(model_name)(config, train_data._dataset)
    interaction = next(iter(test_data))[0]
    return model, train_data, interaction


def test_last_item_shows_the_last_history_item(fast_config):
    model, _, interaction = _first_test_batch("LastItem", fast_config)
    shown = model.full_sort_predict(interaction).argmax(dim=1)
    lengths = interaction[model.ITEM_SEQ_LEN]
    last = interaction[model.ITEM_SEQ][torch.arange(len(lengths)), lengths - 1]
    assert torch.equal(shown, last)


def test_pop_item_shows_the_most_frequent_training_item(fast_config):
    model, train_data, interaction = _first_test_batch("PopItem", fast_config)
    counts = torch.bincount(train_data._dataset.inter_feat[model.ITEM_ID], minlength=model.n_items)
    shown = model.full_sort_predict(interaction).argmax(dim=1)
    assert (counts[shown] == counts[1:].max()).all()


def test_random_item_is_seeded_and_independent_of_call_order(fast_config):
    first, _, interaction = _first_test_batch("RandomItem", fast_config)
    second, _, _ = _first_test_batch("RandomItem", fast_config)
    scores = first.full_sort_predict(interaction)
    assert torch.equal(scores, first.full_sort_predict(interaction))
    assert torch.equal(scores, second.full_sort_predict(interaction))
    assert not torch.equal(scores[0], scores[1])


def test_reference_runs_without_training(fast_config):
    result = run_recbole_gen(model="LastItem", dataset="tiny", config_dict=fast_config)
    assert list(result["trainer"].model.parameters()) == []
    assert result["trainer"].optimizer is None
    assert os.path.exists(result["trainer"].saved_model_file)
    # A catalog item is its own nearest catalog item.
    assert result["test_result"]["novelty"] == 0.0


def test_target_item_cheats_and_calibrates_the_metrics(fast_config):
    config = {**fast_config, "metric_decimal_place": 6}
    result = run_recbole_gen(model="TargetItem", dataset="tiny", config_dict=config)["test_result"]
    assert result["recall@10"] == 1.0 and result["ndcg@10"] == 1.0
    assert result["targetsim"] == 1.0 and result["genrecall@10"] == 1.0
    assert result["fd"] < 1e-6  # the shown items are the targets themselves
    assert result["personallift"] > 0
