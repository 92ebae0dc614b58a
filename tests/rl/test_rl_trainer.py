"""The RL stage on a tiny dataset with tiny models built in the test."""

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_gen.config import Config
from recbole_gen.model.sequential_recommender.genrec import GenRec, Generation
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen
from recbole_gen.rl.reward import Rewards
from recbole_gen.trainer import GenRecRLTrainer, get_trainer
from recbole_gen.trainer.rl_trainer import FUTURE_FIELD, future_items

from conftest import run_stopped_after_first_epoch, tiny_janus

# One reward fit (the default is an ensemble of four) keeps these tests fast; ensembles have tests of their own,
# and tests/benchmarks/test_run_benchmark.py runs the default RL stage end to end.
RL = {"rl_batch_size": 4, "rl_group_size": 4, "rl_reward_fit_epochs": 1, "rl_reward_ensemble": 1, "gallery_users": 0}


def build(config_dict):
    config = Config(model="GenRec", dataset="tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = GenRec(config, train_data._dataset)
    return config, model, train_data


class CodeZeroShare:
    """A synthetic reward: the share of codes that are code 0."""

    needs_expectation = False

    def __call__(self, generation, copied, targets, group_size, scores=None):
        return Rewards(total=(generation.codes == 0).float().mean(dim=1).cpu(), terms={})


code_zero_share = CodeZeroShare()


def run_steps(config_dict, steps, reward=code_zero_share):
    config, model, train_data = build(config_dict)
    trainer = GenRecRLTrainer(config, model)
    trainer.model.train()  # as _train_epoch: the frozen user encoder stays in eval mode
    rows = next(trainer.training_rows(train_data))
    records = [trainer.grpo_step(rows, reward) for _ in range(steps)]
    trainer.tensorboard.close()  # its writer thread would outlive the test's folders
    return trainer, records


@pytest.mark.parametrize("scale", ["group", "batch"])
def test_grpo_raises_a_synthetic_reward_within_a_few_steps(genrec_config, scale):
    _, records = run_steps({**genrec_config, **RL, "rl_learning_rate": 0.01, "rl_kl_weight": 0.0, "rl_advantage_scale": scale}, steps=12)
    rewards = [r["reward_mean"] for r in records]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.02
    assert records[-1]["kl"] > 0


def test_grpo_trains_the_janus_generator(genrec_config, tiny_dataset):
    tiny_janus(tiny_dataset / "janus")
    trainer, records = run_steps({**genrec_config, **RL, "generator_path": str(tiny_dataset / "janus"), "rl_learning_rate": 0.01,
                                  "rl_kl_weight": 0.0}, steps=3)
    assert type(trainer.model.generator).__name__ == "JanusGenerator"
    assert records[-1]["kl"] > 0 and all(r["reward_mean"] == r["reward_mean"] for r in records)


@pytest.mark.parametrize("key, value", [("rl_algorithm", "ppo"), ("rl_advantage_scale", "global")])
def test_unknown_rl_choices_are_refused_naming_the_key(genrec_config, key, value):
    config, model, _ = build({**genrec_config, **RL, key: value})
    with pytest.raises(ValueError, match=f"config key '{key}' = '{value}': expected one of"):
        GenRecRLTrainer(config, model)


class CopiedSeen:
    """A reward of 0 that records which samples the trainer marked as copies."""

    needs_expectation = False

    def __call__(self, generation, copied, targets, group_size, scores=None):
        self.copied = copied
        return Rewards(total=torch.zeros(len(copied)), terms={})


@pytest.mark.parametrize("code_share", [1.0, 0.5])
def test_copies_for_the_penalty_are_counted_at_the_configured_code_share(genrec_config, code_share):
    config, model, train_data = build({**genrec_config, **RL, "rl_copy_code_share": code_share})
    trainer = GenRecRLTrainer(config, model)
    trainer.tensorboard.close()
    rows = next(trainer.training_rows(train_data))[:2]
    item = model.item_codes[int(torch.nonzero(model.has_image).flatten()[0])]
    edited = item.clone()
    edited[0] = (edited[0] + 1) % model.tokenizer.codebook_size  # all codes but one equal to the item's
    codes = torch.stack([item, edited, item, edited])
    reward = CopiedSeen()
    trainer.rewards(reward, rows, Generation(codes=codes, images=model.tokenizer.decode(codes)))
    assert reward.copied.tolist() == [True, code_share < 1] * 2


def test_a_copy_code_share_outside_zero_to_one_is_refused(genrec_config):
    config, model, _ = build({**genrec_config, **RL, "rl_copy_code_share": 0.0})
    with pytest.raises(ValueError, match="config key 'rl_copy_code_share' = 0.0: expected a share"):
        GenRecRLTrainer(config, model)


@pytest.mark.parametrize("key, value, expected", [("rl_batch_size", 1, "from 2"), ("rl_batch_size", 33, "from 2 .* to train_batch_size = 32"),
                                                   ("rl_group_size", 1, "of at least 2")])
def test_rl_batch_and_group_sizes_that_cannot_make_a_step_are_refused(genrec_config, key, value, expected):
    config, model, _ = build({**genrec_config, **RL, key: value})
    with pytest.raises(ValueError, match=f"config key '{key}' = {value}: expected an integer {expected}"):
        GenRecRLTrainer(config, model)


def test_training_without_a_next_item_image_is_an_error_not_an_endless_pass(genrec_config):
    config, model, train_data = build({**genrec_config, **RL})
    model.has_image[:] = False
    trainer = GenRecRLTrainer(config, model)
    trainer.tensorboard.close()
    with pytest.raises(ValueError, match=r"no training batch holds rl_batch_size = 4 rows whose next item has an image \((\d+) rows"):
        next(trainer.training_rows(train_data))


def test_a_very_large_kl_weight_keeps_the_policy_at_the_reference(genrec_config):
    free, free_records = run_steps({**genrec_config, **RL, "rl_learning_rate": 0.01, "rl_kl_weight": 0.0}, steps=8)
    held, held_records = run_steps({**genrec_config, **RL, "rl_learning_rate": 0.01, "rl_kl_weight": 1e4}, steps=8)
    assert held_records[-1]["kl"] < 0.05 * free_records[-1]["kl"]
    assert held_records[-1]["kl"] < 1e-3


def test_an_entropy_bonus_holds_the_policys_entropy_against_a_reward_that_collapses_it(genrec_config):
    settings = {**genrec_config, **RL, "rl_learning_rate": 0.01, "rl_kl_weight": 0.0}
    _, plain = run_steps(settings, steps=8)  # the synthetic reward pays for code 0 everywhere
    _, bonus = run_steps({**settings, "rl_entropy_weight": 1.0}, steps=8)
    entropies = {"plain": [round(r["entropy"], 4) for r in plain], "bonus": [round(r["entropy"], 4) for r in bonus]}
    assert plain[-1]["entropy"] < plain[0]["entropy"] - 0.01, entropies
    assert bonus[-1]["entropy"] > plain[-1]["entropy"] + 0.01, entropies


def test_the_reward_sees_only_training_targets(genrec_config, monkeypatch):
    config = {**genrec_config, "epochs": 1, "metrics": ["TargetSim"], "valid_metric": "TargetSim"}
    checkpoint = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    seen, future = [], []
    rewards = GenRecRLTrainer.rewards

    def spy(self, reward_model, rows, generation):
        assert torch.equal(rows[FUTURE_FIELD][:, 0], rows[self.model.POS_ITEM_ID])  # the first target: the row's next item
        seen.extend(zip(rows[self.model.USER_ID].tolist(), rows[self.model.ITEM_SEQ_LEN].tolist(), rows[self.model.POS_ITEM_ID].tolist()))
        future.extend((user, item) for user, items in zip(rows[self.model.USER_ID].tolist(), rows[FUTURE_FIELD].tolist())
                      for item in items if item)
        return rewards(self, reward_model, rows, generation)

    monkeypatch.setattr(GenRecRLTrainer, "rewards", spy)
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={
        **config, **RL, "rl_init_checkpoint": checkpoint, "rl_epochs": 2, "rl_steps_per_epoch": 4})
    trainer = result["trainer"]
    train_data, valid_data, test_data = data_preparation(trainer.config, create_dataset(trainer.config))

    def triples(data):
        inter = data._dataset.inter_feat
        return set(zip(inter["user_id"].tolist(), inter["item_length"].tolist(), inter["item_id"].tolist()))

    assert len(seen) == 2 * 4 * 4
    assert set(seen) <= triples(train_data)
    assert not set(seen) & (triples(valid_data) | triples(test_data))
    # the following items averaged into the reward are the same users' training targets too, and some rows have several
    assert {(user, item) for user, _, item in triples(train_data)} >= set(future) and len(future) > len(seen)


