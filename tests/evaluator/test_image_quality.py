"""Pixel fidelity (PSNR / SSIM / MS-SSIM) and the blur measure on images made in the test."""

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_gen.evaluator.image_quality import blur_ratio, ms_ssim_scales, pixel_fidelity, sharpness


def images(n=6, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(20, 230, (n, 3, size, size), generator=generator, dtype=torch.uint8)


def test_psnr_of_a_uniform_offset_is_its_closed_form_and_identical_images_are_perfect():
    reference = images()
    shifted = reference + 5  # every pixel 5 levels off: MSE = (5 / 255)^2
    fidelity = pixel_fidelity(reference, shifted)
    assert fidelity["psnr"] == pytest.approx(20 * math.log10(255 / 5), abs=1e-3)
    assert fidelity["ssim"] < 1 and fidelity["ms_ssim"] < 1
    same = pixel_fidelity(reference, reference.clone())
    assert same["ssim"] == pytest.approx(1.0) and same["ms_ssim"] == pytest.approx(1.0) and same["psnr"] > 60


def test_more_noise_scores_lower_on_every_measure_and_batches_do_not_change_the_result():
    reference = images(n=10)
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    mild, strong = ((reference.float() + scale * noise).clamp(0, 255).round().to(torch.uint8) for scale in (5, 30))
    mild_fidelity, strong_fidelity = pixel_fidelity(reference, mild), pixel_fidelity(reference, strong)
    assert all(mild_fidelity[key] > strong_fidelity[key] for key in ("psnr", "ssim", "ms_ssim"))
    batched = pixel_fidelity(reference, strong, batch_size=3)
    assert all(batched[key] == pytest.approx(strong_fidelity[key], rel=1e-5) for key in ("psnr", "ssim", "ms_ssim"))


def test_ms_ssim_uses_the_scales_the_size_allows_and_shapes_must_match():
    assert [ms_ssim_scales(size) for size in (16, 32, 64, 128, 256)] == [2, 3, 4, 5, 5]
    with pytest.raises(ValueError, match="one shape"):
        pixel_fidelity(images(size=32), images(size=16))


def test_blurred_images_are_less_sharp_than_the_catalog_and_the_catalog_is_one():
    catalog = images(n=8)
    blurred = F.avg_pool2d(catalog.float(), 3, stride=1, padding=1).round().to(torch.uint8)
    assert (sharpness(blurred) < sharpness(catalog)).all()
    assert blur_ratio(catalog, catalog) == pytest.approx(1.0)
    assert blur_ratio(blurred, catalog) < 0.5
    # a catalog at another size is compared at the images' size
    assert blur_ratio(catalog, F.interpolate(catalog.float(), scale_factor=2).to(torch.uint8)) == pytest.approx(1.0, rel=0.05)
