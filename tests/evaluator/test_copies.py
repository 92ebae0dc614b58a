"""Copies of catalog items: counted by exact codes and by similarity, and left out of the novel metrics."""

import math

import pytest
import torch
from recbole.evaluator.collector import DataStruct

from recbole_gen.evaluator import metrics
from recbole_gen.evaluator.register import register_generative_metrics
from recbole_gen.model.sequential_recommender.genrec import Generation
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen

E = torch.eye(4)
CATALOG = torch.cat([torch.zeros(1, 4), E])  # row 0 padding; items 1..4 = e0..e3
HAS_CONTENT = torch.tensor([False, True, True, True, True])


def struct(shown, copied, target):
    data = DataStruct()
    for key, value in {"gen.shown": shown, "gen.copied": copied, "gen.catalog": CATALOG, "gen.has_content": HAS_CONTENT,
                       "gen.target": torch.stack([torch.arange(len(target)), torch.tensor(target)], dim=1)}.items():
        data.set(key, value)
    return data


def metric(cls, threshold):
    register_generative_metrics()
    return cls({"seed": 0, "metric_decimal_place": 6, "near_copy_threshold": threshold, "personal_lift_samples": 10})


# user 0: an exact copy of item 1 (e0) and a near copy (cos(e0 + 0.1 e1, e0) = 0.995);
# user 1: one novel sample (e1 + e2, cos 0.707 to its closest item) and an exact copy of item 3 (e2);
# user 2: two novel samples, e0 + e3 and e1 + e3.
NEAR = E[0] + 0.1 * E[1]
SHOWN = torch.stack([torch.stack([E[0], NEAR]), torch.stack([E[1] + E[2], E[2]]), torch.stack([E[0] + E[3], E[1] + E[3]])])
COPIED = torch.tensor([[True, False], [False, True], [False, False]])
TARGET = [1, 2, 4]  # e0, e1, e3


def test_copy_share_counts_exact_and_near_copies():
    result = metric(metrics.CopyShare, 0.99).calculate_metric(struct(SHOWN, COPIED, TARGET))
    assert result["copyshare"] == pytest.approx(2 / 6)
    assert result["nearcopyshare"] == pytest.approx(3 / 6)
    assert "nearcopyshare" not in metric(metrics.CopyShare, None).calculate_metric(struct(SHOWN, COPIED, TARGET))


def test_novel_target_sim_uses_only_novel_samples():
    result = metric(metrics.NovelTargetSim, 0.99).calculate_metric(struct(SHOWN, COPIED, TARGET))
    # user 0 has no novel sample; user 1's novel sample (e1 + e2)/sqrt2 has cos 1/sqrt2 to its target e1;
    # user 2's two novel samples each have cos 1/sqrt2 to its target e3 (copies would have scored 1)
    assert result["novelusers"] == pytest.approx(2 / 3)
    assert result["noveltargetsim"] == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    # user 1: 1/sqrt2 minus user 2's mean cos to e1, (0 + 1/sqrt2)/2; user 2: 1/sqrt2 minus user 1's cos to e3, 0
    expected = (1 / (2 * math.sqrt(2)) + 1 / math.sqrt(2)) / 2
    assert result["novelpersonallift"] == pytest.approx(expected, abs=1e-6)


def test_a_ranking_model_shows_only_copies(fast_config):
    config = {**fast_config, "epochs": 1, "metrics": ["Recall", "TargetSim", "CopyShare", "NovelTargetSim"], "valid_metric": "Recall@10"}
    result = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)["test_result"]
    assert result["copyshare"] == 1.0 and result["novelusers"] == 0.0 and "noveltargetsim" not in result


def test_a_planted_catalog_copy_counts_and_a_perturbed_one_does_not(genrec_config):
    config_dict = {**genrec_config, "epochs": 1, "metrics": ["TargetSim", "CopyShare"], "valid_metric": "TargetSim",
                   "gallery_users": 0, "eval_samples": 2}
    checkpoint = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config_dict)["trainer"].saved_model_file
    config, model, _, _, _, test_data = load_data_and_model(checkpoint)
    item = int(torch.nonzero(model.has_image).flatten()[3])
    planted = model.item_codes[item]
    perturbed = planted.clone()
    perturbed[0] = (perturbed[0] + 1) % model.tokenizer.codebook_size
    assert model.copied_items(torch.stack([planted, perturbed])).tolist() == [item, 0]
    assert not (model.item_codes == perturbed).all(dim=1).any()

    def generate(interaction, num_samples=1, generation_config=None, seed=0):
        codes = torch.stack([planted, perturbed]).repeat(len(interaction), 1)  # each user: the copy, then the perturbed
        return Generation(codes=codes, images=model.tokenizer.decode(codes))

    model.generate = generate
    from recbole_gen.trainer import get_trainer

    trainer = get_trainer(config["MODEL_TYPE"], "GenRec")(config, model)
    result = trainer.evaluate(test_data, load_best_model=False)
    trainer.tensorboard.close()
    assert result["copyshare"] == 0.5
