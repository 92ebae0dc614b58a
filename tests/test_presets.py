"""The presets in properties/presets/: the GPU preset builds the 128 px rung it describes (tiny data, CPU); the
quick-start preset reaches the tokenizer fit; the RL preset reaches the RL trainer."""

import os

import torch
import yaml

from recbole_gen.config import Config
from recbole_gen.model.condition import condition_length
from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole.data import create_dataset, data_preparation

from model.test_genrec import first_batch, train_steps

PRESET = os.path.join(os.path.dirname(__file__), "..", "properties", "presets", "gpu_128px.yaml")


def test_the_gpu_preset_builds_a_128_px_genrec_with_256_codes_that_trains_and_samples(genrec_config):
    with open(PRESET) as f:
        preset = yaml.safe_load(f)
    # the test's own settings give way to the preset's, except the one-epoch tokenizer fit and a batch of 8
    config_dict = {key: value for key, value in genrec_config.items() if key not in preset}
    config = Config(model="GenRec", dataset="tiny", config_file_list=[PRESET],
                    config_dict={**config_dict, "tokenizer_fit_epochs": 1, "train_batch_size": 8})
    assert config["tokenizer_image_size"] == 128 and config["gen_layers"] == 8
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    model = GenRec(config, train_data._dataset)
    assert model.tokenizer.n_tokens == 256 and model.tokenizer.codebook_size == 1024
    needed = condition_length(config["n_cond_tokens"], config["n_history_images"], config["n_instruction_tokens"]) + 256
    assert model.generator.lm.config.max_position_embeddings == needed
    assert torch.isfinite(torch.tensor(train_steps(model, train_data, 1))).all()
    images = model.eval().generate(first_batch(test_data)[torch.arange(2)], 1, seed=0).images
    assert images.shape == (2, 3, 128, 128) and images.dtype == torch.uint8


def test_the_quick_start_preset_keys_its_own_tokenizer_fit_and_the_default_keeps_the_earlier_key(genrec_config):
    """properties/presets/quick_start.yaml reaches the fit (its settings key the cache), and the default fit's key
    is that of fits made before the schedule, betas and restart were settings, so their cached tokenizers are found."""
    from recbole_gen.model.image_tokenizer import _fit_settings

    quick = os.path.join(os.path.dirname(PRESET), "quick_start.yaml")
    config_dict = {key: value for key, value in genrec_config.items() if not key.startswith("tokenizer_fit")}
    settings = _fit_settings(Config(model="GenRec", dataset="tiny", config_file_list=[quick], config_dict=config_dict))
    assert {key: settings[key] for key in settings if key.startswith("tokenizer_fit")} == {
        "tokenizer_fit_epochs": 24, "tokenizer_fit_batch_size": 16, "tokenizer_fit_learning_rate": 0.003,
        "tokenizer_fit_schedule": "cosine", "tokenizer_fit_warmup": 0.03, "tokenizer_fit_adam_betas": [0.9, 0.99],
        "tokenizer_fit_restart_codes": True}
    default = _fit_settings(Config(model="GenRec", dataset="tiny", config_dict=config_dict))
    assert {key: default[key] for key in default if key.startswith("tokenizer_fit")} == {
        "tokenizer_fit_epochs": 80, "tokenizer_fit_batch_size": 64, "tokenizer_fit_learning_rate": 0.002}


def test_the_rl_copy_free_preset_reaches_the_rl_trainer_which_samples_groups_of_16_over_16_rows(genrec_config):
    from recbole_gen.trainer import GenRecRLTrainer

    rl_preset = os.path.join(os.path.dirname(PRESET), "rl_copy_free.yaml")
    with open(rl_preset) as f:
        preset = yaml.safe_load(f)
    config_dict = {key: value for key, value in genrec_config.items() if key not in preset}
    config = Config(model="GenRec", dataset="tiny", config_file_list=[rl_preset],
                    config_dict={**config_dict, "rl_reward_fit_epochs": 1, "rl_reward_ensemble": 1, "gallery_users": 0})
    assert {key: config[key] for key in preset} == preset
    train_data, _, _ = data_preparation(config, create_dataset(config))
    trainer = GenRecRLTrainer(config, GenRec(config, train_data._dataset))
    trainer.tensorboard.close()
    rows = next(trainer.training_rows(train_data))
    generation = trainer.sample(trainer.model, rows)
    assert len(rows) == 16 and generation.codes.shape == (16 * 16, trainer.model.tokenizer.n_tokens)
