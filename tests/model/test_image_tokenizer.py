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


FIT = {"tokenizer_fit_learning_rate": 1.0, "tokenizer_fit_adam_betas": [0.9, 0.99],
       "tokenizer_fit_schedule": "cosine", "tokenizer_fit_warmup": 0.1}


def _lrs(schedule, warmup, total=8):
    from recbole_gen.model.image_tokenizer import _fit_optimizer

    config = {**FIT, "tokenizer_fit_schedule": schedule, "tokenizer_fit_warmup": warmup}
    optimizer, scheduler = _fit_optimizer(config, [torch.nn.Parameter(torch.zeros(1))], total)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_the_fit_schedule_warms_up_to_the_learning_rate_then_decays_to_zero():
    cosine = _lrs("cosine", warmup=0.25)
    assert cosine[0] == 0 and cosine[1] == pytest.approx(0.5) and cosine[2] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(cosine[2:], cosine[3:])) and cosine[-1] == pytest.approx(0, abs=1e-12)
    assert cosine[5] == pytest.approx(0.5)  # half-way through the decay
    assert _lrs("constant", warmup=0.0) == [1.0] * 9  # the schedule of fits before it was a setting
    assert _lrs("linear", warmup=0.0)[4] == pytest.approx(0.5)


@pytest.mark.parametrize("key, value, message", [
    ("tokenizer_fit_schedule", "cosine_restarts", "'tokenizer_fit_schedule' = 'cosine_restarts': expected one of"),
    ("tokenizer_fit_warmup", 1.0, "'tokenizer_fit_warmup' = 1.0"),
    ("tokenizer_fit_warmup", -0.1, "'tokenizer_fit_warmup' = -0.1"),
    ("tokenizer_fit_adam_betas", [0.9], r"'tokenizer_fit_adam_betas' = \[0.9\]: expected two numbers"),
    ("tokenizer_fit_adam_betas", [0.9, 1.0], r"'tokenizer_fit_adam_betas' = \[0.9, 1.0\]"),
])
def test_a_bad_fit_setting_is_refused_by_name(key, value, message):
    from recbole_gen.model.image_tokenizer import _fit_optimizer

    with pytest.raises(ValueError, match=message):
        _fit_optimizer({**FIT, key: value}, [torch.nn.Parameter(torch.zeros(1))], 10)


def test_the_settings_of_earlier_fits_keep_their_cache_key(genrec_config):
    """Fits made before the schedule and restart were settings (constant rate, no warmup, no restart) keep their
    cached key, so their tokenizers are found again when those values are set explicitly."""
    from recbole_gen.config import Config
    from recbole_gen.model.image_tokenizer import _fit_settings

    earlier = {"tokenizer_fit_restart_codes": False, "tokenizer_fit_schedule": "constant", "tokenizer_fit_warmup": 0.0}
    settings = _fit_settings(Config(model="GenRec", dataset="tiny", config_dict={**genrec_config, **earlier}))
    assert not set(earlier) & set(settings)
    cosine = _fit_settings(Config(model="GenRec", dataset="tiny", config_dict={**genrec_config, **earlier,
                                                                                "tokenizer_fit_schedule": "cosine"}))
    assert cosine == {**settings, "tokenizer_fit_schedule": "cosine"}


def test_the_fit_uses_the_fused_adamw_and_it_updates_like_the_per_tensor_loop():
    from recbole_gen.fitting import fused_kwargs
    from recbole_gen.model.image_tokenizer import _fit_optimizer

    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    finals = {}
    for fused in (False, True):
        parameters = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer, _ = _fit_optimizer({**FIT, "tokenizer_fit_schedule": "constant", "tokenizer_fit_warmup": 0.0},
                                      parameters, 4)
        assert optimizer.defaults["fused"] is True
        if not fused:  # torch's default on the CPU: one tensor at a time
            for group in optimizer.param_groups:
                group["fused"] = None
        for step_grads in grads:
            for p, g in zip(parameters, step_grads):
                p.grad = g.clone()
            optimizer.step()
        finals[fused] = [p.detach() for p in parameters]
    assert all(not torch.equal(p, p0) for p, p0 in zip(finals[True], start))  # the steps moved them
    for loop, fused in zip(finals[False], finals[True]):
        torch.testing.assert_close(fused, loop, rtol=1e-6, atol=1e-6)
    assert fused_kwargs([torch.nn.Parameter(torch.zeros(1, device="meta"))]) == {}  # no fused kernel there