def test_an_rl_checkpoint_round_trips_and_samples_identically(genrec_config):
    config = {**genrec_config, "epochs": 1, "metrics": ["TargetSim", "CopyShare"], "valid_metric": "TargetSim"}
    sft = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={
        **config, **RL, "rl_init_checkpoint": sft, "rl_epochs": 1, "rl_steps_per_epoch": 2, "rl_learning_rate": 0.01,
        "rl_expectation_weight": 1.0})
    trainer = result["trainer"]
    assert isinstance(trainer, GenRecRLTrainer)
    assert all("reward_expectation" in step for step in trainer.log["steps"])
    _, model, _, _, _, test_data = load_data_and_model(trainer.saved_model_file)
    batch = next(iter(test_data))[0]
    again = model.eval().generate(batch, num_samples=2, seed=5).codes
    assert torch.equal(again, trainer.model.eval().generate(batch.to(trainer.device), num_samples=2, seed=5).codes)
    # RL changed the generator: the supervised checkpoint samples otherwise
    _, supervised, _, _, _, _ = load_data_and_model(sft)
    assert not torch.equal(again, supervised.eval().generate(batch, num_samples=2, seed=5).codes)
    assert get_trainer(trainer.config["MODEL_TYPE"], "GenRec").__name__ == "GenRecTrainer"  # without the config: evaluation


