"""The diffusion generator: a diffusers UNet that denoises the image tokenizer's latents, given condition tokens.

GeneRec's official code makes and edits items with diffusion models: a user embedding as the condition,
creation from pure noise, editing by partial re-noising of an existing item (SDEdit), classifier-free
guidance. :class:`DiffusionGenerator` does this in the latent space of GenRec's VQ image tokenizer: a
``UNet2DConditionModel`` cross-attends to the same condition tokens the autoregressive generator reads
(:class:`~recbole_gen.model.condition.UserCondition`), is trained with DDPM's noise-prediction loss on
the catalog items' codebook latents and samples with DDIM. A sample's latents are quantised to the
nearest codebook vectors, so it has codes like an autoregressive sample: the catalog ranking, copy
counting and history conditioning work unchanged.

``diffusion_unet_path`` loads a pretrained ``UNet2DConditionModel`` instead of the small one the
``diffusion_*`` keys build: a UNet folder, whose ``in_channels`` must be the tokenizer's latent channels,
or a Stable Diffusion pipeline folder (``model_index.json``, ``unet/``, ``vae/``), whose UNet then
denoises in its own VAE's latent space at ``unet.sample_size`` x the VAE's downsampling pixels (512 for
Stable Diffusion 1.x). There, a training target's latents are its tokenizer image encoded by the VAE,
and a sample's VAE decoding is coded by the tokenizer, so codes stay the currency of everything after
the generator.

Sampling noise comes from the caller as uniforms (:mod:`recbole_gen.model.sampling`), turned into
Gaussians by the inverse normal CDF, so a user's sample depends on the seed, the user and the sample
index only, as for the autoregressive generator.
"""

import os

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from torch import nn

from recbole_gen.model.image_tokenizer import VQImageTokenizer

# Uniforms are in [0, 1): keep them off the ends so the inverse CDF stays finite.
_UNIFORM_EPS = 2.0**-40


def gaussian(uniforms, shape):
    """Standard normal numbers of ``shape`` (rows first) from uniforms ``(N, >= prod(shape[1:]))``."""
    size = 1
    for dim in shape[1:]:
        size *= dim
    return torch.special.ndtri(uniforms[:, :size].clamp(_UNIFORM_EPS, 1 - _UNIFORM_EPS)).float().view(shape)


def small_unet(config, latent_channels, grid_size, hidden_size):
    """The from-scratch UNet the ``diffusion_*`` keys describe, over ``latent_channels`` x grid x grid latents."""
    channels = list(config["diffusion_block_out_channels"])
    down = ["CrossAttnDownBlock2D"] * (len(channels) - 1) + ["DownBlock2D"]
    up = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(channels) - 1)
    return UNet2DConditionModel(
        sample_size=grid_size, in_channels=latent_channels, out_channels=latent_channels,
        block_out_channels=channels, down_block_types=down, up_block_types=up,
        layers_per_block=config["diffusion_layers_per_block"], cross_attention_dim=hidden_size,
        attention_head_dim=config["diffusion_attention_head_dim"], norm_num_groups=min(32, channels[0] // 4),
    )


def load_unet(path):
    """``(unet, vae)``: a pretrained ``UNet2DConditionModel`` from its folder, or from a pipeline folder's
    ``unet`` subfolder with the pipeline's ``vae`` (an ``AutoencoderKL``, frozen; None without one)."""
    pipeline = os.path.isfile(os.path.join(path, "model_index.json"))
    subfolder = "unet" if pipeline else None
    if not os.path.isfile(os.path.join(path, subfolder or "", "config.json")):
        raise FileNotFoundError(
            f"config key 'diffusion_unet_path' = '{path}' is neither a UNet2DConditionModel folder (config.json) "
            "nor a diffusers pipeline folder with a unet/ subfolder (model_index.json)"
        )
    unet = UNet2DConditionModel.from_pretrained(path, subfolder=subfolder)
    if unet.config.addition_embed_type is not None:
        raise ValueError(
            f"config key 'diffusion_unet_path' = '{path}': the UNet needs added conditions "
            f"(addition_embed_type '{unet.config.addition_embed_type}', e.g. SDXL); use a UNet conditioned by cross-attention only (e.g. Stable Diffusion 1.x/2.x)"
        )
    has_vae = pipeline and os.path.isfile(os.path.join(path, "vae", "config.json"))
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae").eval().requires_grad_(False) if has_vae else None
    return unet, vae


def scheduler_config(config):
    return {"num_train_timesteps": config["diffusion_train_timesteps"], "beta_schedule": config["diffusion_beta_schedule"],
            "prediction_type": "epsilon", "clip_sample": False,
            # Sampling starts at the last training step, where the latents are pure noise (Lin et al. 2024,
            # "Common Diffusion Noise Schedules and Sample Steps are Flawed").
            "timestep_spacing": "trailing"}


def _resize(pixels, size):
    if pixels.shape[-1] == size:
        return pixels
    return F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True)


