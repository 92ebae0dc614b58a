"""Image tokenizers: item images <-> grids of discrete codes the generator predicts.

- :class:`VQImageTokenizer` wraps a diffusers ``VQModel``. By default one is trained on the catalog's
  images (``tokenizer_*`` keys) and cached under ``tokenizer_cache_dir``, keyed by the catalog content,
  the fit settings and the fitting code's version; ``tokenizer_path`` loads a saved one
  (``VQModel.from_pretrained``) instead. A GenRec checkpoint keeps the VQ model's config, so
  :func:`vq_tokenizer_from_config` rebuilds it for the checkpoint's weights without either.
- :class:`JanusImageTokenizer` wraps the VQ model inside a transformers ``JanusForConditionalGeneration``.

Both take and return uint8 images ``(N, 3, H, W)`` as :class:`~recbole_gen.data.item_content.ItemContent`
holds them; codes are ``(N, n_tokens)`` in raster order.
"""

import json
import logging
import os

import diffusers
import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import nn
from transformers import get_scheduler

from recbole_gen.evaluator.image_quality import pixel_fidelity
from recbole_gen.fitting import cached_fit, fit_minibatches, fused_kwargs

logger = logging.getLogger(__name__)

_FIT_KEYS = (
    "tokenizer_image_size",
    "tokenizer_block_out_channels",
    "tokenizer_latent_channels",
    "tokenizer_codebook_size",
    "tokenizer_fit_epochs",
    "tokenizer_fit_batch_size",
    "tokenizer_fit_learning_rate",
    "tokenizer_fit_restart_codes",
    "tokenizer_fit_schedule",
    "tokenizer_fit_warmup",
    "tokenizer_fit_adam_betas",
    "seed",
)
FIT_LOG = "fit_log.json"
# Bump when the fitting code changes what a fit produces: cached fits of older code are then not reused.
FIT_VERSION = 2


