"""Image tokenizers: item images <-> grids of discrete codes the generator predicts.

- :class:`VQImageTokenizer` wraps a diffusers ``VQModel``. By default one is trained on the catalog's
  images (``tokenizer_*`` keys) and cached under ``tokenizer_cache_dir``, keyed by the catalog content
  and the fit settings; ``tokenizer_path`` loads a saved one (``VQModel.from_pretrained``) instead.
- :class:`JanusImageTokenizer` wraps the VQ model inside a transformers ``JanusForConditionalGeneration``.

Both take and return uint8 images ``(N, 3, H, W)`` as :class:`~recbole_gen.data.item_content.ItemContent`
holds them; codes are ``(N, n_tokens)`` in raster order.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile

import diffusers
import torch
import torch.nn.functional as F
from diffusers import VQModel
from torch import nn

from recbole_gen.utils import fit_minibatches

logger = logging.getLogger(__name__)

_FIT_KEYS = (
    "tokenizer_image_size",
    "tokenizer_block_out_channels",
    "tokenizer_latent_channels",
    "tokenizer_codebook_size",
    "tokenizer_fit_epochs",
    "tokenizer_fit_batch_size",
    "tokenizer_fit_learning_rate",
    "seed",
)
FIT_LOG = "fit_log.json"


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


def _fit_settings(config):
    return {key: config[key] for key in _FIT_KEYS}


def fitted_tokenizer_dir(config, content):
    """Where the tokenizer fitted on ``content`` with ``config``'s settings is (or will be) cached."""
    key = json.dumps({"content": content.fingerprint, "fit": _fit_settings(config), "diffusers": diffusers.__version__}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(config["tokenizer_cache_dir"], f"vq-{digest}")


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


@torch.enable_grad()  # GenRec may be built inside RecBole's no_grad evaluation (load_data_and_model)
def fit_tokenizer(config, content, out_dir):
    """Train a ``VQModel`` from scratch to reconstruct the catalog's images (MSE + commitment loss)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        generator = torch.Generator().manual_seed(config["seed"])
        device = config["device"]
        model = build_vq_model(config).to(device).train()
        tokenizer = VQImageTokenizer(model, config["tokenizer_image_size"])
        model.requires_grad_(True).train()
        items = torch.nonzero(content.has_image).flatten()
        if len(items) == 0:
            raise ValueError("the image tokenizer needs at least one catalog item with an image to train on")
        pixels = tokenizer.to_pixels(content.images[items])
        optimizer = torch.optim.AdamW(model.parameters(), lr=config["tokenizer_fit_learning_rate"])

        def step(batch):
            pixel_batch = pixels[batch]
            output = model(pixel_batch)
            loss = F.mse_loss(output.sample, pixel_batch) + output.commit_loss.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
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
        fit_log = {
            "fit": _fit_settings(config),
            "loss_per_epoch": losses,
            "reconstruction_mse_uint8": F.mse_loss(reconstruction, target.clamp(0, 255)).item(),
            "codebook_usage": len(torch.unique(codes)) / tokenizer.codebook_size,
        }
        logger.info(
            f"Fitted image tokenizer on {len(items)} items: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
            f"reconstruction MSE {fit_log['reconstruction_mse_uint8']:.1f} (uint8 scale), "
            f"codebook usage {fit_log['codebook_usage']:.2f}"
        )
        _save(model, out_dir, fit_log)


def _save(model, out_dir, fit_log):
    """save_pretrained into a temporary folder, then rename into place (concurrent runs share the cache)."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent)
    model.save_pretrained(staging)
    with open(os.path.join(staging, FIT_LOG), "w") as f:
        json.dump(fit_log, f, indent=2)
    if os.path.isdir(out_dir):
        shutil.rmtree(staging)
    else:
        os.replace(staging, out_dir)


def load_vq_tokenizer(config, content):
    """The :class:`VQImageTokenizer` from ``tokenizer_path``, or fitted on ``content`` (cached)."""
    path = config["tokenizer_path"]
    image_size = config["tokenizer_image_size"]
    if path is None:
        path = fitted_tokenizer_dir(config, content)
        if os.path.isdir(path):
            logger.info(f"Image tokenizer: cached fit {path}")
        else:
            fit_tokenizer(config, content, path)
    elif not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"config key 'tokenizer_path' = '{path}' is not a folder saved by diffusers VQModel.save_pretrained "
            "(config.json and weights); leave it unset (~) to train a tokenizer on the catalog"
        )
    return VQImageTokenizer(VQModel.from_pretrained(path), image_size).to(config["device"])
