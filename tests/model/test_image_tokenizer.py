"""The image tokenizer's fit: dead-code restart and the fidelity it logs, on tiny data."""

import json
import math

import pytest
import torch
from diffusers.models.autoencoders.vae import VectorQuantizer

from recbole_gen.model.image_tokenizer import FIT_LOG, _DeadCodeRestart

from model.test_genrec import build


def test_codes_unused_in_an_epoch_move_onto_encoder_latents_and_used_ones_stay():
    quantizer = VectorQuantizer(8, 2, beta=0.25)
    before = quantizer.embedding.weight.detach().clone()
    restart = _DeadCodeRestart(quantizer, steps_per_epoch=2, generator=torch.Generator().manual_seed(0))
    latents = torch.arange(2 * 2 * 2 * 2, dtype=torch.float).view(2, 2, 2, 2) + 100  # far from every code
    restart.step(torch.tensor([[0, 1], [1, 1]]), latents)
    assert torch.equal(quantizer.embedding.weight, before)  # mid-epoch: nothing moves
    restart.step(torch.tensor([[2, 2], [0, 0]]), latents)
    after = quantizer.embedding.weight.detach()
    assert torch.equal(after[:3], before[:3])
    vectors = {tuple(row) for row in latents.permute(0, 2, 3, 1).reshape(-1, 2).tolist()}
    assert all(tuple(row) in vectors for row in after[3:].tolist())
    restart.step(torch.tensor([[3]]), latents)  # counts start again with the next epoch
    assert restart.counts.sum() == 1


def test_the_fit_log_holds_pixel_fidelity_consistent_with_its_mse(genrec_config, tiny_dataset):
    build({**genrec_config, "tokenizer_fit_restart_codes": True})
    (log_file,) = (tiny_dataset / "tokenizer_cache").glob(f"*/{FIT_LOG}")
    fit_log = json.loads(log_file.read_text())
    fidelity = fit_log["reconstruction"]
    assert fit_log["fit"]["tokenizer_fit_restart_codes"] is True
    # PSNR is of the uint8 images, the logged MSE of the float target: equal up to the target's rounding
    assert fidelity["psnr"] == pytest.approx(10 * math.log10(255**2 / fit_log["reconstruction_mse_uint8"]), abs=0.1)
    assert 0 < fidelity["ssim"] < 1 and 0 < fidelity["ms_ssim"] < 1 and fidelity["ms_ssim_scales"] == 2


def test_the_restart_setting_keys_a_fit_only_when_on_so_earlier_caches_stay_valid(genrec_config):
    from recbole_gen.config import Config
    from recbole_gen.model.image_tokenizer import _fit_settings

    off = _fit_settings(Config(model="GenRec", dataset="tiny", config_dict=genrec_config))
    on = _fit_settings(Config(model="GenRec", dataset="tiny", config_dict={**genrec_config, "tokenizer_fit_restart_codes": True}))
    assert "tokenizer_fit_restart_codes" not in off and on == {**off, "tokenizer_fit_restart_codes": True}