def test_dpo_prefers_the_better_of_each_pair(genrec_config):
    config, model, train_data = build({**genrec_config, **RL, "rl_algorithm": "dpo", "rl_learning_rate": 0.01, "rl_dpo_beta": 1.0})
    trainer = GenRecRLTrainer(config, model)
    trainer.model.train()
    rows = next(trainer.training_rows(train_data))
    losses = [trainer.dpo_step(rows, code_zero_share)["loss"] for _ in range(8)]
    trainer.tensorboard.close()
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # the policy starts at the reference: -log sigmoid(0)
    assert losses[-1] < losses[0]


def test_rpo_adds_the_chosen_samples_nll_per_code_to_the_dpo_loss(genrec_config, monkeypatch):
    import recbole_gen.trainer.rl_trainer as rl_trainer

    seen = {}

    def recording_dpo_loss(chosen, rejected, reference_chosen, reference_rejected, beta):
        seen.update(chosen=chosen.detach(), rejected=rejected.detach())
        return chosen.sum() * 0  # the DPO part out of the way: what is left is the NLL term

    monkeypatch.setattr(rl_trainer, "dpo_loss", recording_dpo_loss)
    config, model, train_data = build({**genrec_config, **RL, "rl_algorithm": "dpo", "rl_dpo_sft_weight": 2.0})
    trainer = GenRecRLTrainer(config, model)
    trainer.model.train()
    loss = trainer.dpo_step(next(trainer.training_rows(train_data)), code_zero_share)["loss"]
    n_codes = model.tokenizer.n_tokens
    assert loss == pytest.approx(-2.0 * seen["chosen"].mean().item() / n_codes, rel=1e-5)  # the chosen samples' NLL per code
    assert loss != pytest.approx(-2.0 * seen["rejected"].mean().item() / n_codes, rel=1e-3)


@pytest.mark.parametrize("refresh", [False, True])
def test_reference_refresh_starts_each_epoch_from_the_last_epochs_policy(genrec_config, monkeypatch, refresh):
    config, model, train_data = build({**genrec_config, **RL, "rl_algorithm": "dpo", "rl_learning_rate": 0.01,
                                       "rl_steps_per_epoch": 3, "rl_reference_refresh": refresh})
    trainer = GenRecRLTrainer(config, model)
    monkeypatch.setattr(trainer, "reward_model", lambda dataset: code_zero_share)
    state = lambda module: {k: v.clone() for k, v in module.state_dict().items()}
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    supervised = state(trainer.model)
    trainer._train_epoch(train_data, 0)
    after_first = state(trainer.model)
    trainer._train_epoch(train_data, 1)
    trainer.tensorboard.close()
    assert not same(after_first, supervised) and not same(state(trainer.model), after_first)
    assert same(state(trainer.reference), after_first if refresh else supervised)
    assert not any(p.requires_grad for p in trainer.reference.parameters())


def test_the_reward_encoder_cannot_be_the_evaluation_encoder(genrec_config):
    from recbole_gen.rl.reward import RewardModel

    config, model, train_data = build({**genrec_config, "rl_reward_fit_epochs": genrec_config["encoder_fit_epochs"],
                                       "rl_reward_fit_seed": 2020})
    with pytest.raises(ValueError, match="reward encoder would be the evaluation encoder"):
        RewardModel.from_config(config, train_data._dataset)