class ImageTokenizer(nn.Module):
    """uint8 images <-> codes. Subclasses define ``encode_pixels`` and ``decode_pixels`` on [-1, 1] pixels."""

    def __init__(self, image_size, codebook_size, grid_size):
        super().__init__()
        self.image_size = image_size
        self.codebook_size = codebook_size
        self.grid_size = grid_size
        self.n_tokens = grid_size * grid_size

    def to_pixels(self, images):
        pixels = images.float().div(127.5).sub(1)
        if pixels.shape[-1] != self.image_size or pixels.shape[-2] != self.image_size:
            pixels = F.interpolate(pixels, size=(self.image_size, self.image_size), mode="bicubic", antialias=True)
        return pixels.to(self.device)

    @staticmethod
    def to_uint8(pixels):
        return pixels.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()

    @property
    def device(self):
        return next(self.parameters()).device

    @torch.no_grad()
    def encode(self, images, batch_size=256):
        """Codes ``(N, n_tokens)`` of uint8 images ``(N, 3, H, W)``."""
        chunks = [self.encode_pixels(self.to_pixels(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).reshape(len(images), self.n_tokens)

    @torch.no_grad()
    def decode(self, codes, batch_size=256):
        """uint8 images ``(N, 3, image_size, image_size)`` of codes ``(N, n_tokens)``."""
        chunks = [self.to_uint8(self.decode_pixels(codes[i : i + batch_size])) for i in range(0, len(codes), batch_size)]
        return torch.cat(chunks)

    def code_vectors(self, codes):
        """Each image's codebook vectors, concatenated ``(N, n_tokens * dim)``: a space to compare images in."""
        return self.vq.quantize.embedding(codes.to(self.device)).flatten(1)

    def encode_pixels(self, pixels):
        raise NotImplementedError

    def decode_pixels(self, codes):
        raise NotImplementedError


class VQImageTokenizer(ImageTokenizer):
    def __init__(self, vq_model, image_size):
        factor = 2 ** (len(vq_model.config.block_out_channels) - 1)
        if image_size % factor:
            raise ValueError(f"tokenizer_image_size {image_size} must be a multiple of the VQ model's downsampling {factor}")
        super().__init__(image_size, vq_model.config.num_vq_embeddings, image_size // factor)
        self.vq = vq_model.eval().requires_grad_(False)

    def encode_pixels(self, pixels):
        latents = self.vq.encode(pixels).latents
        _, _, (_, _, codes) = self.vq.quantize(latents)
        return codes.reshape(len(pixels), -1)

    def codebook_latents(self, codes):
        """The quantised latents ``(N, C, g, g)`` of codes: what the decoder sees."""
        shape = (len(codes), self.grid_size, self.grid_size, self.vq.config.vq_embed_dim or self.vq.config.latent_channels)
        return self.vq.quantize.get_codebook_entry(codes.reshape(-1), shape)

    def decode_pixels(self, codes):
        return self.vq.decode(self.codebook_latents(codes.to(self.device)), force_not_quantize=True).sample


class JanusImageTokenizer(ImageTokenizer):
    """The VQ model of a Janus checkpoint (``model.model.vqmodel``), frozen as Janus trains it."""

    def __init__(self, janus_vq):
        config = janus_vq.config
        grid = config.num_patches
        image_size = grid * 2 ** (len(config.channel_multiplier) - 1)
        super().__init__(image_size, config.num_embeddings, grid)
        self.vq = janus_vq.eval().requires_grad_(False)

    def encode_pixels(self, pixels):
        return self.vq.encode(pixels.to(self.vq.dtype)).image_tokens.reshape(len(pixels), -1)

    def decode_pixels(self, codes):
        return self.vq.decode(codes.to(self.device)).float()


# Settings added after fits were cached, with the value that fits as before: left out of the key at that
# value, so the cached tokenizers behind published numbers stay valid (and benchmarks/run_benchmark.py reuses
# results made before them).
LATER_FIT_KEYS = {"tokenizer_fit_restart_codes": False, "tokenizer_fit_schedule": "constant", "tokenizer_fit_warmup": 0.0,
                  "tokenizer_fit_adam_betas": [0.9, 0.999]}
# tokenizer_fit_schedule -> transformers.get_scheduler's name (with warmup where tokenizer_fit_warmup > 0).
FIT_SCHEDULES = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}


def _fit_settings(config):
    return {key: config[key] for key in _FIT_KEYS if key not in LATER_FIT_KEYS or config[key] != LATER_FIT_KEYS[key]}


def _fit_key(config, content):
    return {"version": FIT_VERSION, "content": content.fingerprint, "fit": _fit_settings(config), "diffusers": diffusers.__version__}


def build_vq_model(config):
    channels = list(config["tokenizer_block_out_channels"])
    return VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=config["tokenizer_latent_channels"],
        num_vq_embeddings=config["tokenizer_codebook_size"],
        norm_num_groups=min(32, min(channels)),
        sample_size=config["tokenizer_image_size"],
        mid_block_add_attention=False,
    )


class _DeadCodeRestart:
    """Codebook vectors no latent chose during an epoch are moved onto random encoder latents of the epoch's
    last batch (Dhariwal et al. 2020, "Jukebox"; Zeghidour et al. 2021, "SoundStream"): an unused code
    otherwise never gets a gradient, so a codebook trained from scratch leaves most of its codes dead."""

    def __init__(self, quantizer, steps_per_epoch, generator):
        self.quantizer, self.steps_per_epoch, self.generator = quantizer, steps_per_epoch, generator
        self.counts = torch.zeros(quantizer.n_e, dtype=torch.long)
        self.steps = 0

    @torch.no_grad()
    def step(self, codes, latents):
        self.counts += torch.bincount(codes.flatten().cpu(), minlength=len(self.counts))
        self.steps += 1
        if self.steps % self.steps_per_epoch:
            return
        dead = torch.nonzero(self.counts == 0).flatten()
        if len(dead):
            candidates = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
            pick = torch.randint(len(candidates), (len(dead),), generator=self.generator)
            self.quantizer.embedding.weight[dead.to(candidates.device)] = candidates[pick.to(candidates.device)]
        self.counts.zero_()


def _fit_optimizer(config, parameters, total_steps):
    """The fit's AdamW (``tokenizer_fit_learning_rate``, ``tokenizer_fit_adam_betas``) and its learning-rate
    schedule: ``tokenizer_fit_schedule`` after a linear warmup over the ``tokenizer_fit_warmup`` share of its
    ``total_steps`` (transformers' schedulers)."""
    schedule, warmup, betas = config["tokenizer_fit_schedule"], config["tokenizer_fit_warmup"], config["tokenizer_fit_adam_betas"]
    if schedule not in FIT_SCHEDULES:
        raise ValueError(f"config key 'tokenizer_fit_schedule' = {schedule!r}: expected one of {sorted(FIT_SCHEDULES)}")
    if not 0 <= warmup < 1:
        raise ValueError(f"config key 'tokenizer_fit_warmup' = {warmup!r}: expected a share of the fit's steps in [0, 1)")
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ValueError(f"config key 'tokenizer_fit_adam_betas' = {betas!r}: expected two numbers in [0, 1), e.g. [0.9, 0.99]")
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=config["tokenizer_fit_learning_rate"], betas=tuple(betas),
                                  **fused_kwargs(parameters))
    return optimizer, get_scheduler(FIT_SCHEDULES[schedule], optimizer, num_warmup_steps=round(warmup * total_steps),
                                    num_training_steps=total_steps)