class DiffusionGenerator(nn.Module):
    """Conditional latent diffusion over a VQ tokenizer's latents.

    Exposes ``tokenizer``, ``hidden_size`` (the condition tokens' width, the UNet's cross-attention
    width) and ``embed(codes)`` (history images as condition inputs) like the autoregressive generators,
    plus ``loss`` for training and ``sample`` for creation and editing. With a ``vae`` (a Stable
    Diffusion folder's), the UNet works in the VAE's latent space instead of the codebook's.
    """

    def __init__(self, unet, tokenizer, noise_scheduler_config, vae=None):
        super().__init__()
        if not isinstance(tokenizer, VQImageTokenizer):
            raise ValueError("generator 'diffusion' needs the VQ image tokenizer (tokenizer_path or a fitted one), not Janus'")
        code_channels = tokenizer.vq.config.vq_embed_dim or tokenizer.vq.config.latent_channels
        if vae is None:
            latent_channels, side, source = code_channels, tokenizer.grid_size, "the image tokenizer's latents have"
        else:
            latent_channels, side, source = vae.config.latent_channels, unet.config.sample_size, "the pipeline's VAE latents have"
        if unet.config.in_channels != latent_channels or unet.config.out_channels != latent_channels:
            raise ValueError(
                f"the UNet has {unet.config.in_channels} input / {unet.config.out_channels} output channels; "
                f"{source} {latent_channels}" + ("" if vae else " (tokenizer_latent_channels)")
            )
        self.unet = unet
        self.tokenizer = tokenizer
        self.vae = vae
        self.hidden_size = unet.config.cross_attention_dim
        self.latent_shape = (latent_channels, side, side)
        self.code_projection = nn.Linear(code_channels, self.hidden_size)
        self.noise_scheduler = DDPMScheduler.from_config(noise_scheduler_config)

    @property
    def latent_scale(self):
        """Scales latents to about unit variance: the VAE's own ``scaling_factor``, or the codebook's spread."""
        if self.vae is not None:
            return self.vae.config.scaling_factor
        return 1.0 / self.tokenizer.vq.quantize.embedding.weight.std().clamp(min=1e-6)

    @property
    def vae_image_size(self):
        return self.latent_shape[-1] * 2 ** (len(self.vae.config.block_out_channels) - 1)

    def embed(self, codes):
        """``(..., hidden_size)`` embeddings of image codes: their codebook vectors, projected."""
        return self.code_projection(self.tokenizer.vq.quantize.embedding(codes))

    def latents(self, codes):
        """Scaled latents ``(N, *latent_shape)`` of codes ``(N, n_tokens)``: their codebook vectors, or the VAE's
        encoding (its mean) of their tokenizer image."""
        if self.vae is None:
            return self.tokenizer.codebook_latents(codes) * self.latent_scale
        pixels = _resize(self.tokenizer.decode_pixels(codes).clamp(-1, 1), self.vae_image_size)
        return self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mean.float() * self.latent_scale

    def to_codes(self, latents):
        """The codes ``(N, n_tokens)`` of scaled ``latents``: the nearest codebook vectors, or the tokenizer's
        codes of the VAE's decoding."""
        if self.vae is None:
            _, _, (_, _, codes) = self.tokenizer.vq.quantize(latents / self.latent_scale)
            return codes.reshape(len(latents), -1)
        pixels = self.vae.decode((latents / self.latent_scale).to(self.vae.dtype)).sample.float().clamp(-1, 1)
        return self.tokenizer.encode_pixels(_resize(pixels, self.tokenizer.image_size))

    def denoise(self, latents, timesteps, condition):
        return self.unet(latents, timesteps, encoder_hidden_states=condition).sample

    def loss(self, condition, codes, weight):
        """DDPM's noise-prediction MSE on the latents of ``codes``, rows weighted by ``weight`` ``(B,)``."""
        clean = self.latents(codes)
        noise = torch.randn_like(clean)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(clean),), device=clean.device)
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        per_row = F.mse_loss(self.denoise(noisy, timesteps, condition).float(), noise.float(), reduction="none").mean(dim=(1, 2, 3))
        return (per_row * weight).sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def sample(self, condition, negative, uniforms, num_inference_steps, guidance_scale=1.0, start_codes=None, strength=1.0):
        """Codes ``(B, n_tokens)`` sampled by DDIM (deterministic given the noise) under ``condition`` tokens.

        ``uniforms`` ``(B, >= C*g*g)``: each row's noise. Classifier-free guidance:
        ``eps = eps_neg + guidance_scale * (eps_cond - eps_neg)`` where ``negative`` (condition tokens: the
        learned null condition, or disliked items') is what guidance steers away from; 1 is plain conditional
        sampling and never evaluates ``negative``.
        Editing (SDEdit): ``start_codes`` ``(B, n_tokens)`` are noised to ``strength`` of the schedule and
        denoised from there: 0 returns them unchanged, 1 ignores them (created anew from the same noise).
        """
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        scheduler = DDIMScheduler.from_config(self.noise_scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=condition.device)
        noise = gaussian(uniforms, (len(condition), *self.latent_shape)).to(condition.device)
        timesteps = scheduler.timesteps
        if start_codes is None or strength == 1:
            latents = noise * scheduler.init_noise_sigma
        else:
            # As diffusers' img2img pipelines: skip the first (1 - strength) of the steps.
            timesteps = timesteps[num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps):]
            latents = self.latents(start_codes)
            if len(timesteps):
                latents = scheduler.add_noise(latents, noise, timesteps[:1].repeat(len(latents)))
        guided = guidance_scale != 1
        for t in timesteps:
            if guided:
                eps_cond, eps_neg = self.denoise(torch.cat([latents, latents]), t, torch.cat([condition, negative])).chunk(2)
                eps = eps_neg + guidance_scale * (eps_cond - eps_neg)
            else:
                eps = self.denoise(latents, t, condition)
            latents = scheduler.step(eps, t, latents).prev_sample
        return self.to_codes(latents)
