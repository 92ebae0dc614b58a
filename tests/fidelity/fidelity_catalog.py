"""The fidelity tests' tiny synthetic catalog (textures in a few styles), pixel embedders and a blurring reconstruction.

Not a conftest.py: a second conftest module would shadow the top-level one that other tests import by name.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIZE = 32
N_STYLES = 5
PER_STYLE = 8


def pool_embed(images):
    """Unit embeddings of 4x4-pooled pixels minus each image's mean: a deterministic stand-in for the reward
    encoder (centring keeps every image from sharing one bright direction)."""
    pooled = F.avg_pool2d(images.float(), 4).flatten(1)
    return F.normalize(pooled - pooled.mean(dim=1, keepdim=True), dim=1)


def collapsing_embedder(catalog, item):
    """``pool_embed``, except that a rough image (mean difference between adjacent pixels above 40 levels: uniform
    noise, none of the smooth catalog textures) embeds exactly as catalog item ``item``, as off-distribution images
    collapse onto a few catalog items in a small fitted embedding space."""

    def embed(images):
        pixels = images.float()
        rough = (pixels[..., 1:] - pixels[..., :-1]).abs().mean(dim=(1, 2, 3)) > 40
        return torch.where(rough[:, None], catalog.embeddings[item], pool_embed(images))

    return embed


def blur_reconstruct(images):
    """uint8 images 4x4-average-pooled and bilinearly upsampled back: a stand-in for the image tokenizer's encode
    then decode, which keeps the smooth catalog textures (the pooling grid matches their 8x8 cells) and loses
    noise."""
    pooled = F.avg_pool2d(images.float(), 4)
    return F.interpolate(pooled, size=images.shape[-2:], mode="bilinear", align_corners=False).round().to(torch.uint8)


def textures(generator, n, scale):
    """``(n, 3, SIZE, SIZE)`` zero-centred smooth random textures: 8x8 random cells, bilinearly upsampled (coarser
    cells leave phash's 8x8 DCT block mostly empty, and its bits flip under a little noise)."""
    cells = torch.randn(n, 3, 8, 8, generator=generator) * scale
    return F.interpolate(cells, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def to_uint8(pixels):
    return (128 + pixels).clamp(0, 255).round().to(torch.uint8)


@dataclass
class Catalog:
    images: torch.Tensor  # (1 + N_STYLES * PER_STYLE, 3, SIZE, SIZE) uint8; row 0 the padding item
    embeddings: torch.Tensor
    has_content: torch.Tensor
    styles: torch.Tensor  # (N_STYLES, 3, SIZE, SIZE): each style's centre; item i has style (i - 1) // PER_STYLE

    def new_item(self, style, seed):
        """``(3, SIZE, SIZE)`` uint8: an image of ``style`` that is no catalog item."""
        return to_uint8(self.styles[style] + textures(torch.Generator().manual_seed(seed), 1, 30)[0])


def make_catalog():
    generator = torch.Generator().manual_seed(0)
    styles = textures(generator, N_STYLES, 60)
    items = to_uint8(styles.repeat_interleave(PER_STYLE, dim=0) + textures(generator, N_STYLES * PER_STYLE, 30))
    images = torch.cat([torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), items])
    has_content = torch.ones(len(images), dtype=torch.bool)
    has_content[0] = False
    return Catalog(images, pool_embed(images), has_content, styles)