@torch.enable_grad()  # GenRec may be built inside RecBole's no_grad evaluation
def fit_tokenizer(config, content, out_dir):
    """Train a ``VQModel`` from scratch to reconstruct the catalog's images (MSE + commitment loss); save to ``out_dir``."""
    generator = torch.Generator().manual_seed(config["seed"])
    device = config["device"]
    model = build_vq_model(config).to(device).train()
    tokenizer = VQImageTokenizer(model, config["tokenizer_image_size"])
    model.requires_grad_(True).train()
    items = torch.nonzero(content.has_image).flatten()
    if len(items) == 0:
        raise ValueError("the image tokenizer needs at least one catalog item with an image to train on")
    pixels = tokenizer.to_pixels(content.images[items])
    steps_per_epoch = -(-len(pixels) // config["tokenizer_fit_batch_size"])
    optimizer, scheduler = _fit_optimizer(config, model.parameters(), steps_per_epoch * config["tokenizer_fit_epochs"])
    restart = _DeadCodeRestart(model.quantize, steps_per_epoch, generator) if config["tokenizer_fit_restart_codes"] else None

    def step(batch):
        pixel_batch = pixels[batch]
        latents = model.encode(pixel_batch).latents
        quantized, commit_loss, (_, _, codes) = model.quantize(latents)
        reconstruction = model.decode(quantized, force_not_quantize=True).sample
        loss = F.mse_loss(reconstruction, pixel_batch) + commit_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if restart is not None:
            restart.step(codes, latents)
        return loss.item()

    losses = fit_minibatches(
        torch.arange(len(pixels)), config["tokenizer_fit_batch_size"], config["tokenizer_fit_epochs"], generator, step,
        "Fit image tokenizer", config["show_progress"],
    )
    model.eval().requires_grad_(False)
    codes = tokenizer.encode(content.images[items])
    reconstruction = tokenizer.decode(codes).float()
    target = content.images[items].float()
    if reconstruction.shape[-1] != target.shape[-1]:
        target = F.interpolate(target, size=reconstruction.shape[-2:], mode="bicubic", antialias=True)
    target = target.clamp(0, 255)
    fidelity = pixel_fidelity(target.round().to(torch.uint8), reconstruction.to(torch.uint8))
    fit_log = {
        "fit": _fit_settings(config),
        "loss_per_epoch": losses,
        "reconstruction_mse_uint8": F.mse_loss(reconstruction, target).item(),
        "reconstruction": fidelity,
        "codebook_usage": len(torch.unique(codes)) / tokenizer.codebook_size,
    }
    logger.info(
        f"Fitted image tokenizer on {len(items)} items: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
        f"reconstruction MSE {fit_log['reconstruction_mse_uint8']:.1f} (uint8 scale), PSNR {fidelity['psnr']:.2f} dB, "
        f"SSIM {fidelity['ssim']:.3f}, MS-SSIM {fidelity['ms_ssim']:.3f} ({fidelity['ms_ssim_scales']} scales) at "
        f"{tokenizer.image_size} px, codebook usage {fit_log['codebook_usage']:.2f}"
    )
    model.save_pretrained(out_dir)
    with open(os.path.join(out_dir, FIT_LOG), "w") as f:
        json.dump(fit_log, f, indent=2)


def load_vq_tokenizer(config, content):
    """The :class:`VQImageTokenizer` from ``tokenizer_path``, or fitted on ``content`` (cached)."""
    path = config["tokenizer_path"]
    if path is None:
        path = cached_fit(config["tokenizer_cache_dir"], "vq", _fit_key(config, content),
                          lambda folder: fit_tokenizer(config, content, folder), config["seed"])
    elif not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"config key 'tokenizer_path' = '{path}' is not a folder saved by diffusers VQModel.save_pretrained "
            "(config.json and weights); leave it unset (~) to train a tokenizer on the catalog"
        )
    return VQImageTokenizer(VQModel.from_pretrained(path), config["tokenizer_image_size"]).to(config["device"])


def vq_tokenizer_from_config(vq_config, image_size):
    """A :class:`VQImageTokenizer` of the given ``VQModel`` config with untrained weights (a checkpoint's
    state dict then loads them)."""
    return VQImageTokenizer(VQModel.from_config(vq_config), image_size)
