"""The near-copy, realism and safety checks on a tiny synthetic catalog, and their calibration by hand."""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from recbole_gen.fidelity.checks import NearCopyCheck, RealismCheck, SafetyCheck, copy_similarity_threshold
from fidelity_catalog import SIZE, make_catalog, pool_embed

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


def near_copy_check(catalog, max_hash_distance=4, min_similarity=0.99, has_content=None):
    has_content = catalog.has_content if has_content is None else has_content
    return NearCopyCheck(catalog.images, catalog.embeddings, has_content, pool_embed, max_hash_distance, min_similarity)


@pytest.mark.parametrize("mechanism", ["hash", "cosine"])
def test_planted_copies_are_flagged_by_each_mechanism_alone(catalog, mechanism):
    # a hash distance of -1 turns the hash off; a cosine above 1 turns the cosine off
    check = near_copy_check(catalog, max_hash_distance=4 if mechanism == "hash" else -1,
                            min_similarity=2.0 if mechanism == "hash" else 0.98)
    copies = planted_copies(catalog)
    verdicts = check(copies)
    assert [verdict.passed for verdict in verdicts] == [False] * len(copies)
    assert all(f"catalog item {COPIED_ITEM} " in verdict.reason for verdict in verdicts)
    expected_scores = (pool_embed(copies) @ catalog.embeddings[1:].T).max(dim=1).values
    assert [verdict.score for verdict in verdicts] == pytest.approx(expected_scores.tolist())


def test_near_copy_reason_names_item_distance_and_cosine(catalog):
    verdict = near_copy_check(catalog)(catalog.images[COPIED_ITEM:COPIED_ITEM + 1])[0]
    assert verdict.reason == f"near copy of catalog item {COPIED_ITEM} (phash distance 0 <= 4, cosine 1.000 >= 0.990)"


def test_noise_and_new_items_are_not_copies(catalog):
    images = torch.stack([noise_image(seed=2), catalog.new_item(style=2, seed=3)])
    verdicts = near_copy_check(catalog)(images)
    assert [verdict.passed for verdict in verdicts] == [True, True]
    assert verdicts[0].reason.startswith("no copy; closest is catalog item")


def test_items_without_content_are_never_matched(catalog):
    has_content = catalog.has_content.clone()
    has_content[COPIED_ITEM] = False
    padding_copy = catalog.images[:1]  # row 0 is padding, whatever has_content says
    has_content[0] = True
    verdicts = near_copy_check(catalog, has_content=has_content)(torch.cat([planted_copies(catalog), padding_copy]))
    assert all(verdict.passed for verdict in verdicts)


def test_passed_embeddings_are_used_instead_of_embedding(catalog):
    check = near_copy_check(catalog, max_hash_distance=-1, min_similarity=0.98)
    item = catalog.images[COPIED_ITEM:COPIED_ITEM + 1]
    unrelated = F.normalize(torch.ones(1, catalog.embeddings.shape[1]), dim=1)
    assert not check(item)[0].passed
    assert check(item, embeddings=unrelated)[0].passed


def test_copy_similarity_threshold_is_the_hand_computed_quantile():
    cosines = [0.9, 0.8, 0.95, 0.7, 0.99]
    own = torch.tensor([[1.0, 0.0]] * len(cosines))
    reconstructions = torch.tensor([[c, math.sqrt(1 - c * c)] for c in cosines])
    # sorted 0.7, 0.8, 0.9, 0.95, 0.99: the 0.1 quantile lies 0.4 of the way from 0.7 to 0.8
    assert copy_similarity_threshold(reconstructions, own, 0.1) == pytest.approx(0.74)
    assert copy_similarity_threshold(reconstructions, own, 0.5) == pytest.approx(0.9)


def test_calibrated_copy_check_reads_only_items_with_content(catalog):
    reconstructions = catalog.images.clone()
    reconstructions[COPIED_ITEM] = jpeg(catalog.images[COPIED_ITEM], quality=30)  # the worst reconstruction
    reconstructions[0] = noise_image(seed=4)  # padding: would be far worse if it were read
    has_content = catalog.has_content.clone()
    has_content[5] = False
    reconstructions[5] = noise_image(seed=5)
    check = NearCopyCheck.calibrated(catalog.images, reconstructions, catalog.embeddings, has_content, pool_embed,
                                     max_hash_distance=4, quantile=0.0)
    worst = (pool_embed(reconstructions[COPIED_ITEM:COPIED_ITEM + 1])[0] @ catalog.embeddings[COPIED_ITEM]).item()
    assert worst < 0.99
    assert check.min_similarity == pytest.approx(worst)


def unit_vectors(degrees):
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def test_realism_calibration_is_the_hand_computed_leave_one_out_quantile():
    # rows: padding, items at 0, 10, 30, 90 degrees, and one at 5 degrees without content
    embeddings = torch.cat([torch.zeros(1, 2), unit_vectors([0, 10, 30, 90, 5])])
    has_content = torch.tensor([False, True, True, True, True, False])
    cos = lambda d: math.cos(math.radians(d))  # noqa: E731
    # each item's mean cosine to its 2 closest other items with content
    leave_one_out = sorted([(cos(10) + cos(30)) / 2, (cos(10) + cos(20)) / 2, (cos(20) + cos(30)) / 2,
                            (cos(60) + cos(80)) / 2])
    check = RealismCheck(embeddings, has_content, neighbours=2, quantile=1 / 3)  # position 1 of 0..3
    assert check.min_score == pytest.approx(leave_one_out[1])
    check = RealismCheck(embeddings, has_content, neighbours=2, quantile=0.5)
    assert check.min_score == pytest.approx((leave_one_out[1] + leave_one_out[2]) / 2)


def test_realism_passes_catalog_and_new_items_and_fails_noise(catalog):
    check = RealismCheck(catalog.embeddings, catalog.has_content, neighbours=5, embed=pool_embed)
    images = torch.stack([catalog.images[COPIED_ITEM], catalog.new_item(style=1, seed=6), noise_image(seed=7)])
    verdicts = check(images)
    assert [verdict.passed for verdict in verdicts] == [True, True, False]
    assert verdicts[2].score < check.min_score < verdicts[0].score
    assert verdicts[2].reason.endswith(f"to the 5 closest catalog items < {check.min_score:.3f}")


def test_realism_refuses_more_neighbours_than_items(catalog):
    with pytest.raises(ValueError, match="neighbours=40 needs more catalog items"):
        RealismCheck(catalog.embeddings, catalog.has_content, neighbours=40)


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
