"""Pixel fidelity: how close images are to reference images, and how sharp they are.

The item encoder compares images by what they show at its own small size, so it is blind to blur: a
tokenizer's blurred reconstructions of the catalog score close to the real posters there. These measures
look at the pixels at the images' own size:

- :func:`pixel_fidelity`: PSNR, SSIM and MS-SSIM (torchmetrics) of images against references of the same
  items (a tokenizer's reconstructions against the catalog). MS-SSIM uses as many of its five standard
  scales as the image size allows with a 7-pixel Gaussian window (3 at 32 px, 4 at 64 px, 5 from 128 px),
  their weights renormalised; the number of scales is returned with it.
- :func:`sharpness`: the variance of each image's Laplacian (grey levels, 0-255): low for blurred images.
  :func:`blur_ratio` compares generated images' mean sharpness with the catalog's at the same size
  (1 = as sharp as the catalog, below 1 = blurrier).
"""

import torch
import torch.nn.functional as F
from torchmetrics.image import (
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_KERNEL = 7
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_GREY = torch.tensor([0.299, 0.587, 0.114])


def _unit(images):
    return images.float().div(255.0)


def ms_ssim_scales(size):
    """How many MS-SSIM scales fit an image side of ``size`` pixels with the 7-pixel window."""
    scales = len(MS_SSIM_BETAS)
    while scales > 1 and (MS_SSIM_KERNEL - 1) * 2 ** (scales - 1) >= size:
        scales -= 1
    return scales


def pixel_fidelity(references, images, batch_size=256):
    """``{"psnr", "ssim", "ms_ssim", "ms_ssim_scales"}`` of uint8 ``images`` against uint8 ``references`` of the same
    shape ``(N, 3, S, S)``: PSNR (dB) of the mean squared error over all pixels, SSIM and MS-SSIM means over images."""
    if references.shape != images.shape:
        raise ValueError(f"pixel fidelity compares images of one shape: references {tuple(references.shape)}, images {tuple(images.shape)}")
    scales = ms_ssim_scales(images.shape[-1])
    betas = torch.tensor(MS_SSIM_BETAS[:scales])
    betas = tuple((betas / betas.sum()).tolist())
    # sync_on_compute=False: the images given are all there is; in a distributed run torchmetrics would
    # otherwise wait for the other processes (which may not be computing this at all)
    local = {"data_range": 1.0, "sync_on_compute": False}
    metrics = {
        "psnr": PeakSignalNoiseRatio(**local),  # over all pixels of all images at once
        "ssim": StructuralSimilarityIndexMeasure(**local),
        "ms_ssim": MultiScaleStructuralSimilarityIndexMeasure(kernel_size=MS_SSIM_KERNEL, betas=betas, **local),
    }
    for start in range(0, len(images), batch_size):
        reference, image = _unit(references[start : start + batch_size]), _unit(images[start : start + batch_size])
        for metric in metrics.values():
            metric.update(image, reference)
    return {**{name: metric.compute().item() for name, metric in metrics.items()}, "ms_ssim_scales": scales}


def sharpness(images):
    """``(N,)`` variance of the Laplacian of each uint8 image's grey levels (0-255 scale)."""
    grey = (images.float() * _GREY.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return F.conv2d(grey, _LAPLACIAN.view(1, 1, 3, 3)).flatten(1).var(dim=1)


def blur_ratio(images, catalog_images):
    """Mean sharpness of ``images`` over the catalog's at the same size (resized by area if they differ)."""
    if catalog_images.shape[-1] != images.shape[-1]:
        size = images.shape[-2:]
        catalog_images = F.interpolate(catalog_images.float(), size=size, mode="area").round().clamp(0, 255)
    return (sharpness(images).mean() / sharpness(catalog_images).mean().clamp(min=1e-12)).item()
