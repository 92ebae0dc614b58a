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


def struct(shown, code_share, target):
    data = DataStruct()
    for key, value in {"gen.shown": shown, "gen.code_share": code_share, "gen.catalog": CATALOG, "gen.has_content": HAS_CONTENT,
                       "gen.target": torch.stack([torch.arange(len(target)), torch.tensor(target)], dim=1)}.items():
        data.set(key, value)
    return data


def metric(cls, threshold, code_share=None):
    register_generative_metrics()
    return cls({"seed": 0, "metric_decimal_place": 6, "near_copy_threshold": threshold, "near_copy_code_share": code_share,
                "personal_lift_samples": 10})


# user 0: an exact copy of item 1 (e0) and a near copy (cos(e0 + 0.1 e1, e0) = 0.995);
# user 1: one novel sample (e1 + e2, cos 0.707 to its closest item) and an exact copy of item 3 (e2);
# user 2: two novel samples, e0 + e3 and e1 + e3. User 1's novel sample shares 60% of its codes with an item.
NEAR = E[0] + 0.1 * E[1]
SHOWN = torch.stack([torch.stack([E[0], NEAR]), torch.stack([E[1] + E[2], E[2]]), torch.stack([E[0] + E[3], E[1] + E[3]])])
CODE_SHARE = torch.tensor([[1.0, 0.25], [0.6, 1.0], [0.0, 0.125]])  # 1: every code equal to an item's
TARGET = [1, 2, 4]  # e0, e1, e3


def test_copy_share_counts_exact_and_near_copies():
    result = metric(metrics.CopyShare, 0.99).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))
    assert result["copyshare"] == pytest.approx(2 / 6)
    assert result["nearcopyshare"] == pytest.approx(3 / 6)
    assert "nearcopyshare" not in metric(metrics.CopyShare, None).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))


def test_copy_share_counts_copies_by_codes():
    result = metric(metrics.CopyShare, None, code_share=0.5).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))
    assert result == {"copyshare": pytest.approx(2 / 6), "codecopyshare": pytest.approx(3 / 6)}  # the two exact ones, and user 1's 0.6
    assert "codecopyshare" not in metric(metrics.CopyShare, None).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))


def test_novel_target_sim_leaves_out_copies_by_codes():
    result = metric(metrics.NovelTargetSim, None, code_share=0.5).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))
    # user 1's one sample that is not an exact copy is a copy by codes: novel are user 0's NEAR (cos 1/sqrt(1.01)
    # to its target e0) and user 2's two samples (1/sqrt2 to e3 each)
    assert result["novelusers"] == pytest.approx(2 / 3)
    assert result["noveltargetsim"] == pytest.approx((1 / math.sqrt(1.01) + 1 / math.sqrt(2)) / 2, abs=1e-6)


@pytest.mark.parametrize("value", [0, 1.5, -0.2])
def test_a_code_share_outside_zero_to_one_is_refused_with_the_key(value):
    with pytest.raises(ValueError, match="config key 'near_copy_code_share' = .*in \\(0, 1\\]"):
        metric(metrics.CopyShare, None, code_share=value)


def test_novel_target_sim_uses_only_novel_samples():
    result = metric(metrics.NovelTargetSim, 0.99).calculate_metric(struct(SHOWN, CODE_SHARE, TARGET))
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


def test_a_planted_catalog_copy_counts_as_exact_and_a_perturbed_one_only_by_codes(genrec_config):
    config_dict = {**genrec_config, "epochs": 1, "metrics": ["TargetSim", "CopyShare"], "valid_metric": "TargetSim",
                   "gallery_users": 0, "eval_samples": 2}
    checkpoint = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config_dict)["trainer"].saved_model_file
    config, model, _, _, _, test_data = load_data_and_model(checkpoint)
    item = int(torch.nonzero(model.has_image).flatten()[3])
    planted = model.item_codes[item]
    perturbed = planted.clone()
    perturbed[0] = (perturbed[0] + 1) % model.tokenizer.codebook_size
    items, shares = model.closest_codes(torch.stack([planted, perturbed]))
    n_tokens = len(planted)
    assert items[0] == item and shares.tolist() == [1.0, (n_tokens - 1) / n_tokens]  # one code off: a copy by codes
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
    assert config["near_copy_code_share"] == 0.5 and result["codecopyshare"] == 1.0  # the default counts it