def test_an_ensemble_rewards_grpo_with_encoders_of_consecutive_seeds(genrec_config):
    from recbole_gen.rl.reward import RewardEnsemble

    config, model, train_data = build({**genrec_config, **RL, "rl_reward_ensemble": 2, "rl_reward_ensemble_aggregate": "min"})
    trainer = GenRecRLTrainer(config, model)
    ensemble = trainer.training_reward(train_data._dataset)
    assert isinstance(ensemble, RewardEnsemble) and ensemble.members[0] is trainer.reward_model(train_data._dataset)
    first, second = ensemble.members
    assert not torch.allclose(first.catalog, second.catalog)  # seeds 7 and 8: two fits
    trainer.model.train()
    record = trainer.grpo_step(next(trainer.training_rows(train_data)), ensemble)
    trainer.tensorboard.close()
    assert record["reward_member_sd"] > 0 and record["reward_mean"] <= record["reward_expectation"] + record["reward_contrastive"]

    clash, _, clash_data = build({**genrec_config, **RL, "rl_reward_ensemble": 2, "rl_reward_fit_epochs": genrec_config["encoder_fit_epochs"],
                                  "rl_reward_fit_seed": 2019})  # member 1 would be the evaluation fit (seed 2020)
    with pytest.raises(ValueError, match=r"reward encoder 1 of the ensemble \(seed rl_reward_fit_seed \+ 1\) would be the evaluation"):
        RewardEnsemble.from_config(clash, clash_data._dataset)


@pytest.mark.parametrize("top_items", [0, 10**6])
def test_expectation_top_items_outside_the_catalog_is_refused(genrec_config, top_items):
    from recbole_gen.rl.reward import RewardModel

    config, model, train_data = build({**genrec_config, "rl_expectation_top_items": top_items})
    with pytest.raises(ValueError, match=f"'rl_expectation_top_items' = {top_items}: expected an integer from 1"):
        RewardModel.from_config(config, train_data._dataset)


def test_future_items_are_the_same_users_following_training_targets(genrec_config):
    config, model, train_data = build(genrec_config)
    dataset = train_data._dataset
    future = future_items(dataset, 3)
    users, targets = dataset.inter_feat["user_id"], dataset.inter_feat["item_id"]
    assert torch.equal(future[:, 0], targets)
    for row in (0, 5, len(users) - 1):
        expected = [targets[row + k].item() if row + k < len(users) and users[row + k] == users[row] else 0 for k in range(3)]
        assert future[row].tolist() == expected


def test_an_rl_run_stopped_after_an_epoch_resumes_to_the_same_numbers_and_log(genrec_config, monkeypatch):
    import json

    config = {**genrec_config, "epochs": 1, "metrics": ["TargetSim", "CopyShare"], "valid_metric": "TargetSim"}
    sft = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    config = {**config, **RL, "rl_init_checkpoint": sft, "rl_epochs": 3, "rl_steps_per_epoch": 2, "rl_learning_rate": 0.01}
    uninterrupted = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)

    stopped = run_stopped_after_first_epoch(monkeypatch, model="GenRec", dataset="tiny", config_dict=config)
    resumed = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config, resume=stopped)
    assert resumed["trainer"].start_epoch == 1
    assert resumed["best_valid_result"] == uninterrupted["best_valid_result"]
    assert resumed["test_result"] == uninterrupted["test_result"]
    # the run's log holds every step and validation, the epoch before the stop included, as the uninterrupted one's
    logs = [json.load(open(result["trainer"].log_file)) for result in (uninterrupted, resumed)]
    assert [v["step"] for v in logs[1]["validations"]] == [0, 2, 4, 6]
    drop_seconds = lambda steps: [{k: v for k, v in step.items() if not k.startswith("seconds_")} for step in steps]
    assert drop_seconds(logs[1]["steps"]) == drop_seconds(logs[0]["steps"])
    assert logs[1]["validations"] == logs[0]["validations"]


def test_a_resume_state_without_the_rl_log_resumes_with_a_warning_and_the_log_from_there(genrec_config, caplog):
    config, model, _ = build({**genrec_config, **RL})
    trainer = GenRecRLTrainer(config, model)
    trainer.tensorboard.close()
    with caplog.at_level("WARNING"):
        trainer._load_run_state({})
    assert "before resume states held the RL log" in caplog.text
    assert trainer.rl_step == 0 and trainer.log == {"steps": [], "validations": []}
    log = {"steps": [{"step": 0}], "validations": [{"step": 0}, {"step": 1}]}
    trainer._load_run_state({"rl_step": 1, "log": log})
    assert trainer.rl_step == 1 and trainer.log == log and trainer._run_state() == {"rl_step": 1, "log": log}
