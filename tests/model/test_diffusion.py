"""GenRec with the diffusion generator (and the AI editor of both generators) on tiny data, built in the test."""

import pytest
import torch
from transformers import GenerationConfig

from recbole_gen.model.diffusion import DiffusionGenerator
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen

from model.test_genrec import build, first_batch, train_steps


def diffusion_config(genrec_config):
    return {**genrec_config, "generator": "diffusion", "diffusion_block_out_channels": [16, 32],
            "diffusion_attention_head_dim": 8, "diffusion_inference_steps": 5}


@pytest.fixture
def diffusion(genrec_config):
    return diffusion_config(genrec_config)


def test_diffusion_loss_falls(diffusion):
    _, model, train_data, _ = build({**diffusion, "cond_dropout_prob": 0.0})
    assert isinstance(model.generator, DiffusionGenerator)
    batch = first_batch(train_data)
    torch.manual_seed(0)
    before = torch.stack([model.generation_loss(batch) for _ in range(8)]).mean().item()
    train_steps(model, train_data, 30)
    model.eval()
    torch.manual_seed(0)
    after = torch.stack([model.generation_loss(batch) for _ in range(8)]).mean().item()
    assert after < 0.7 * before


def sample(model, condition, scale, negative=None, **edit):
    config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, guidance_scale=scale, max_new_tokens=model.tokenizer.n_tokens)
    uniforms = torch.rand(len(condition), model.noise_size, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return model.sample(condition, uniforms, config, negative=negative, **edit)


def test_guidance_one_is_plain_conditional_sampling_and_zero_samples_the_negative(diffusion):
    _, model, train_data, test_data = build(diffusion)
    train_steps(model, train_data, 5)
    model.eval()
    condition = model.condition_tokens(first_batch(test_data))
    other = condition.roll(1, dims=0)
    plain = sample(model, condition, 1.0)
    assert torch.equal(sample(model, condition, 1.0, negative=other), plain)  # scale 1 never looks at the negative
    assert torch.equal(sample(model, condition, 0.0, negative=other), sample(model, other, 1.0))
    assert not torch.equal(sample(model, condition, 5.0), plain)


@pytest.mark.parametrize("generator", ["diffusion", "autoregressive"])
def test_editing_strength_zero_returns_the_item_and_one_creates_anew(genrec_config, generator):
    config = diffusion_config(genrec_config) if generator == "diffusion" else genrec_config
    _, model, train_data, test_data = build(config)
    train_steps(model, train_data, 5)
    model.eval()
    interaction = first_batch(test_data)
    condition = model.condition_tokens(interaction)
    items = model.item_codes[interaction[model.ITEM_ID]]
    assert torch.equal(sample(model, condition, 1.0, start_codes=items, strength=0.0), items)
    assert torch.equal(sample(model, condition, 1.0, start_codes=items, strength=1.0), sample(model, condition, 1.0))
    half = sample(model, condition, 1.0, start_codes=items, strength=0.5)
    created = sample(model, condition, 1.0)
    assert (half == items).float().mean() > (created == items).float().mean()
    with pytest.raises(ValueError, match="strength"):
        sample(model, condition, 1.0, start_codes=items, strength=1.5)


def test_a_diffusion_checkpoint_evaluates_with_fidelity_counts_and_samples_identically_after_loading(diffusion):
    config = {**diffusion, "epochs": 1, "metrics": ["Recall", "TargetSim", "CopyShare"], "eval_fidelity": True, "rl_reward_fit_epochs": 2}
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)
    test = result["test_result"]
    assert {"recall@10", "targetsim", "copyshare", "fidelity.near_copy", "fidelity.realism", "fidelity.all"} <= set(test)
    assert 0 <= test["fidelity.all"] <= min(test["fidelity.near_copy"], test["fidelity.realism"]) <= 1
    model = result["trainer"].model.eval()
    _, loaded, _, _, _, test_data = load_data_and_model(result["trainer"].saved_model_file)
    assert isinstance(loaded.generator, DiffusionGenerator)
    interaction = first_batch(test_data)
    before, after = model.generate(interaction, num_samples=2, seed=3), loaded.eval().generate(interaction, num_samples=2, seed=3)
    assert torch.equal(before.codes, after.codes) and torch.equal(before.images, after.images)


def test_a_pretrained_unet_loads_by_path_and_a_mismatched_one_is_named(diffusion, tiny_dataset):
    from diffusers import UNet2DConditionModel

    _, model, _, _ = build(diffusion)
    model.generator.unet.save_pretrained(tiny_dataset / "unet")
    _, loaded, _, _ = build({**diffusion, "diffusion_unet_path": str(tiny_dataset / "unet")})
    assert all(torch.equal(a, b) for a, b in zip(model.generator.unet.state_dict().values(), loaded.generator.unet.state_dict().values()))
    config = dict(model.generator.unet.config)
    UNet2DConditionModel.from_config({**config, "in_channels": 3, "out_channels": 3}).save_pretrained(tiny_dataset / "rgb_unet")
    with pytest.raises(ValueError, match="tokenizer_latent_channels"):
        build({**diffusion, "diffusion_unet_path": str(tiny_dataset / "rgb_unet")})


def test_unknown_generator_kind_is_named(genrec_config):
    with pytest.raises(ValueError, match="'generator' = 'gan'"):
        build({**genrec_config, "generator": "gan"})
