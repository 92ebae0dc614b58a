"""The near-copy, realism, neighbours and safety checks on a tiny synthetic catalog, and their calibration by hand."""

import io
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from recbole_gen.fidelity.checks import (
    NearCopyCheck, NeighbourCheck, RealismCheck, SafetyCheck, copy_hash_threshold, copy_similarity_threshold, phash_bits,
)
from fidelity_catalog import SIZE, blur_reconstruct, collapsing_embedder, make_catalog, pool_embed

COPIED_ITEM = 17


@pytest.fixture(scope="module")
def catalog():
    return make_catalog()


def jpeg(image, quality=90):
    """``image`` (uint8 ``(3, S, S)``) through a JPEG encoding and back."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1)


def jitter(image, amount, seed):
    """``image`` with uniform integer noise in ``[-amount, amount]`` on every pixel."""
    noise = torch.randint(-amount, amount + 1, image.shape, generator=torch.Generator().manual_seed(seed))
    return (image.int() + noise).clamp(0, 255).to(torch.uint8)


def noise_image(seed):
    return torch.randint(0, 256, (3, SIZE, SIZE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def planted_copies(catalog):
    item = catalog.images[COPIED_ITEM]
    return torch.stack([item, jpeg(item), jitter(item, 2, seed=1)])


def near_copy_check(catalog, max_hash_distance=4, min_similarity=0.98, has_content=None, embed=pool_embed):
    has_content = catalog.has_content if has_content is None else has_content
    return NearCopyCheck(catalog.images, catalog.embeddings, has_content, embed, max_hash_distance, min_similarity)


def test_planted_copies_are_flagged_when_hash_and_cosine_agree(catalog):
    copies = planted_copies(catalog)
    verdicts = near_copy_check(catalog)(copies)
    assert [verdict.passed for verdict in verdicts] == [False] * len(copies)
    assert all(verdict.reason.startswith(f"near copy of catalog item {COPIED_ITEM} ") for verdict in verdicts)
    expected_scores = pool_embed(copies) @ catalog.embeddings[COPIED_ITEM]
    assert [verdict.score for verdict in verdicts] == pytest.approx(expected_scores.tolist())


@pytest.mark.parametrize("max_hash_distance, min_similarity", [(-1, 0.98), (4, 2.0)])
def test_one_signal_alone_flags_no_copy(catalog, max_hash_distance, min_similarity):
    # a hash distance of -1 turns the hash off; a cosine above 1 turns the cosine off
    verdicts = near_copy_check(catalog, max_hash_distance, min_similarity)(planted_copies(catalog))
    assert all(verdict.passed for verdict in verdicts)


def test_near_copy_reason_names_item_distance_and_cosine(catalog):
    verdict = near_copy_check(catalog)(catalog.images[COPIED_ITEM:COPIED_ITEM + 1])[0]
    assert verdict.reason == f"near copy of catalog item {COPIED_ITEM} (phash distance 0 <= 4, cosine 1.000 >= 0.980)"


def test_noise_embedded_onto_an_item_is_no_copy(catalog):
    # the embedder puts noise at cosine 1 to item 17, which the cosine alone would call a copy; the hash disagrees
    check = near_copy_check(catalog, embed=collapsing_embedder(catalog, COPIED_ITEM))
    images = torch.cat([torch.stack([noise_image(seed=2), catalog.new_item(style=2, seed=3)]), planted_copies(catalog)])
    verdicts = check(images)
    assert [verdict.passed for verdict in verdicts] == [True, True, False, False, False]
    assert verdicts[0].score == pytest.approx(1.0)
    assert re.fullmatch(rf"no copy; closest is catalog item {COPIED_ITEM} \(phash distance \d+ > 4, "
                        r"cosine 1\.000 >= 0\.980\)", verdicts[0].reason)


def test_items_without_content_are_never_matched(catalog):
    has_content = catalog.has_content.clone()
    has_content[COPIED_ITEM] = False
    padding_copy = catalog.images[:1]  # row 0 is padding, whatever has_content says
    has_content[0] = True
    verdicts = near_copy_check(catalog, has_content=has_content)(torch.cat([planted_copies(catalog), padding_copy]))
    assert all(verdict.passed for verdict in verdicts)


def test_passed_embeddings_are_used_instead_of_embedding(catalog):
    check = near_copy_check(catalog)
    item = catalog.images[COPIED_ITEM:COPIED_ITEM + 1]
    unrelated = F.normalize(torch.ones(1, catalog.embeddings.shape[1]), dim=1)
    assert not check(item)[0].passed
    assert check(item, embeddings=unrelated)[0].passed


@pytest.mark.parametrize("max_hash_distance, min_similarity, message", [
    (None, 0.98, "needs max_hash_distance .* build it with NearCopyCheck.calibrated"),
    (4, None, "needs max_hash_distance .* build it with NearCopyCheck.calibrated"),
    (4.5, 0.98, "max_hash_distance must be an int \\(bits\\); got 4.5"),
])
def test_near_copy_refuses_missing_or_fractional_thresholds(catalog, max_hash_distance, min_similarity, message):
    with pytest.raises(ValueError, match=message):
        near_copy_check(catalog, max_hash_distance, min_similarity)


def test_copy_similarity_threshold_is_the_hand_computed_quantile():
    cosines = [0.9, 0.8, 0.95, 0.7, 0.99]
    own = torch.tensor([[1.0, 0.0]] * len(cosines))
    reconstructions = torch.tensor([[c, math.sqrt(1 - c * c)] for c in cosines])
    # sorted 0.7, 0.8, 0.9, 0.95, 0.99: the 0.1 quantile lies 0.4 of the way from 0.7 to 0.8
    assert copy_similarity_threshold(reconstructions, own, 0.1) == pytest.approx(0.74)
    assert copy_similarity_threshold(reconstructions, own, 0.5) == pytest.approx(0.9)


def hashes_at(distances):
    """``(len(distances), 64)`` bool hashes, row ``i`` with its first ``distances[i]`` bits set (that far from 0)."""
    return np.arange(64)[None, :] < np.array(distances)[:, None]


def test_copy_hash_threshold_is_the_hand_computed_quantile_rounded_down():
    reconstructions = hashes_at([3, 12, 0, 7, 5])
    items = np.zeros_like(reconstructions)
    # sorted 0, 3, 5, 7, 12: the 0.7 quantile lies 0.8 of the way from 5 to 7 (6.6), the 0.9 quantile at 10
    assert copy_hash_threshold(reconstructions, items, 0.3) == 6
    assert copy_hash_threshold(reconstructions, items, 0.1) == 10
    # 1 - 0.9 is 0.0999...98 in floating point, which puts the quantile of 0 and 10 a hair below 1
    assert copy_hash_threshold(hashes_at([0, 10]), np.zeros((2, 64), dtype=bool), 0.9) == 1


def test_calibrated_copy_check_reads_only_items_with_content(catalog):
    reconstructions = catalog.images.clone()
    reconstructions[COPIED_ITEM] = jpeg(catalog.images[COPIED_ITEM], quality=10)  # the worst reconstruction
    reconstructions[0] = noise_image(seed=4)  # padding: would be far worse if it were read
    has_content = catalog.has_content.clone()
    has_content[5] = False
    reconstructions[5] = noise_image(seed=5)
    check = NearCopyCheck.calibrated(catalog.images, reconstructions, catalog.embeddings, has_content, pool_embed,
                                     quantile=0.0)
    worst = reconstructions[COPIED_ITEM:COPIED_ITEM + 1]
    worst_cosine = (pool_embed(worst)[0] @ catalog.embeddings[COPIED_ITEM]).item()
    worst_distance = int((phash_bits(worst) != phash_bits(catalog.images[COPIED_ITEM:COPIED_ITEM + 1])).sum())
    assert worst_cosine < 0.99 and worst_distance > 0
    assert check.min_similarity == pytest.approx(worst_cosine)
    assert check.max_hash_distance == worst_distance


def test_calibrated_copy_check_catches_most_reconstructions_and_keeps_given_thresholds(catalog):
    reconstructions = blur_reconstruct(catalog.images)
    check = NearCopyCheck.calibrated(catalog.images, reconstructions, catalog.embeddings, catalog.has_content,
                                     pool_embed)
    # each criterion keeps all but the worst 2.5% of the 40 reconstructions (the worst one, by interpolation)
    caught = [not verdict.passed for verdict in check(reconstructions[1:])]
    assert sum(caught) / len(caught) >= 0.95
    given = NearCopyCheck.calibrated(catalog.images, reconstructions, catalog.embeddings, catalog.has_content,
                                     pool_embed, max_hash_distance=7, min_similarity=0.5)
    assert (given.max_hash_distance, given.min_similarity) == (7, 0.5)
    hash_only = NearCopyCheck.calibrated(catalog.images, reconstructions, catalog.embeddings, catalog.has_content,
                                         pool_embed, min_similarity=0.5)
    assert (hash_only.max_hash_distance, hash_only.min_similarity) == (check.max_hash_distance, 0.5)


def constant_images(values):
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, SIZE, SIZE).contiguous()


def test_realism_calibration_is_the_hand_computed_psnr_quantile():
    # a reconstruction that rounds every pixel down to a multiple of 10: value v is off by v % 10
    round_down = lambda images: images // 10 * 10  # noqa: E731
    # rows: padding (off by 9), items off by 0, 1, 2, 4, 8, and one off by 9 without content
    images = constant_images([9, 100, 101, 102, 104, 108, 109])
    has_content = torch.tensor([True, True, True, True, True, True, False])
    psnr = lambda error: 20 * math.log10(255 / error)  # noqa: E731  (pixels in [0, 1]: 10 log10(1 / MSE))
    # sorted PSNRs: psnr(8), psnr(4), psnr(2), psnr(1), inf (the exact reconstruction)
    assert RealismCheck(round_down, images, has_content, quantile=0.25).min_psnr == pytest.approx(psnr(4), rel=1e-5)
    assert RealismCheck(round_down, images, has_content, quantile=0.6).min_psnr == pytest.approx(
        psnr(2) + 0.4 * (psnr(1) - psnr(2)), rel=1e-5)
    assert RealismCheck(round_down, images, has_content, min_psnr=30.0).min_psnr == 30.0


def test_realism_passes_smooth_catalog_like_images_and_fails_noise(catalog):
    check = RealismCheck(blur_reconstruct, catalog.images, catalog.has_content)
    images = torch.stack([catalog.images[COPIED_ITEM], catalog.new_item(style=1, seed=6), noise_image(seed=7)])
    verdicts = check(images)
    assert [verdict.passed for verdict in verdicts] == [True, True, False]
    assert verdicts[2].score < check.min_psnr < verdicts[0].score
    assert re.fullmatch(rf"PSNR \d+\.\d\d dB to its reconstruction < {check.min_psnr:.2f} dB", verdicts[2].reason)


def test_realism_refuses_a_reconstruction_of_another_shape(catalog):
    with pytest.raises(ValueError, match=r"must return uint8 images of the input's shape \(40, 3, 32, 32\); "
                                         r"got torch.uint8 of shape \(40, 3, 16, 16\)"):
        RealismCheck(lambda images: images[..., ::2, ::2], catalog.images, catalog.has_content)


def unit_vectors(degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def test_neighbours_calibration_is_the_hand_computed_leave_one_out_quantile():
    # rows: padding, items at 0, 10, 30, 90 degrees, and one at 5 degrees without content
    embeddings = torch.cat([torch.zeros(1, 2), unit_vectors([0, 10, 30, 90, 5])])
    has_content = torch.tensor([False, True, True, True, True, False])
    cos = lambda d: math.cos(math.radians(d))  # noqa: E731
    # each item's mean cosine to its 2 closest other items with content
    leave_one_out = sorted([(cos(10) + cos(30)) / 2, (cos(10) + cos(20)) / 2, (cos(20) + cos(30)) / 2,
                            (cos(60) + cos(80)) / 2])
    check = NeighbourCheck(embeddings, has_content, neighbours=2, quantile=1 / 3)  # position 1 of 0..3
    assert check.min_score == pytest.approx(leave_one_out[1])
    check = NeighbourCheck(embeddings, has_content, neighbours=2, quantile=0.5)
    assert check.min_score == pytest.approx((leave_one_out[1] + leave_one_out[2]) / 2)


def test_neighbours_pass_catalog_and_new_items_and_fail_noise_the_embedder_separates(catalog):
    check = NeighbourCheck(catalog.embeddings, catalog.has_content, neighbours=5, embed=pool_embed)
    images = torch.stack([catalog.images[COPIED_ITEM], catalog.new_item(style=1, seed=6), noise_image(seed=7)])
    verdicts = check(images)
    assert [verdict.passed for verdict in verdicts] == [True, True, False]
    assert verdicts[2].score < check.min_score < verdicts[0].score
    assert verdicts[2].reason.endswith(f"to the 5 closest catalog items < {check.min_score:.3f}")


def test_neighbours_are_blind_to_noise_the_embedder_collapses_onto_an_item(catalog):
    check = NeighbourCheck(catalog.embeddings, catalog.has_content, neighbours=5,
                           embed=collapsing_embedder(catalog, COPIED_ITEM))
    assert check(noise_image(seed=7).unsqueeze(0))[0].passed


def test_neighbours_refuse_more_neighbours_than_items(catalog):
    with pytest.raises(ValueError, match="neighbours=40 needs more catalog items"):
        NeighbourCheck(catalog.embeddings, catalog.has_content, neighbours=40)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A tiny ViT whose classifier ignores the image: P(nsfw) = sigmoid(2) for every input."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, id2label={0: "normal", 1: "nsfw"}, label2id={"normal": 0, "nsfw": 1})
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 2.0]))
    folder = tmp_path_factory.mktemp("tiny_vit")
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def test_safety_flags_by_the_classifier_probability(tiny_classifier, catalog):
    images = torch.stack([catalog.images[1], noise_image(seed=8)])
    nsfw = 1 / (1 + math.exp(-2))
    strict = SafetyCheck(tiny_classifier, ["nsfw"], max_score=0.5)(images)
    assert [verdict.passed for verdict in strict] == [False, False]
    assert [verdict.score for verdict in strict] == pytest.approx([nsfw, nsfw], abs=1e-5)
    assert strict[0].reason == f"nsfw probability {nsfw:.3f} > 0.5"
    lenient = SafetyCheck(tiny_classifier, ["nsfw"], max_score=0.99)(images)
    assert [verdict.passed for verdict in lenient] == [True, True]


def test_safety_refuses_labels_the_model_lacks(tiny_classifier):
    with pytest.raises(ValueError, match=r"\['porn'\].*\['normal', 'nsfw'\]"):
        SafetyCheck(tiny_classifier, ["porn"])
