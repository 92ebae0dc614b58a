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


def tiny_stable_diffusion(folder, cross_attention_dim):
    """A Stable-Diffusion-shaped pipeline folder: model_index.json, a 4-channel UNet over 4x4 latents and a
    VAE that downsamples 2x (so 8 px images), random weights."""
    import json

    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, block_out_channels=[16, 32], layers_per_block=1,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=4,
    ).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        block_out_channels=[8, 16], latent_channels=4, norm_num_groups=4, sample_size=8,
    ).save_pretrained(folder / "vae")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                         "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}))


def test_a_stable_diffusion_folder_denoises_in_its_vae_latents_and_round_trips(diffusion, tiny_dataset):
    tiny_stable_diffusion(tiny_dataset / "sd", cross_attention_dim=24)
    config = {**diffusion, "diffusion_unet_path": str(tiny_dataset / "sd"), "epochs": 1, "metrics": ["TargetSim", "CopyShare"]}
    _, model, train_data, test_data = build(config)
    generator = model.generator
    assert generator.vae is not None and generator.latent_shape == (4, 4, 4) and generator.vae_image_size == 8
    assert generator.hidden_size == 24  # the condition tokens take the UNet's cross-attention width
    assert not any(p.requires_grad for p in generator.vae.parameters())
    interaction = first_batch(test_data)
    codes = model.item_codes[interaction[model.ITEM_ID]]
    assert generator.latents(codes).shape == (len(codes), 4, 4, 4)
    losses = train_steps(model, train_data, 3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(p.grad is None for p in generator.vae.parameters())
    model.eval()
    sampled = model.generate(interaction, num_samples=2, seed=3)
    assert sampled.codes.shape[-1] == model.tokenizer.n_tokens
    assert 0 <= sampled.codes.min() and sampled.codes.max() < model.tokenizer.codebook_size

    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)
    _, loaded, _, _, _, test_data = load_data_and_model(result["trainer"].saved_model_file)
    assert loaded.generator.vae is not None
    interaction = first_batch(test_data)
    before = result["trainer"].model.eval().generate(interaction, num_samples=2, seed=3)
    after = loaded.eval().generate(interaction, num_samples=2, seed=3)
    assert torch.equal(before.codes, after.codes)


def test_a_stable_diffusion_folder_with_an_sdxl_unet_is_refused(diffusion, tiny_dataset):
    from diffusers import UNet2DConditionModel

    tiny_stable_diffusion(tiny_dataset / "sd", cross_attention_dim=24)
    unet = UNet2DConditionModel.from_pretrained(tiny_dataset / "sd" / "unet")
    UNet2DConditionModel.from_config({**dict(unet.config), "addition_embed_type": "text_time",
                                      "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 56}).save_pretrained(tiny_dataset / "sd" / "unet")
    with pytest.raises(ValueError, match="addition_embed_type"):
        build({**diffusion, "diffusion_unet_path": str(tiny_dataset / "sd")})


def test_unknown_generator_kind_is_named(genrec_config):
    with pytest.raises(ValueError, match="'generator' = 'gan'"):
        build({**genrec_config, "generator": "gan"})
